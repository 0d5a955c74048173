// OspCausalAttentionGrad, part 2: for key j of key/value head kvh,
//   dv[b, j, kvh] = sum_h sum_{i >= j} p[h, i, j] dy[b, i, h]
//   dk[b, j, kvh] = scale sum_h sum_{i >= j} ds[h, i, j] q[b, i, h]
// over the query heads h that read kvh. A workgroup owns TB keys of one (b, kvh) and walks, for each
// of those query heads, the query blocks at or after its first key: (A) each lane recomputes p and
// ds of its 8 x 8 block (attention_bwd_common; rows are the block's queries 8 rg .., columns the
// tile's keys 8 cg ..) into pS and dsS; (C) each lane adds p dy and ds q to its rows (keys 8 rg ..)
// of the dv and dk tiles. Tile layout and constants: attention_common.wgsl.
//
// Bindings: result [B * T * kvHeads, 2 * HD] (per key and head: dk, then dv), q, k, v, dy, fwd, delta.
// Uniforms: heads, kvHeads, t, blocks (tiles per sequence), groups (workgroups), scale.

var<workgroup> pS : array<f32, TB * TB>; // [query in block][key in tile]
var<workgroup> dsS : array<f32, TB * TB>;
var<workgroup> dkTile : array<f32, TB * HDP>; // [key in tile][channel]
var<workgroup> dvTile : array<f32, TB * HDP>;
var<workgroup> queryStart : i32;

// p and ds of one query row (block row `row`, 8 keys from keys0 at tile positions col ..).
// last: the last key the query may see (-1 for a query past the sequence).
fn putRow(row : i32, col : i32, keys0 : i32, s : vec4<f32>, s4 : vec4<f32>, g : vec4<f32>, g4 : vec4<f32>,
          lse : f32, dl : f32, last : i32) {
  let sc = uniforms.scale;
  let keys = vec4<i32>(keys0, keys0 + 1, keys0 + 2, keys0 + 3);
  let p = select(vec4<f32>(0.0), exp(s * sc - lse), keys <= vec4<i32>(last));
  let p4 = select(vec4<f32>(0.0), exp(s4 * sc - lse), keys + 4 <= vec4<i32>(last));
  let d = p * (g - dl);
  let d4 = p4 * (g4 - dl);
  let o = row * TB + col;
  pS[o] = p.x; pS[o + 1] = p.y; pS[o + 2] = p.z; pS[o + 3] = p.w;
  pS[o + 4] = p4.x; pS[o + 5] = p4.y; pS[o + 6] = p4.z; pS[o + 7] = p4.w;
  dsS[o] = d.x; dsS[o + 1] = d.y; dsS[o + 2] = d.z; dsS[o + 3] = d.w;
  dsS[o + 4] = d4.x; dsS[o + 5] = d4.y; dsS[o + 6] = d4.z; dsS[o + 7] = d4.w;
}

