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
          var acc = loadTile(&dvTile, t0);
          for (var il = 0; il < TB; il++) {
            let qRow = ((b * T + min(q0 + il, T - 1)) * H + h) * HD;
            let lo = vec4<f32>(dy[qRow + cols.lo.x], dy[qRow + cols.lo.y], dy[qRow + cols.lo.z], dy[qRow + cols.lo.w]);
            let hi = vec4<f32>(dy[qRow + cols.hi.x], dy[qRow + cols.hi.y], dy[qRow + cols.hi.z], dy[qRow + cols.hi.w]);
            acc = addOuter(acc, weights8(&pS, il * TB + r0), lo, hi);
          }
          storeTile(&dvTile, t0, acc);
        }
        {
          var acc = loadTile(&dkTile, t0);
          for (var il = 0; il < TB; il++) {
            let qRow = ((b * T + min(q0 + il, T - 1)) * H + h) * HD;
            let lo = vec4<f32>(q[qRow + cols.lo.x], q[qRow + cols.lo.y], q[qRow + cols.lo.z], q[qRow + cols.lo.w]);
            let hi = vec4<f32>(q[qRow + cols.hi.x], q[qRow + cols.hi.y], q[qRow + cols.hi.z], q[qRow + cols.hi.w]);
            acc = addOuter(acc, weights8(&dsS, il * TB + r0), lo, hi);
          }
          storeTile(&dkTile, t0, acc);
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
