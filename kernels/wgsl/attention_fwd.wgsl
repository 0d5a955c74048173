// OspCausalAttention forward (online softmax, FlashAttention-style: no T x T matrix in memory).
//   out[b, i, h] = sum_{j <= i} softmax_j(scale q[b, i, h] . k[b, j, kvh]) v[b, j, kvh]
// and the log-sum-exp of each row's scaled scores, which the backward kernels use to recompute the
// probabilities. A workgroup owns TB queries of one (b, h) and walks the key blocks at or before its
// last query. Per block: (A) each lane computes its 4 x 4 scores (scoreBlock), masks keys after
// the query (and past T) and stores them in pT; (B) one lane per query row updates the row's running
// maximum m and sum l, turns the row into probabilities exp(s - m) and records the factor
// exp(m_old - m) by which the row's output must shrink; (C) each lane rescales its part of the
// output tile oTile and adds p v. At the end out = oTile / l and lse = m + log(l).
// Tile layout and constants: attention_common.wgsl.
//
// Bindings: result [B * T, heads * HD + heads] (per token: every head's output, then every head's
// log-sum-exp), q, k, v. Uniforms: heads, kvHeads, t, blocks (tiles per sequence), scale.

var<workgroup> pT : array<f32, TB * TB>; // [key in block][query in tile]
var<workgroup> oTile : array<f32, TB * HDP>; // [query in tile][channel]
var<workgroup> shrink : array<f32, TB>;
var<workgroup> invSum : array<f32, TB>;
var<workgroup> keyEnd : i32;

