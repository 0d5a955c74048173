// OspCausalAttention forward (online softmax, FlashAttention-style: no T x T matrix in memory).
//   out[b, i, h] = sum_{j <= i} softmax_j(scale q[b, i, h] . k[b, j, kvh]) v[b, j, kvh]
// and the log-sum-exp of each row's scaled scores, which the backward kernels use to recompute the
// probabilities. A workgroup owns TB queries of one (b, h) and walks the key blocks at or before its
// last query. Per block: (A) each lane computes its 8 x 8 scores (qkTile), scales them, masks keys
// after the query (and past T) and stores them in pT; (B) each lane takes TB / LANES query rows,
// updates each row's running maximum m and sum l, turns the row into probabilities exp(s - m) and
// records the factor exp(m_old - m) by which the row's output shrinks; (C) each lane rescales its
// part of the output tile oTile and adds p v. At the end out = oTile / l and lse = m + log(l).
// Tile layout and constants: attention_common.wgsl.
//
// Bindings: result [B * T, heads * HD + heads] (per token: every head's output, then every head's
// log-sum-exp), q, k, v. Uniforms: heads, kvHeads, t, blocks (tiles per sequence), groups (workgroups), scale.

const ROWS_PER_LANE : i32 = TB / LANES;

var<workgroup> pT : array<f32, TB * TB>; // [key in block][query in tile]
var<workgroup> oTile : array<f32, TB * HDP>; // [query in tile][channel]
var<workgroup> rowMax : array<f32, TB>;
var<workgroup> rowSum : array<f32, TB>;
var<workgroup> shrink : array<f32, TB>;
var<workgroup> keyEnd : i32;

