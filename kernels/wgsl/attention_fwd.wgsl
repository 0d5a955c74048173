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
      var acc = scaleRows(loadTile(&oTile, t0), f);
      for (var jl = 0; jl < TB; jl++) {
        let vRow = ((b * T + min(k0 + jl, T - 1)) * Hkv + kvh) * HD;
        let lo = vec4<f32>(v[vRow + cols.lo.x], v[vRow + cols.lo.y], v[vRow + cols.lo.z], v[vRow + cols.lo.w]);
        let hi = vec4<f32>(v[vRow + cols.hi.x], v[vRow + cols.hi.y], v[vRow + cols.hi.z], v[vRow + cols.hi.w]);
        acc = addOuter(acc, weights8(&pT, jl * TB + r0), lo, hi);
      }
      storeTile(&oTile, t0, acc);
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
