// OspCausalAttentionGrad, part 2: for key j of key/value head kvh,
//   dv[b, j, kvh] = sum_h sum_{i >= j} p[h, i, j] dy[b, i, h]
//   dk[b, j, kvh] = scale sum_h sum_{i >= j} ds[h, i, j] q[b, i, h]
// over the query heads h that read kvh. A workgroup owns TB keys of one (b, kvh) and walks, for each
// of those query heads, the query blocks at or after its first key: (A) each lane recomputes its
// 4 x 4 block of p and ds (attention_bwd_common; here rows are the block's queries 4 rg .. and
// components the tile's keys 4 cg ..) into pS and dsS; (C) each lane adds p dy and ds q to its rows
// (keys 4 rg .. 4 rg + 3) of the dv and dk tiles. Tile layout and constants: attention_common.wgsl.
//
// Bindings: result [B * T * kvHeads, 2 * HD] (per key and head: dk, then dv), q, k, v, dy, fwd, delta.
// Uniforms: heads, kvHeads, t, blocks (tiles per sequence), scale.

var<workgroup> pS : array<f32, TB * TB>; // [query in block][key in tile]
var<workgroup> dsS : array<f32, TB * TB>;
var<workgroup> dkTile : array<f32, TB * HDP>; // [key in tile][channel]
var<workgroup> dvTile : array<f32, TB * HDP>;
var<workgroup> queryStart : i32;

fn putRows(row : i32, col : i32, p : vec4<f32>, d : vec4<f32>) {
  let o = row * TB + col;
  pS[o] = p.x; pS[o + 1] = p.y; pS[o + 2] = p.z; pS[o + 3] = p.w;
  dsS[o] = d.x; dsS[o + 1] = d.y; dsS[o + 2] = d.z; dsS[o + 3] = d.w;
}