fn lastKey(i : i32, t : i32) -> i32 {
  return select(-1, i, i < t);
}

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  let H = uniforms.heads;
  let Hkv = uniforms.kvHeads;
  let T = uniforms.t;
  let group = H / Hkv;
  let kBlock = wg % uniforms.blocks;
  let bk = wg / uniforms.blocks;
  let kvh = bk % Hkv;
  let b = bk / Hkv;
  let rg = lane / G;
  let cg = lane % G;
  let k0 = kBlock * TB;
  let r0 = 8 * rg;
  let kRows = rowOffsets(b, k0 + 8 * cg, T, Hkv, kvh);
  let keys0 = k0 + 8 * cg;

  for (var e = lane; e < TB * HDP; e += LANES) {
    dkTile[e] = 0.0;
    dvTile[e] = 0.0;
  }
  if (lane == 0) {
    queryStart = k0;
  }
  let qStart = workgroupUniformLoad(&queryStart);
  for (var hg = 0; hg < group; hg++) {
    let h = kvh * group + hg;
    for (var q0 = qStart; q0 < T; q0 += TB) {
      // (A) dy is laid out as q and v as k: the same offsets serve both.
      let qRows = rowOffsets(b, q0 + r0, T, H, h);
      let lse = rowLse(b, q0 + r0, T, H, h);
      let dl = rowDelta(b, q0 + r0, T, H, h);
      let s = qkTile(qRows, kRows);
      let g = dyvTile(qRows, kRows);
      putRow(r0 + 0, 8 * cg, keys0, s.a0, s.b0, g.a0, g.b0, lse.lo.x, dl.lo.x, lastKey(q0 + r0 + 0, T));
      putRow(r0 + 1, 8 * cg, keys0, s.a1, s.b1, g.a1, g.b1, lse.lo.y, dl.lo.y, lastKey(q0 + r0 + 1, T));
      putRow(r0 + 2, 8 * cg, keys0, s.a2, s.b2, g.a2, g.b2, lse.lo.z, dl.lo.z, lastKey(q0 + r0 + 2, T));
      putRow(r0 + 3, 8 * cg, keys0, s.a3, s.b3, g.a3, g.b3, lse.lo.w, dl.lo.w, lastKey(q0 + r0 + 3, T));
      putRow(r0 + 4, 8 * cg, keys0, s.a4, s.b4, g.a4, g.b4, lse.hi.x, dl.hi.x, lastKey(q0 + r0 + 4, T));
      putRow(r0 + 5, 8 * cg, keys0, s.a5, s.b5, g.a5, g.b5, lse.hi.y, dl.hi.y, lastKey(q0 + r0 + 5, T));
      putRow(r0 + 6, 8 * cg, keys0, s.a6, s.b6, g.a6, g.b6, lse.hi.z, dl.hi.z, lastKey(q0 + r0 + 6, T));
      putRow(r0 + 7, 8 * cg, keys0, s.a7, s.b7, g.a7, g.b7, lse.hi.w, dl.hi.w, lastKey(q0 + r0 + 7, T));
      workgroupBarrier();
      // (C) rows of the tiles: keys k0 + 8 rg ..; dv += p dy, then dk += ds q
      for (var u = 0; u < HDP / TB; u++) {
        let cols = chunkColumns(cg, u);
        let t0 = r0 * HDP + u * TB + 8 * cg;
        {
          var a0 = vec4<f32>(dvTile[t0], dvTile[t0 + 1], dvTile[t0 + 2], dvTile[t0 + 3]);
          var b0 = vec4<f32>(dvTile[t0 + 4], dvTile[t0 + 5], dvTile[t0 + 6], dvTile[t0 + 7]);
          var a1 = vec4<f32>(dvTile[t0 + 1 * HDP], dvTile[t0 + 1 * HDP + 1], dvTile[t0 + 1 * HDP + 2], dvTile[t0 + 1 * HDP + 3]);
          var b1 = vec4<f32>(dvTile[t0 + 1 * HDP + 4], dvTile[t0 + 1 * HDP + 5], dvTile[t0 + 1 * HDP + 6], dvTile[t0 + 1 * HDP + 7]);
          var a2 = vec4<f32>(dvTile[t0 + 2 * HDP], dvTile[t0 + 2 * HDP + 1], dvTile[t0 + 2 * HDP + 2], dvTile[t0 + 2 * HDP + 3]);
          var b2 = vec4<f32>(dvTile[t0 + 2 * HDP + 4], dvTile[t0 + 2 * HDP + 5], dvTile[t0 + 2 * HDP + 6], dvTile[t0 + 2 * HDP + 7]);
          var a3 = vec4<f32>(dvTile[t0 + 3 * HDP], dvTile[t0 + 3 * HDP + 1], dvTile[t0 + 3 * HDP + 2], dvTile[t0 + 3 * HDP + 3]);
          var b3 = vec4<f32>(dvTile[t0 + 3 * HDP + 4], dvTile[t0 + 3 * HDP + 5], dvTile[t0 + 3 * HDP + 6], dvTile[t0 + 3 * HDP + 7]);
          var a4 = vec4<f32>(dvTile[t0 + 4 * HDP], dvTile[t0 + 4 * HDP + 1], dvTile[t0 + 4 * HDP + 2], dvTile[t0 + 4 * HDP + 3]);
          var b4 = vec4<f32>(dvTile[t0 + 4 * HDP + 4], dvTile[t0 + 4 * HDP + 5], dvTile[t0 + 4 * HDP + 6], dvTile[t0 + 4 * HDP + 7]);
          var a5 = vec4<f32>(dvTile[t0 + 5 * HDP], dvTile[t0 + 5 * HDP + 1], dvTile[t0 + 5 * HDP + 2], dvTile[t0 + 5 * HDP + 3]);
          var b5 = vec4<f32>(dvTile[t0 + 5 * HDP + 4], dvTile[t0 + 5 * HDP + 5], dvTile[t0 + 5 * HDP + 6], dvTile[t0 + 5 * HDP + 7]);
          var a6 = vec4<f32>(dvTile[t0 + 6 * HDP], dvTile[t0 + 6 * HDP + 1], dvTile[t0 + 6 * HDP + 2], dvTile[t0 + 6 * HDP + 3]);
          var b6 = vec4<f32>(dvTile[t0 + 6 * HDP + 4], dvTile[t0 + 6 * HDP + 5], dvTile[t0 + 6 * HDP + 6], dvTile[t0 + 6 * HDP + 7]);
          var a7 = vec4<f32>(dvTile[t0 + 7 * HDP], dvTile[t0 + 7 * HDP + 1], dvTile[t0 + 7 * HDP + 2], dvTile[t0 + 7 * HDP + 3]);
          var b7 = vec4<f32>(dvTile[t0 + 7 * HDP + 4], dvTile[t0 + 7 * HDP + 5], dvTile[t0 + 7 * HDP + 6], dvTile[t0 + 7 * HDP + 7]);
          for (var il = 0; il < TB; il++) {
            let qRow = ((b * T + min(q0 + il, T - 1)) * H + h) * HD;
            let w = Rows8f(vec4<f32>(pS[il * TB + r0], pS[il * TB + r0 + 1], pS[il * TB + r0 + 2], pS[il * TB + r0 + 3]),
                            vec4<f32>(pS[il * TB + r0 + 4], pS[il * TB + r0 + 5], pS[il * TB + r0 + 6], pS[il * TB + r0 + 7]));
            let lo = vec4<f32>(dy[qRow + cols.lo.x], dy[qRow + cols.lo.y], dy[qRow + cols.lo.z], dy[qRow + cols.lo.w]);
            let hi = vec4<f32>(dy[qRow + cols.hi.x], dy[qRow + cols.hi.y], dy[qRow + cols.hi.z], dy[qRow + cols.hi.w]);
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
          dvTile[t0] = a0.x; dvTile[t0 + 1] = a0.y; dvTile[t0 + 2] = a0.z; dvTile[t0 + 3] = a0.w;
          dvTile[t0 + 4] = b0.x; dvTile[t0 + 5] = b0.y; dvTile[t0 + 6] = b0.z; dvTile[t0 + 7] = b0.w;
          dvTile[t0 + 1 * HDP] = a1.x; dvTile[t0 + 1 * HDP + 1] = a1.y; dvTile[t0 + 1 * HDP + 2] = a1.z; dvTile[t0 + 1 * HDP + 3] = a1.w;
          dvTile[t0 + 1 * HDP + 4] = b1.x; dvTile[t0 + 1 * HDP + 5] = b1.y; dvTile[t0 + 1 * HDP + 6] = b1.z; dvTile[t0 + 1 * HDP + 7] = b1.w;
          dvTile[t0 + 2 * HDP] = a2.x; dvTile[t0 + 2 * HDP + 1] = a2.y; dvTile[t0 + 2 * HDP + 2] = a2.z; dvTile[t0 + 2 * HDP + 3] = a2.w;
          dvTile[t0 + 2 * HDP + 4] = b2.x; dvTile[t0 + 2 * HDP + 5] = b2.y; dvTile[t0 + 2 * HDP + 6] = b2.z; dvTile[t0 + 2 * HDP + 7] = b2.w;
          dvTile[t0 + 3 * HDP] = a3.x; dvTile[t0 + 3 * HDP + 1] = a3.y; dvTile[t0 + 3 * HDP + 2] = a3.z; dvTile[t0 + 3 * HDP + 3] = a3.w;
          dvTile[t0 + 3 * HDP + 4] = b3.x; dvTile[t0 + 3 * HDP + 5] = b3.y; dvTile[t0 + 3 * HDP + 6] = b3.z; dvTile[t0 + 3 * HDP + 7] = b3.w;
          dvTile[t0 + 4 * HDP] = a4.x; dvTile[t0 + 4 * HDP + 1] = a4.y; dvTile[t0 + 4 * HDP + 2] = a4.z; dvTile[t0 + 4 * HDP + 3] = a4.w;
          dvTile[t0 + 4 * HDP + 4] = b4.x; dvTile[t0 + 4 * HDP + 5] = b4.y; dvTile[t0 + 4 * HDP + 6] = b4.z; dvTile[t0 + 4 * HDP + 7] = b4.w;
          dvTile[t0 + 5 * HDP] = a5.x; dvTile[t0 + 5 * HDP + 1] = a5.y; dvTile[t0 + 5 * HDP + 2] = a5.z; dvTile[t0 + 5 * HDP + 3] = a5.w;
          dvTile[t0 + 5 * HDP + 4] = b5.x; dvTile[t0 + 5 * HDP + 5] = b5.y; dvTile[t0 + 5 * HDP + 6] = b5.z; dvTile[t0 + 5 * HDP + 7] = b5.w;
          dvTile[t0 + 6 * HDP] = a6.x; dvTile[t0 + 6 * HDP + 1] = a6.y; dvTile[t0 + 6 * HDP + 2] = a6.z; dvTile[t0 + 6 * HDP + 3] = a6.w;
          dvTile[t0 + 6 * HDP + 4] = b6.x; dvTile[t0 + 6 * HDP + 5] = b6.y; dvTile[t0 + 6 * HDP + 6] = b6.z; dvTile[t0 + 6 * HDP + 7] = b6.w;
          dvTile[t0 + 7 * HDP] = a7.x; dvTile[t0 + 7 * HDP + 1] = a7.y; dvTile[t0 + 7 * HDP + 2] = a7.z; dvTile[t0 + 7 * HDP + 3] = a7.w;
          dvTile[t0 + 7 * HDP + 4] = b7.x; dvTile[t0 + 7 * HDP + 5] = b7.y; dvTile[t0 + 7 * HDP + 6] = b7.z; dvTile[t0 + 7 * HDP + 7] = b7.w;
        }
        {
          var a0 = vec4<f32>(dkTile[t0], dkTile[t0 + 1], dkTile[t0 + 2], dkTile[t0 + 3]);
          var b0 = vec4<f32>(dkTile[t0 + 4], dkTile[t0 + 5], dkTile[t0 + 6], dkTile[t0 + 7]);
          var a1 = vec4<f32>(dkTile[t0 + 1 * HDP], dkTile[t0 + 1 * HDP + 1], dkTile[t0 + 1 * HDP + 2], dkTile[t0 + 1 * HDP + 3]);
          var b1 = vec4<f32>(dkTile[t0 + 1 * HDP + 4], dkTile[t0 + 1 * HDP + 5], dkTile[t0 + 1 * HDP + 6], dkTile[t0 + 1 * HDP + 7]);
          var a2 = vec4<f32>(dkTile[t0 + 2 * HDP], dkTile[t0 + 2 * HDP + 1], dkTile[t0 + 2 * HDP + 2], dkTile[t0 + 2 * HDP + 3]);
          var b2 = vec4<f32>(dkTile[t0 + 2 * HDP + 4], dkTile[t0 + 2 * HDP + 5], dkTile[t0 + 2 * HDP + 6], dkTile[t0 + 2 * HDP + 7]);
          var a3 = vec4<f32>(dkTile[t0 + 3 * HDP], dkTile[t0 + 3 * HDP + 1], dkTile[t0 + 3 * HDP + 2], dkTile[t0 + 3 * HDP + 3]);
          var b3 = vec4<f32>(dkTile[t0 + 3 * HDP + 4], dkTile[t0 + 3 * HDP + 5], dkTile[t0 + 3 * HDP + 6], dkTile[t0 + 3 * HDP + 7]);
          var a4 = vec4<f32>(dkTile[t0 + 4 * HDP], dkTile[t0 + 4 * HDP + 1], dkTile[t0 + 4 * HDP + 2], dkTile[t0 + 4 * HDP + 3]);
          var b4 = vec4<f32>(dkTile[t0 + 4 * HDP + 4], dkTile[t0 + 4 * HDP + 5], dkTile[t0 + 4 * HDP + 6], dkTile[t0 + 4 * HDP + 7]);
          var a5 = vec4<f32>(dkTile[t0 + 5 * HDP], dkTile[t0 + 5 * HDP + 1], dkTile[t0 + 5 * HDP + 2], dkTile[t0 + 5 * HDP + 3]);
          var b5 = vec4<f32>(dkTile[t0 + 5 * HDP + 4], dkTile[t0 + 5 * HDP + 5], dkTile[t0 + 5 * HDP + 6], dkTile[t0 + 5 * HDP + 7]);
          var a6 = vec4<f32>(dkTile[t0 + 6 * HDP], dkTile[t0 + 6 * HDP + 1], dkTile[t0 + 6 * HDP + 2], dkTile[t0 + 6 * HDP + 3]);
          var b6 = vec4<f32>(dkTile[t0 + 6 * HDP + 4], dkTile[t0 + 6 * HDP + 5], dkTile[t0 + 6 * HDP + 6], dkTile[t0 + 6 * HDP + 7]);
          var a7 = vec4<f32>(dkTile[t0 + 7 * HDP], dkTile[t0 + 7 * HDP + 1], dkTile[t0 + 7 * HDP + 2], dkTile[t0 + 7 * HDP + 3]);
          var b7 = vec4<f32>(dkTile[t0 + 7 * HDP + 4], dkTile[t0 + 7 * HDP + 5], dkTile[t0 + 7 * HDP + 6], dkTile[t0 + 7 * HDP + 7]);
          for (var il = 0; il < TB; il++) {
            let qRow = ((b * T + min(q0 + il, T - 1)) * H + h) * HD;
            let w = Rows8f(vec4<f32>(dsS[il * TB + r0], dsS[il * TB + r0 + 1], dsS[il * TB + r0 + 2], dsS[il * TB + r0 + 3]),
                            vec4<f32>(dsS[il * TB + r0 + 4], dsS[il * TB + r0 + 5], dsS[il * TB + r0 + 6], dsS[il * TB + r0 + 7]));
            let lo = vec4<f32>(q[qRow + cols.lo.x], q[qRow + cols.lo.y], q[qRow + cols.lo.z], q[qRow + cols.lo.w]);
            let hi = vec4<f32>(q[qRow + cols.hi.x], q[qRow + cols.hi.y], q[qRow + cols.hi.z], q[qRow + cols.hi.w]);
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
          dkTile[t0] = a0.x; dkTile[t0 + 1] = a0.y; dkTile[t0 + 2] = a0.z; dkTile[t0 + 3] = a0.w;
          dkTile[t0 + 4] = b0.x; dkTile[t0 + 5] = b0.y; dkTile[t0 + 6] = b0.z; dkTile[t0 + 7] = b0.w;
          dkTile[t0 + 1 * HDP] = a1.x; dkTile[t0 + 1 * HDP + 1] = a1.y; dkTile[t0 + 1 * HDP + 2] = a1.z; dkTile[t0 + 1 * HDP + 3] = a1.w;
          dkTile[t0 + 1 * HDP + 4] = b1.x; dkTile[t0 + 1 * HDP + 5] = b1.y; dkTile[t0 + 1 * HDP + 6] = b1.z; dkTile[t0 + 1 * HDP + 7] = b1.w;
          dkTile[t0 + 2 * HDP] = a2.x; dkTile[t0 + 2 * HDP + 1] = a2.y; dkTile[t0 + 2 * HDP + 2] = a2.z; dkTile[t0 + 2 * HDP + 3] = a2.w;
          dkTile[t0 + 2 * HDP + 4] = b2.x; dkTile[t0 + 2 * HDP + 5] = b2.y; dkTile[t0 + 2 * HDP + 6] = b2.z; dkTile[t0 + 2 * HDP + 7] = b2.w;
          dkTile[t0 + 3 * HDP] = a3.x; dkTile[t0 + 3 * HDP + 1] = a3.y; dkTile[t0 + 3 * HDP + 2] = a3.z; dkTile[t0 + 3 * HDP + 3] = a3.w;
          dkTile[t0 + 3 * HDP + 4] = b3.x; dkTile[t0 + 3 * HDP + 5] = b3.y; dkTile[t0 + 3 * HDP + 6] = b3.z; dkTile[t0 + 3 * HDP + 7] = b3.w;
          dkTile[t0 + 4 * HDP] = a4.x; dkTile[t0 + 4 * HDP + 1] = a4.y; dkTile[t0 + 4 * HDP + 2] = a4.z; dkTile[t0 + 4 * HDP + 3] = a4.w;
          dkTile[t0 + 4 * HDP + 4] = b4.x; dkTile[t0 + 4 * HDP + 5] = b4.y; dkTile[t0 + 4 * HDP + 6] = b4.z; dkTile[t0 + 4 * HDP + 7] = b4.w;
          dkTile[t0 + 5 * HDP] = a5.x; dkTile[t0 + 5 * HDP + 1] = a5.y; dkTile[t0 + 5 * HDP + 2] = a5.z; dkTile[t0 + 5 * HDP + 3] = a5.w;
          dkTile[t0 + 5 * HDP + 4] = b5.x; dkTile[t0 + 5 * HDP + 5] = b5.y; dkTile[t0 + 5 * HDP + 6] = b5.z; dkTile[t0 + 5 * HDP + 7] = b5.w;
          dkTile[t0 + 6 * HDP] = a6.x; dkTile[t0 + 6 * HDP + 1] = a6.y; dkTile[t0 + 6 * HDP + 2] = a6.z; dkTile[t0 + 6 * HDP + 3] = a6.w;
          dkTile[t0 + 6 * HDP + 4] = b6.x; dkTile[t0 + 6 * HDP + 5] = b6.y; dkTile[t0 + 6 * HDP + 6] = b6.z; dkTile[t0 + 6 * HDP + 7] = b6.w;
          dkTile[t0 + 7 * HDP] = a7.x; dkTile[t0 + 7 * HDP + 1] = a7.y; dkTile[t0 + 7 * HDP + 2] = a7.z; dkTile[t0 + 7 * HDP + 3] = a7.w;
          dkTile[t0 + 7 * HDP + 4] = b7.x; dkTile[t0 + 7 * HDP + 5] = b7.y; dkTile[t0 + 7 * HDP + 6] = b7.z; dkTile[t0 + 7 * HDP + 7] = b7.w;
        }
      }
      workgroupBarrier();
    }
  }
  let sc = uniforms.scale;
  let live = wg < uniforms.groups; // false in the extra workgroups of a folded dispatch
  for (var e = lane; e < TB * HD; e += LANES) {
    let row = e / HD;
    let c = e % HD;
    let j = k0 + row;
    if (live && j < T) {
      let o = ((b * T + j) * Hkv + kvh) * 2 * HD;
      result[o + c] = dkTile[row * HDP + c] * sc;
      result[o + HD + c] = dvTile[row * HDP + c];
    }
  }
}