// Stores row `row` of a lane's score block (keys keys0 .. keys0 + 7 at block positions jl0 ..),
// scaled and masked: key j is kept when j <= last = min(query, t - 1).
fn putScores(row : i32, jl0 : i32, keys0 : i32, a : vec4<f32>, b : vec4<f32>, last : i32) {
  let sc = uniforms.scale;
  pT[jl0 * TB + row] = select(LOWEST, a.x * sc, keys0 <= last);
  pT[(jl0 + 1) * TB + row] = select(LOWEST, a.y * sc, keys0 + 1 <= last);
  pT[(jl0 + 2) * TB + row] = select(LOWEST, a.z * sc, keys0 + 2 <= last);
  pT[(jl0 + 3) * TB + row] = select(LOWEST, a.w * sc, keys0 + 3 <= last);
  pT[(jl0 + 4) * TB + row] = select(LOWEST, b.x * sc, keys0 + 4 <= last);
  pT[(jl0 + 5) * TB + row] = select(LOWEST, b.y * sc, keys0 + 5 <= last);
  pT[(jl0 + 6) * TB + row] = select(LOWEST, b.z * sc, keys0 + 6 <= last);
  pT[(jl0 + 7) * TB + row] = select(LOWEST, b.w * sc, keys0 + 7 <= last);
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
  let r0 = 8 * rg;
  let qRows = rowOffsets(b, q0 + r0, T, H, h);

  for (var e = lane; e < TB * HDP; e += LANES) {
    oTile[e] = 0.0;
  }
  for (var r = lane; r < TB; r += LANES) {
    rowMax[r] = LOWEST;
    rowSum[r] = 0.0;
  }
  if (lane == 0) {
    keyEnd = min(T, q0 + TB);
  }
  // Uniform across the workgroup, so the barriers in the loop are in uniform control flow.
  let kEnd = workgroupUniformLoad(&keyEnd);
  for (var k0 = 0; k0 < kEnd; k0 += TB) {
    // (A) scores
    let s = qkTile(qRows, rowOffsets(b, k0 + 8 * cg, T, Hkv, kvh));
    let keys0 = k0 + 8 * cg;
    putScores(r0 + 0, 8 * cg, keys0, s.a0, s.b0, min(q0 + r0 + 0, T - 1));
    putScores(r0 + 1, 8 * cg, keys0, s.a1, s.b1, min(q0 + r0 + 1, T - 1));
    putScores(r0 + 2, 8 * cg, keys0, s.a2, s.b2, min(q0 + r0 + 2, T - 1));
    putScores(r0 + 3, 8 * cg, keys0, s.a3, s.b3, min(q0 + r0 + 3, T - 1));
    putScores(r0 + 4, 8 * cg, keys0, s.a4, s.b4, min(q0 + r0 + 4, T - 1));
    putScores(r0 + 5, 8 * cg, keys0, s.a5, s.b5, min(q0 + r0 + 5, T - 1));
    putScores(r0 + 6, 8 * cg, keys0, s.a6, s.b6, min(q0 + r0 + 6, T - 1));
    putScores(r0 + 7, 8 * cg, keys0, s.a7, s.b7, min(q0 + r0 + 7, T - 1));
    workgroupBarrier();
    // (B) online softmax statistics
    for (var r = lane * ROWS_PER_LANE; r < (lane + 1) * ROWS_PER_LANE; r++) {
      let m = rowMax[r];
      var mx = m;
      for (var j = 0; j < TB; j++) {
        mx = max(mx, pT[j * TB + r]);
      }
      var sum = 0.0;
      for (var j = 0; j < TB; j++) {
        let p = exp(pT[j * TB + r] - mx);
        pT[j * TB + r] = p;
        sum += p;
      }
      let f = exp(m - mx);
      rowSum[r] = rowSum[r] * f + sum;
      rowMax[r] = mx;
      shrink[r] = f;
    }
    workgroupBarrier();
    // (C) oTile = shrink * oTile + p v
    let f = Rows8f(vec4<f32>(shrink[r0], shrink[r0 + 1], shrink[r0 + 2], shrink[r0 + 3]),
                   vec4<f32>(shrink[r0 + 4], shrink[r0 + 5], shrink[r0 + 6], shrink[r0 + 7]));
    for (var u = 0; u < HDP / TB; u++) {
      let cols = chunkColumns(cg, u);
      let t0 = r0 * HDP + u * TB + 8 * cg;
      var a0 = vec4<f32>(oTile[t0], oTile[t0 + 1], oTile[t0 + 2], oTile[t0 + 3]) * f.lo.x;
      var b0 = vec4<f32>(oTile[t0 + 4], oTile[t0 + 5], oTile[t0 + 6], oTile[t0 + 7]) * f.lo.x;
      var a1 = vec4<f32>(oTile[t0 + 1 * HDP], oTile[t0 + 1 * HDP + 1], oTile[t0 + 1 * HDP + 2], oTile[t0 + 1 * HDP + 3]) * f.lo.y;
      var b1 = vec4<f32>(oTile[t0 + 1 * HDP + 4], oTile[t0 + 1 * HDP + 5], oTile[t0 + 1 * HDP + 6], oTile[t0 + 1 * HDP + 7]) * f.lo.y;
      var a2 = vec4<f32>(oTile[t0 + 2 * HDP], oTile[t0 + 2 * HDP + 1], oTile[t0 + 2 * HDP + 2], oTile[t0 + 2 * HDP + 3]) * f.lo.z;
      var b2 = vec4<f32>(oTile[t0 + 2 * HDP + 4], oTile[t0 + 2 * HDP + 5], oTile[t0 + 2 * HDP + 6], oTile[t0 + 2 * HDP + 7]) * f.lo.z;
      var a3 = vec4<f32>(oTile[t0 + 3 * HDP], oTile[t0 + 3 * HDP + 1], oTile[t0 + 3 * HDP + 2], oTile[t0 + 3 * HDP + 3]) * f.lo.w;
      var b3 = vec4<f32>(oTile[t0 + 3 * HDP + 4], oTile[t0 + 3 * HDP + 5], oTile[t0 + 3 * HDP + 6], oTile[t0 + 3 * HDP + 7]) * f.lo.w;
      var a4 = vec4<f32>(oTile[t0 + 4 * HDP], oTile[t0 + 4 * HDP + 1], oTile[t0 + 4 * HDP + 2], oTile[t0 + 4 * HDP + 3]) * f.hi.x;
      var b4 = vec4<f32>(oTile[t0 + 4 * HDP + 4], oTile[t0 + 4 * HDP + 5], oTile[t0 + 4 * HDP + 6], oTile[t0 + 4 * HDP + 7]) * f.hi.x;
      var a5 = vec4<f32>(oTile[t0 + 5 * HDP], oTile[t0 + 5 * HDP + 1], oTile[t0 + 5 * HDP + 2], oTile[t0 + 5 * HDP + 3]) * f.hi.y;
      var b5 = vec4<f32>(oTile[t0 + 5 * HDP + 4], oTile[t0 + 5 * HDP + 5], oTile[t0 + 5 * HDP + 6], oTile[t0 + 5 * HDP + 7]) * f.hi.y;
      var a6 = vec4<f32>(oTile[t0 + 6 * HDP], oTile[t0 + 6 * HDP + 1], oTile[t0 + 6 * HDP + 2], oTile[t0 + 6 * HDP + 3]) * f.hi.z;
      var b6 = vec4<f32>(oTile[t0 + 6 * HDP + 4], oTile[t0 + 6 * HDP + 5], oTile[t0 + 6 * HDP + 6], oTile[t0 + 6 * HDP + 7]) * f.hi.z;
      var a7 = vec4<f32>(oTile[t0 + 7 * HDP], oTile[t0 + 7 * HDP + 1], oTile[t0 + 7 * HDP + 2], oTile[t0 + 7 * HDP + 3]) * f.hi.w;
      var b7 = vec4<f32>(oTile[t0 + 7 * HDP + 4], oTile[t0 + 7 * HDP + 5], oTile[t0 + 7 * HDP + 6], oTile[t0 + 7 * HDP + 7]) * f.hi.w;
      for (var jl = 0; jl < TB; jl++) {
        let vRow = ((b * T + min(k0 + jl, T - 1)) * Hkv + kvh) * HD;
        let w = Rows8f(vec4<f32>(pT[jl * TB + r0], pT[jl * TB + r0 + 1], pT[jl * TB + r0 + 2], pT[jl * TB + r0 + 3]),
                        vec4<f32>(pT[jl * TB + r0 + 4], pT[jl * TB + r0 + 5], pT[jl * TB + r0 + 6], pT[jl * TB + r0 + 7]));
        let lo = vec4<f32>(v[vRow + cols.lo.x], v[vRow + cols.lo.y], v[vRow + cols.lo.z], v[vRow + cols.lo.w]);
        let hi = vec4<f32>(v[vRow + cols.hi.x], v[vRow + cols.hi.y], v[vRow + cols.hi.z], v[vRow + cols.hi.w]);
        a0 = fma(vec4<f32>(w.lo.x), lo, a0);
        b0 = fma(vec4<f32>(w.lo.x), hi, b0);
        a1 = fma(vec4<f32>(w.lo.y), lo, a1);
        b1 = fma(vec4<f32>(w.lo.y), hi, b1);
        a2 = fma(vec4<f32>(w.lo.z), lo, a2);
        b2 = fma(vec4<f32>(w.lo.z), hi, b2);
        a3 = fma(vec4<f32>(w.lo.w), lo, a3);
        b3 = fma(vec4<f32>(w.lo.w), hi, b3);
        a4 = fma(vec4<f32>(w.hi.x), lo, a4);
        b4 = fma(vec4<f32>(w.hi.x), hi, b4);
        a5 = fma(vec4<f32>(w.hi.y), lo, a5);
        b5 = fma(vec4<f32>(w.hi.y), hi, b5);
        a6 = fma(vec4<f32>(w.hi.z), lo, a6);
        b6 = fma(vec4<f32>(w.hi.z), hi, b6);
        a7 = fma(vec4<f32>(w.hi.w), lo, a7);
        b7 = fma(vec4<f32>(w.hi.w), hi, b7);
      }
      oTile[t0] = a0.x; oTile[t0 + 1] = a0.y; oTile[t0 + 2] = a0.z; oTile[t0 + 3] = a0.w;
      oTile[t0 + 4] = b0.x; oTile[t0 + 5] = b0.y; oTile[t0 + 6] = b0.z; oTile[t0 + 7] = b0.w;
      oTile[t0 + 1 * HDP] = a1.x; oTile[t0 + 1 * HDP + 1] = a1.y; oTile[t0 + 1 * HDP + 2] = a1.z; oTile[t0 + 1 * HDP + 3] = a1.w;
      oTile[t0 + 1 * HDP + 4] = b1.x; oTile[t0 + 1 * HDP + 5] = b1.y; oTile[t0 + 1 * HDP + 6] = b1.z; oTile[t0 + 1 * HDP + 7] = b1.w;
      oTile[t0 + 2 * HDP] = a2.x; oTile[t0 + 2 * HDP + 1] = a2.y; oTile[t0 + 2 * HDP + 2] = a2.z; oTile[t0 + 2 * HDP + 3] = a2.w;
      oTile[t0 + 2 * HDP + 4] = b2.x; oTile[t0 + 2 * HDP + 5] = b2.y; oTile[t0 + 2 * HDP + 6] = b2.z; oTile[t0 + 2 * HDP + 7] = b2.w;
      oTile[t0 + 3 * HDP] = a3.x; oTile[t0 + 3 * HDP + 1] = a3.y; oTile[t0 + 3 * HDP + 2] = a3.z; oTile[t0 + 3 * HDP + 3] = a3.w;
      oTile[t0 + 3 * HDP + 4] = b3.x; oTile[t0 + 3 * HDP + 5] = b3.y; oTile[t0 + 3 * HDP + 6] = b3.z; oTile[t0 + 3 * HDP + 7] = b3.w;
      oTile[t0 + 4 * HDP] = a4.x; oTile[t0 + 4 * HDP + 1] = a4.y; oTile[t0 + 4 * HDP + 2] = a4.z; oTile[t0 + 4 * HDP + 3] = a4.w;
      oTile[t0 + 4 * HDP + 4] = b4.x; oTile[t0 + 4 * HDP + 5] = b4.y; oTile[t0 + 4 * HDP + 6] = b4.z; oTile[t0 + 4 * HDP + 7] = b4.w;
      oTile[t0 + 5 * HDP] = a5.x; oTile[t0 + 5 * HDP + 1] = a5.y; oTile[t0 + 5 * HDP + 2] = a5.z; oTile[t0 + 5 * HDP + 3] = a5.w;
      oTile[t0 + 5 * HDP + 4] = b5.x; oTile[t0 + 5 * HDP + 5] = b5.y; oTile[t0 + 5 * HDP + 6] = b5.z; oTile[t0 + 5 * HDP + 7] = b5.w;
      oTile[t0 + 6 * HDP] = a6.x; oTile[t0 + 6 * HDP + 1] = a6.y; oTile[t0 + 6 * HDP + 2] = a6.z; oTile[t0 + 6 * HDP + 3] = a6.w;
      oTile[t0 + 6 * HDP + 4] = b6.x; oTile[t0 + 6 * HDP + 5] = b6.y; oTile[t0 + 6 * HDP + 6] = b6.z; oTile[t0 + 6 * HDP + 7] = b6.w;
      oTile[t0 + 7 * HDP] = a7.x; oTile[t0 + 7 * HDP + 1] = a7.y; oTile[t0 + 7 * HDP + 2] = a7.z; oTile[t0 + 7 * HDP + 3] = a7.w;
      oTile[t0 + 7 * HDP + 4] = b7.x; oTile[t0 + 7 * HDP + 5] = b7.y; oTile[t0 + 7 * HDP + 6] = b7.z; oTile[t0 + 7 * HDP + 7] = b7.w;
    }
    workgroupBarrier();
  }

  let width = H * HD + H;
  // A folded dispatch (more than 65535 workgroups) runs extra workgroups past the last (b, h): they
  // compute on clamped reads but write nothing.
  let live = wg < uniforms.groups;
  for (var r = lane; r < TB; r += LANES) {
    let i = q0 + r;
    if (live && i < T) {
      result[(b * T + i) * width + H * HD + h] = rowMax[r] + log(rowSum[r]);
    }
  }
  for (var e = lane; e < TB * HD; e += LANES) {
    let row = e / HD;
    let c = e % HD;
    let i = q0 + row;
    if (live && i < T) {
      result[(b * T + i) * width + h * HD + c] = oTile[row * HDP + c] / rowSum[row];
    }
  }
}