// The last key query row i may see: i itself, or none (-1) past the sequence.
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
  let r0 = 4 * rg;
  let kOff = rowOffsets(b, k0 + 4 * cg, T, Hkv, kvh);

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
      // (A) rows: queries q0 + 4 rg .., components: keys k0 + 4 cg ..
      let qOff = rowOffsets(b, q0 + r0, T, H, h);
      let lse = rowLse(b, q0 + r0, T, H, h);
      let dl = rowDelta(b, q0 + r0, T, H, h);
      let i0 = q0 + r0;
      let last = vec4<i32>(lastKey(i0, T), lastKey(i0 + 1, T), lastKey(i0 + 2, T), lastKey(i0 + 3, T));
      // dy has the layout of q and v that of k: the same offsets serve both.
      let pr = probsBlock(qOff, kOff, qOff, kOff, k0 + 4 * cg, lse, dl, last);
      putRows(r0, 4 * cg, pr.p0, pr.d0);
      putRows(r0 + 1, 4 * cg, pr.p1, pr.d1);
      putRows(r0 + 2, 4 * cg, pr.p2, pr.d2);
      putRows(r0 + 3, 4 * cg, pr.p3, pr.d3);
      workgroupBarrier();
      // (C) rows of the tiles: keys k0 + 4 rg .. k0 + 4 rg + 3
      for (var u = 0; u < HDP / TB; u++) {
        let cols = chunkColumns(cg, u);
        let t0 = r0 * HDP + u * TB + 4 * cg;
        let t1 = t0 + HDP;
        let t2 = t0 + 2 * HDP;
        let t3 = t0 + 3 * HDP;
        var v0 = vec4<f32>(dvTile[t0], dvTile[t0 + 1], dvTile[t0 + 2], dvTile[t0 + 3]);
        var v1 = vec4<f32>(dvTile[t1], dvTile[t1 + 1], dvTile[t1 + 2], dvTile[t1 + 3]);
        var v2 = vec4<f32>(dvTile[t2], dvTile[t2 + 1], dvTile[t2 + 2], dvTile[t2 + 3]);
        var v3 = vec4<f32>(dvTile[t3], dvTile[t3 + 1], dvTile[t3 + 2], dvTile[t3 + 3]);
        var k0v = vec4<f32>(dkTile[t0], dkTile[t0 + 1], dkTile[t0 + 2], dkTile[t0 + 3]);
        var k1v = vec4<f32>(dkTile[t1], dkTile[t1 + 1], dkTile[t1 + 2], dkTile[t1 + 3]);
        var k2v = vec4<f32>(dkTile[t2], dkTile[t2 + 1], dkTile[t2 + 2], dkTile[t2 + 3]);
        var k3v = vec4<f32>(dkTile[t3], dkTile[t3 + 1], dkTile[t3 + 2], dkTile[t3 + 3]);
        for (var il = 0; il < TB; il++) {
          let rb = ((b * T + min(q0 + il, T - 1)) * H + h) * HD;
          let dyv = vec4<f32>(dy[rb + cols.x], dy[rb + cols.y], dy[rb + cols.z], dy[rb + cols.w]);
          let qv = vec4<f32>(q[rb + cols.x], q[rb + cols.y], q[rb + cols.z], q[rb + cols.w]);
          let o = il * TB + r0;
          let p = vec4<f32>(pS[o], pS[o + 1], pS[o + 2], pS[o + 3]);
          let d = vec4<f32>(dsS[o], dsS[o + 1], dsS[o + 2], dsS[o + 3]);
          v0 = fma(vec4<f32>(p.x), dyv, v0);
          v1 = fma(vec4<f32>(p.y), dyv, v1);
          v2 = fma(vec4<f32>(p.z), dyv, v2);
          v3 = fma(vec4<f32>(p.w), dyv, v3);
          k0v = fma(vec4<f32>(d.x), qv, k0v);
          k1v = fma(vec4<f32>(d.y), qv, k1v);
          k2v = fma(vec4<f32>(d.z), qv, k2v);
          k3v = fma(vec4<f32>(d.w), qv, k3v);
        }
        dvTile[t0] = v0.x; dvTile[t0 + 1] = v0.y; dvTile[t0 + 2] = v0.z; dvTile[t0 + 3] = v0.w;
        dvTile[t1] = v1.x; dvTile[t1 + 1] = v1.y; dvTile[t1 + 2] = v1.z; dvTile[t1 + 3] = v1.w;
        dvTile[t2] = v2.x; dvTile[t2 + 1] = v2.y; dvTile[t2 + 2] = v2.z; dvTile[t2 + 3] = v2.w;
        dvTile[t3] = v3.x; dvTile[t3 + 1] = v3.y; dvTile[t3 + 2] = v3.z; dvTile[t3 + 3] = v3.w;
        dkTile[t0] = k0v.x; dkTile[t0 + 1] = k0v.y; dkTile[t0 + 2] = k0v.z; dkTile[t0 + 3] = k0v.w;
        dkTile[t1] = k1v.x; dkTile[t1 + 1] = k1v.y; dkTile[t1 + 2] = k1v.z; dkTile[t1 + 3] = k1v.w;
        dkTile[t2] = k2v.x; dkTile[t2 + 1] = k2v.y; dkTile[t2 + 2] = k2v.z; dkTile[t2 + 3] = k2v.w;
        dkTile[t3] = k3v.x; dkTile[t3 + 1] = k3v.y; dkTile[t3 + 2] = k3v.z; dkTile[t3 + 3] = k3v.w;
      }
      workgroupBarrier();
    }
  }
  let sc = uniforms.scale;
  for (var e = lane; e < TB * HD; e += LANES) {
    let row = e / HD;
    let c = e % HD;
    let j = k0 + row;
    if (j < T) {
      let o = ((b * T + j) * Hkv + kvh) * 2 * HD;
      result[o + c] = dkTile[row * HDP + c] * sc;
      result[o + HD + c] = dvTile[row * HDP + c];
    }
  }
}
