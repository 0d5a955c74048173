// OspCausalAttention (forward only): out[b, h, i] = sum_{j <= i} softmax_j(scale q_i . k_j) v_j for
// q [B, H, T, HD] and k, v [B, Hkv, T, HD]; query head h reads key/value head h / (H / Hkv).
// Online softmax (flash-attention style): the [T, T] score matrix is never materialised. A
// workgroup owns QB consecutive query rows of one (b, h), one lane per query row. Keys and values
// are walked in blocks of QB rows staged in workgroup memory (only blocks at or before the
// workgroup's last query: causal). Each lane keeps its query, a running maximum m, the running
// sum l of exp(s - m) and the running output acc = sum exp(s - m) v in registers, rescaling l and
// acc when m grows; at the end it writes acc / l.
//
// Host-provided constants: const QB : i32; (lanes per workgroup) const HD : i32; (head dimension)
// Bindings: result [B * H * T * HD], q, k, v. Uniforms: heads, kvHeads, t, qBlocks, scale.

const LOWEST : f32 = -3.4028234e38;

var<workgroup> kTile : array<f32, QB * HD>;
var<workgroup> vTile : array<f32, QB * HD>;
var<workgroup> keyLimit : i32;

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / QB;
  let qBlock = wg % uniforms.qBlocks;
  let bh = wg / uniforms.qBlocks; // b * heads + h
  let h = bh % uniforms.heads;
  let b = bh / uniforms.heads;
  let kvh = h / (uniforms.heads / uniforms.kvHeads);
  let T = uniforms.t;
  let i = qBlock * QB + lane;
  let live = i < T;
  let qBase = (bh * T + i) * HD;
  let kvBase = (b * uniforms.kvHeads + kvh) * T * HD;

  var qv : array<f32, HD>;
  var acc : array<f32, HD>;
  for (var c = 0; c < HD; c++) {
    acc[c] = 0.0;
    if (live) {
      qv[c] = q[qBase + c] * uniforms.scale;
    } else {
      qv[c] = 0.0;
    }
  }
  var m = LOWEST;
  var l = 0.0;

  // Keys past the block's last query are masked for every lane. workgroupUniformLoad hands the
  // bound to all lanes as a uniform value, so the barriers in the loop stay in uniform control flow.
  if (lane == 0) {
    keyLimit = min(T, (qBlock + 1) * QB);
  }
  let lastKey = workgroupUniformLoad(&keyLimit);
  for (var j0 = 0; j0 < lastKey; j0 += QB) {
    // Stage keys/values j0 .. j0 + QB - 1 (zero past T).
    for (var e = lane; e < QB * HD; e += QB) {
      let j = j0 + e / HD;
      var kx = 0.0;
      var vx = 0.0;
      if (j < T) {
        kx = k[kvBase + j * HD + e % HD];
        vx = v[kvBase + j * HD + e % HD];
      }
      kTile[e] = kx;
      vTile[e] = vx;
    }
    workgroupBarrier();
    if (live) {
      let jEnd = min(QB, i - j0 + 1); // causal: keys j <= i
      for (var jj = 0; jj < jEnd; jj++) {
        var s = 0.0;
        for (var c = 0; c < HD; c++) {
          s = fma(qv[c], kTile[jj * HD + c], s);
        }
        if (s > m) {
          let r = exp(m - s);
          l = l * r + 1.0;
          for (var c = 0; c < HD; c++) {
            acc[c] = fma(acc[c], r, vTile[jj * HD + c]);
          }
          m = s;
        } else {
          let p = exp(s - m);
          l += p;
          for (var c = 0; c < HD; c++) {
            acc[c] = fma(p, vTile[jj * HD + c], acc[c]);
          }
        }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let inv = 1.0 / l;
    for (var c = 0; c < HD; c++) {
      result[qBase + c] = acc[c] * inv;
    }
  }
}
