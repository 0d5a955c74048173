// OspCausalAttentionGrad, part 1: dq[b, i, h] = scale sum_{j <= i} ds[i, j] k[b, j, kvh] with
// ds = p (dy . v - delta), p = exp(scale q . k - lse), recomputed blockwise from the forward's
// log-sum-exp (attention_bwd_common). A workgroup owns TB queries of one (b, h) and walks the key
// blocks at or before its last query: (A) each lane computes p of its 8 x 8 block (qkTile) into dsT,
// then dy . v (dyvTile) and turns its entries of dsT into ds; (C) each lane adds ds k to its part of
// the dq tile. Tile layout and constants: attention_common.wgsl.
//
// Bindings: result [B, T, heads, HD], q, k, v, dy, fwd (the forward's packed result), delta.
// Uniforms: heads, kvHeads, t, blocks (tiles per sequence), groups (workgroups), scale.

var<workgroup> dsT : array<f32, TB * TB>; // [key in block][query in tile]: p, then ds
var<workgroup> dqTile : array<f32, TB * HDP>; // [query in tile][channel]
var<workgroup> keyEnd : i32;

// p of one query row (tile row `row`, 8 keys from keys0 at block positions jl0 ..) into dsT.
fn putP(row : i32, jl0 : i32, keys0 : i32, a : vec4<f32>, b : vec4<f32>, lse : f32, last : i32) {
  let sc = uniforms.scale;
  let keys = vec4<i32>(keys0, keys0 + 1, keys0 + 2, keys0 + 3);
  let pa = select(vec4<f32>(0.0), exp(a * sc - lse), keys <= vec4<i32>(last));
  let pb = select(vec4<f32>(0.0), exp(b * sc - lse), keys + 4 <= vec4<i32>(last));
  dsT[jl0 * TB + row] = pa.x;
  dsT[(jl0 + 1) * TB + row] = pa.y;
  dsT[(jl0 + 2) * TB + row] = pa.z;
  dsT[(jl0 + 3) * TB + row] = pa.w;
  dsT[(jl0 + 4) * TB + row] = pb.x;
  dsT[(jl0 + 5) * TB + row] = pb.y;
  dsT[(jl0 + 6) * TB + row] = pb.z;
  dsT[(jl0 + 7) * TB + row] = pb.w;
}

// ds = p (g - dl) for the same entries.
fn putDs(row : i32, jl0 : i32, a : vec4<f32>, b : vec4<f32>, dl : f32) {
  let o = jl0 * TB + row;
  dsT[o] *= a.x - dl;
  dsT[o + TB] *= a.y - dl;
  dsT[o + 2 * TB] *= a.z - dl;
  dsT[o + 3 * TB] *= a.w - dl;
  dsT[o + 4 * TB] *= b.x - dl;
  dsT[o + 5 * TB] *= b.y - dl;
  dsT[o + 6 * TB] *= b.z - dl;
  dsT[o + 7 * TB] *= b.w - dl;
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
  let lse = rowLse(b, q0 + r0, T, H, h);
  let dl = rowDelta(b, q0 + r0, T, H, h);

  for (var e = lane; e < TB * HDP; e += LANES) {
    dqTile[e] = 0.0;
  }
  if (lane == 0) {
    keyEnd = min(T, q0 + TB);
  }
  let kEnd = workgroupUniformLoad(&keyEnd);
  for (var k0 = 0; k0 < kEnd; k0 += TB) {
    // (A) p, then ds, of the lane's block. dy is laid out as q and v as k: the same offsets serve.
    let kRows = rowOffsets(b, k0 + 8 * cg, T, Hkv, kvh);
    let keys0 = k0 + 8 * cg;
    let s = qkTile(qRows, kRows);
    putP(r0 + 0, 8 * cg, keys0, s.a0, s.b0, lse.lo.x, min(q0 + r0 + 0, T - 1));
    putP(r0 + 1, 8 * cg, keys0, s.a1, s.b1, lse.lo.y, min(q0 + r0 + 1, T - 1));
    putP(r0 + 2, 8 * cg, keys0, s.a2, s.b2, lse.lo.z, min(q0 + r0 + 2, T - 1));
    putP(r0 + 3, 8 * cg, keys0, s.a3, s.b3, lse.lo.w, min(q0 + r0 + 3, T - 1));
    putP(r0 + 4, 8 * cg, keys0, s.a4, s.b4, lse.hi.x, min(q0 + r0 + 4, T - 1));
    putP(r0 + 5, 8 * cg, keys0, s.a5, s.b5, lse.hi.y, min(q0 + r0 + 5, T - 1));
    putP(r0 + 6, 8 * cg, keys0, s.a6, s.b6, lse.hi.z, min(q0 + r0 + 6, T - 1));
    putP(r0 + 7, 8 * cg, keys0, s.a7, s.b7, lse.hi.w, min(q0 + r0 + 7, T - 1));
    let g = dyvTile(qRows, kRows);
    putDs(r0 + 0, 8 * cg, g.a0, g.b0, dl.lo.x);
    putDs(r0 + 1, 8 * cg, g.a1, g.b1, dl.lo.y);
    putDs(r0 + 2, 8 * cg, g.a2, g.b2, dl.lo.z);
    putDs(r0 + 3, 8 * cg, g.a3, g.b3, dl.lo.w);
    putDs(r0 + 4, 8 * cg, g.a4, g.b4, dl.hi.x);
    putDs(r0 + 5, 8 * cg, g.a5, g.b5, dl.hi.y);
    putDs(r0 + 6, 8 * cg, g.a6, g.b6, dl.hi.z);
    putDs(r0 + 7, 8 * cg, g.a7, g.b7, dl.hi.w);
    workgroupBarrier();
    // (C) dqTile += ds k
    for (var u = 0; u < HDP / TB; u++) {
      let cols = chunkColumns(cg, u);
      let t0 = r0 * HDP + u * TB + 8 * cg;
      var acc = loadTile(&dqTile, t0);
      for (var jl = 0; jl < TB; jl++) {
        let kRow = ((b * T + min(k0 + jl, T - 1)) * Hkv + kvh) * HD;
        let lo = vec4<f32>(k[kRow + cols.lo.x], k[kRow + cols.lo.y], k[kRow + cols.lo.z], k[kRow + cols.lo.w]);
        let hi = vec4<f32>(k[kRow + cols.hi.x], k[kRow + cols.hi.y], k[kRow + cols.hi.z], k[kRow + cols.hi.w]);
        acc = addOuter(acc, weights8(&dsT, jl * TB + r0), lo, hi);
      }
      storeTile(&dqTile, t0, acc);
    }
    workgroupBarrier();
  }
  let sc = uniforms.scale;
  let live = wg < uniforms.groups; // false in the extra workgroups of a folded dispatch
  for (var e = lane; e < TB * HD; e += LANES) {
    let row = e / HD;
    let i = q0 + row;
    if (live && i < T) {
      result[((b * T + i) * H + h) * HD + e % HD] = dqTile[row * HDP + e % HD] * sc;
    }
  }
}
