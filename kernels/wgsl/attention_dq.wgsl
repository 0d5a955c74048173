// OspCausalAttentionGrad, part 1: dq[b, i, h] = scale sum_{j <= i} ds[i, j] k[b, j, kvh] with
// ds = p (dy . v - delta) recomputed blockwise from the forward's log-sum-exp (attention_bwd_common).
// A workgroup owns TB queries of one (b, h) and walks the key blocks at or before its last query:
// (A) each lane computes its 4 x 4 block of ds and stores it in dsT; (C) each lane adds ds k to its
// part of the dq tile. Tile layout and constants: attention_common.wgsl.
//
// Bindings: result [B, T, heads, HD], q, k, v, dy, fwd (the forward's packed result), delta.
// Uniforms: heads, kvHeads, t, blocks (tiles per sequence), scale.

var<workgroup> dsT : array<f32, TB * TB>; // [key in block][query in tile]
var<workgroup> dqTile : array<f32, TB * HDP>; // [query in tile][channel]
var<workgroup> keyEnd : i32;

fn putRow(row : i32, jl0 : i32, d : vec4<f32>) {
  dsT[jl0 * TB + row] = d.x;
  dsT[(jl0 + 1) * TB + row] = d.y;
  dsT[(jl0 + 2) * TB + row] = d.z;
  dsT[(jl0 + 3) * TB + row] = d.w;
}

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  let H = uniforms.heads;
  let Hkv = uniforms.kvHeads;
  let T = uniforms.t;
  let qBlock = wg % uniforms.blocks;
  let bh = wg / uniforms.blocks;
  let h = bh % H;
  let b = bh / H;
  let kvh = h / (H / Hkv);
  let rg = lane / G;
  let cg = lane % G;
  let q0 = qBlock * TB;
  let r0 = 4 * rg;
  let qOff = rowOffsets(b, q0 + r0, T, H, h);
  let lse = rowLse(b, q0 + r0, T, H, h);
  let dl = rowDelta(b, q0 + r0, T, H, h);
  let last = vec4<i32>(min(q0 + r0, T - 1), min(q0 + r0 + 1, T - 1), min(q0 + r0 + 2, T - 1), min(q0 + r0 + 3, T - 1));

  for (var e = lane; e < TB * HDP; e += LANES) {
    dqTile[e] = 0.0;
  }
  if (lane == 0) {
    keyEnd = min(T, q0 + TB);
  }
  let kEnd = workgroupUniformLoad(&keyEnd);
  for (var k0 = 0; k0 < kEnd; k0 += TB) {
    // (A)
    let kOff = rowOffsets(b, k0 + 4 * cg, T, Hkv, kvh);
    // dy has the layout of q and v that of k: the same offsets serve both.
    let pr = probsBlock(qOff, kOff, qOff, kOff, k0 + 4 * cg, lse, dl, last);
    putRow(r0, 4 * cg, pr.d0);
    putRow(r0 + 1, 4 * cg, pr.d1);
    putRow(r0 + 2, 4 * cg, pr.d2);
    putRow(r0 + 3, 4 * cg, pr.d3);
    workgroupBarrier();
    // (C) dqTile += ds k
    for (var u = 0; u < HDP / TB; u++) {
      let cols = chunkColumns(cg, u);
      let t0 = r0 * HDP + u * TB + 4 * cg;
      var a0 = vec4<f32>(dqTile[t0], dqTile[t0 + 1], dqTile[t0 + 2], dqTile[t0 + 3]);
      var a1 = vec4<f32>(dqTile[t0 + HDP], dqTile[t0 + HDP + 1], dqTile[t0 + HDP + 2], dqTile[t0 + HDP + 3]);
      var a2 = vec4<f32>(dqTile[t0 + 2 * HDP], dqTile[t0 + 2 * HDP + 1], dqTile[t0 + 2 * HDP + 2], dqTile[t0 + 2 * HDP + 3]);
      var a3 = vec4<f32>(dqTile[t0 + 3 * HDP], dqTile[t0 + 3 * HDP + 1], dqTile[t0 + 3 * HDP + 2], dqTile[t0 + 3 * HDP + 3]);
      for (var jl = 0; jl < TB; jl++) {
        let kb = ((b * T + min(k0 + jl, T - 1)) * Hkv + kvh) * HD;
        let kk = vec4<f32>(k[kb + cols.x], k[kb + cols.y], k[kb + cols.z], k[kb + cols.w]);
        let p = jl * TB + r0;
        a0 = fma(vec4<f32>(dsT[p]), kk, a0);
        a1 = fma(vec4<f32>(dsT[p + 1]), kk, a1);
        a2 = fma(vec4<f32>(dsT[p + 2]), kk, a2);
        a3 = fma(vec4<f32>(dsT[p + 3]), kk, a3);
      }
      dqTile[t0] = a0.x; dqTile[t0 + 1] = a0.y; dqTile[t0 + 2] = a0.z; dqTile[t0 + 3] = a0.w;
      let t1 = t0 + HDP;
      dqTile[t1] = a1.x; dqTile[t1 + 1] = a1.y; dqTile[t1 + 2] = a1.z; dqTile[t1 + 3] = a1.w;
      let t2 = t0 + 2 * HDP;
      dqTile[t2] = a2.x; dqTile[t2 + 1] = a2.y; dqTile[t2 + 2] = a2.z; dqTile[t2 + 3] = a2.w;
      let t3 = t0 + 3 * HDP;
      dqTile[t3] = a3.x; dqTile[t3 + 1] = a3.y; dqTile[t3 + 2] = a3.z; dqTile[t3 + 3] = a3.w;
    }
    workgroupBarrier();
  }
  let sc = uniforms.scale;
  for (var e = lane; e < TB * HD; e += LANES) {
    let row = e / HD;
    let i = q0 + row;
    if (i < T) {
      result[((b * T + i) * H + h) * HD + e % HD] = dqTile[row * HDP + e % HD] * sc;
    }
  }
}