// Stores one row of a lane's score block (tile row `row`, keys keys0 .. keys0 + 3 at block
// positions jl0 ..), masked: key j is kept when j <= lastKey = min(query, t - 1).
fn putScores(row : i32, keys0 : i32, jl0 : i32, s : vec4<f32>, lastKey : i32) {
  pT[(jl0 + 0) * TB + row] = select(LOWEST, s.x, keys0 + 0 <= lastKey);
  pT[(jl0 + 1) * TB + row] = select(LOWEST, s.y, keys0 + 1 <= lastKey);
  pT[(jl0 + 2) * TB + row] = select(LOWEST, s.z, keys0 + 2 <= lastKey);
  pT[(jl0 + 3) * TB + row] = select(LOWEST, s.w, keys0 + 3 <= lastKey);
}

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  let H = uniforms.heads;
  let T = uniforms.t;
  let qBlock = wg % uniforms.blocks;
  let bh = wg / uniforms.blocks;
  let h = bh % H;
  let b = bh / H;
  let kvh = h / (H / uniforms.kvHeads);
  let rg = lane / G;
  let cg = lane % G;
  let q0 = qBlock * TB;
  let r0 = 4 * rg;
  let qOff = rowOffsets(b, q0 + r0, T, H, h);
  // The last key each of the lane's 4 query rows may see (causal, and inside the sequence).
  let last = vec4<i32>(min(q0 + r0, T - 1), min(q0 + r0 + 1, T - 1), min(q0 + r0 + 2, T - 1), min(q0 + r0 + 3, T - 1));

  for (var e = lane; e < TB * HDP; e += LANES) {
    oTile[e] = 0.0;
  }
  var m = LOWEST; // lanes < TB: running maximum and sum of query row `lane`
  var l = 0.0;
  if (lane == 0) {
    keyEnd = min(T, q0 + TB);
  }
  // Uniform across the workgroup, so the barriers in the loop are in uniform control flow.
  let kEnd = workgroupUniformLoad(&keyEnd);
  for (var k0 = 0; k0 < kEnd; k0 += TB) {
    // (A) scores
    let kOff = rowOffsets(b, k0 + 4 * cg, T, uniforms.kvHeads, kvh);
    let s = scoreBlock(qOff, kOff);
    let keys0 = k0 + 4 * cg;
    putScores(r0 + 0, keys0, 4 * cg, s.r0, last.x);
    putScores(r0 + 1, keys0, 4 * cg, s.r1, last.y);
    putScores(r0 + 2, keys0, 4 * cg, s.r2, last.z);
    putScores(r0 + 3, keys0, 4 * cg, s.r3, last.w);
    workgroupBarrier();
    // (B) online softmax statistics, one lane per query row
    if (lane < TB) {
      var mx = m;
      for (var j = 0; j < TB; j++) {
        mx = max(mx, pT[j * TB + lane]);
      }
      let f = exp(m - mx);
      var sum = 0.0;
      for (var j = 0; j < TB; j++) {
        let p = exp(pT[j * TB + lane] - mx);
        pT[j * TB + lane] = p;
        sum += p;
      }
      l = l * f + sum;
      m = mx;
      shrink[lane] = f;
    }
    workgroupBarrier();
    // (C) oTile = shrink * oTile + p v
    let f = vec4<f32>(shrink[r0], shrink[r0 + 1], shrink[r0 + 2], shrink[r0 + 3]);
    for (var u = 0; u < HDP / TB; u++) {
      let cols = chunkColumns(cg, u);
      let t0 = r0 * HDP + u * TB + 4 * cg;
      var o0 = vec4<f32>(oTile[t0], oTile[t0 + 1], oTile[t0 + 2], oTile[t0 + 3]) * f.x;
      var o1 = vec4<f32>(oTile[t0 + HDP], oTile[t0 + HDP + 1], oTile[t0 + HDP + 2], oTile[t0 + HDP + 3]) * f.y;
      var o2 = vec4<f32>(oTile[t0 + 2 * HDP], oTile[t0 + 2 * HDP + 1], oTile[t0 + 2 * HDP + 2], oTile[t0 + 2 * HDP + 3]) * f.z;
      var o3 = vec4<f32>(oTile[t0 + 3 * HDP], oTile[t0 + 3 * HDP + 1], oTile[t0 + 3 * HDP + 2], oTile[t0 + 3 * HDP + 3]) * f.w;
      for (var jl = 0; jl < TB; jl++) {
        let vb = ((b * T + min(k0 + jl, T - 1)) * uniforms.kvHeads + kvh) * HD;
        let vv = vec4<f32>(v[vb + cols.x], v[vb + cols.y], v[vb + cols.z], v[vb + cols.w]);
        let p = jl * TB + r0;
        o0 = fma(vec4<f32>(pT[p]), vv, o0);
        o1 = fma(vec4<f32>(pT[p + 1]), vv, o1);
        o2 = fma(vec4<f32>(pT[p + 2]), vv, o2);
        o3 = fma(vec4<f32>(pT[p + 3]), vv, o3);
      }
      oTile[t0] = o0.x; oTile[t0 + 1] = o0.y; oTile[t0 + 2] = o0.z; oTile[t0 + 3] = o0.w;
      let t1 = t0 + HDP;
      oTile[t1] = o1.x; oTile[t1 + 1] = o1.y; oTile[t1 + 2] = o1.z; oTile[t1 + 3] = o1.w;
      let t2 = t0 + 2 * HDP;
      oTile[t2] = o2.x; oTile[t2 + 1] = o2.y; oTile[t2 + 2] = o2.z; oTile[t2 + 3] = o2.w;
      let t3 = t0 + 3 * HDP;
      oTile[t3] = o3.x; oTile[t3 + 1] = o3.y; oTile[t3 + 2] = o3.z; oTile[t3 + 3] = o3.w;
    }
    workgroupBarrier();
  }

  let width = H * HD + H;
  if (lane < TB) {
    invSum[lane] = 1.0 / l;
    let i = q0 + lane;
    if (i < T) {
      result[(b * T + i) * width + H * HD + h] = m + log(l);
    }
  }
  workgroupBarrier();
  for (var e = lane; e < TB * HD; e += LANES) {
    let row = e / HD;
    let c = e % HD;
    let i = q0 + row;
    if (i < T) {
      result[(b * T + i) * width + h * HD + c] = oTile[row * HDP + c] * invSum[row];
    }
  }
}
