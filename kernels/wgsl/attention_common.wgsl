// Shared by the fused causal attention kernels (attention_fwd, attention_dq, attention_dkv): the
// tile layout and the blocks of dot products.
//
// Tensors are in the [B, T, heads, HD] layout a projection produces (no transposes): q and dy have
// `heads` heads, k and v `kvHeads`; query head h reads key/value head h / (heads / kvHeads).
// A workgroup owns one tile of TB rows (queries, or keys for attention_dkv) of one (b, head) and
// walks the tiles of the other side in blocks of TB. Its LANES = G * G lanes form a G x G grid
// (G = TB / 8): in a TB x TB block of scores lane (rg, cg) holds rows 8 rg .. 8 rg + 7 and columns
// 8 cg .. 8 cg + 7 (a Tile8: two vec4 registers per row); in a TB x HDP output tile it holds the
// same rows and columns 8 cg + TB u .. + 7 for u = 0 .. HDP / TB - 1 (HDP: HD rounded up to TB).
// This is batch_matmul.wgsl's register blocking: per step, 16 loads feed 16 vec4 FMAs. On lavapipe
// every load with a per-lane address is a gather, so loads per FMA set the speed (4 x 4 blocks ran
// at half the rate). Accumulators are named registers, never per-lane arrays indexed in a loop
// (some drivers, lavapipe among them, lower those to selects over every element).
//
// Host-provided constants: TB (32, or 16 where a kernel's tiles would not fit 32 KiB of workgroup
// memory), HD (head dimension), HDP (HD rounded up to a multiple of TB).

const G : i32 = TB / 8;
const LANES : i32 = G * G;
const LOWEST : f32 = -3.4028234e38;

struct Rows8 {
  lo : vec4<i32>,
  hi : vec4<i32>,
}

struct Rows8f {
  lo : vec4<f32>,
  hi : vec4<f32>,
}

// An 8 x 8 block: row r's columns 0-3 in a<r>, 4-7 in b<r>.
struct Tile8 {
  a0 : vec4<f32>,
  b0 : vec4<f32>,
  a1 : vec4<f32>,
  b1 : vec4<f32>,
  a2 : vec4<f32>,
  b2 : vec4<f32>,
  a3 : vec4<f32>,
  b3 : vec4<f32>,
  a4 : vec4<f32>,
  b4 : vec4<f32>,
  a5 : vec4<f32>,
  b5 : vec4<f32>,
  a6 : vec4<f32>,
  b6 : vec4<f32>,
  a7 : vec4<f32>,
  b7 : vec4<f32>,
}

// Element offsets of 8 consecutive rows (clamped to the last row t - 1) of one head in a
// [B, T, heads, HD] tensor.
fn rowOffsets(b : i32, row0 : i32, t : i32, heads : i32, head : i32) -> Rows8 {
  let base = b * t;
  return Rows8(
    vec4<i32>(((base + min(row0, t - 1)) * heads + head) * HD, ((base + min(row0 + 1, t - 1)) * heads + head) * HD,
              ((base + min(row0 + 2, t - 1)) * heads + head) * HD, ((base + min(row0 + 3, t - 1)) * heads + head) * HD),
    vec4<i32>(((base + min(row0 + 4, t - 1)) * heads + head) * HD, ((base + min(row0 + 5, t - 1)) * heads + head) * HD,
              ((base + min(row0 + 6, t - 1)) * heads + head) * HD, ((base + min(row0 + 7, t - 1)) * heads + head) * HD));
}

// Column offsets (within a row of HD) of a lane's 8 columns in output chunk u, clamped to HD - 1
// for reads; the padding columns past HD are computed and never written.
fn chunkColumns(cg : i32, u : i32) -> Rows8 {
  let c0 = u * TB + 8 * cg;
  let m = HD - 1;
  return Rows8(vec4<i32>(min(c0, m), min(c0 + 1, m), min(c0 + 2, m), min(c0 + 3, m)),
               vec4<i32>(min(c0 + 4, m), min(c0 + 5, m), min(c0 + 6, m), min(c0 + 7, m)));
}

// q[row] . k[col] for 8 query rows (offsets ar into q) and 8 keys (offsets br into k), unscaled.
fn qkTile(ar : Rows8, br : Rows8) -> Tile8 {
  var a0 = vec4<f32>(0.0);
  var b0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var b1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var b2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  var b3 = vec4<f32>(0.0);
  var a4 = vec4<f32>(0.0);
  var b4 = vec4<f32>(0.0);
  var a5 = vec4<f32>(0.0);
  var b5 = vec4<f32>(0.0);
  var a6 = vec4<f32>(0.0);
  var b6 = vec4<f32>(0.0);
  var a7 = vec4<f32>(0.0);
  var b7 = vec4<f32>(0.0);
  for (var c = 0; c < HD; c++) {
    let lo = vec4<f32>(k[br.lo.x + c], k[br.lo.y + c], k[br.lo.z + c], k[br.lo.w + c]);
    let hi = vec4<f32>(k[br.hi.x + c], k[br.hi.y + c], k[br.hi.z + c], k[br.hi.w + c]);
    let x0 = vec4<f32>(q[ar.lo.x + c]);
    let x1 = vec4<f32>(q[ar.lo.y + c]);
    let x2 = vec4<f32>(q[ar.lo.z + c]);
    let x3 = vec4<f32>(q[ar.lo.w + c]);
    let x4 = vec4<f32>(q[ar.hi.x + c]);
    let x5 = vec4<f32>(q[ar.hi.y + c]);
    let x6 = vec4<f32>(q[ar.hi.z + c]);
    let x7 = vec4<f32>(q[ar.hi.w + c]);
    a0 = fma(x0, lo, a0);
    b0 = fma(x0, hi, b0);
    a1 = fma(x1, lo, a1);
    b1 = fma(x1, hi, b1);
    a2 = fma(x2, lo, a2);
    b2 = fma(x2, hi, b2);
    a3 = fma(x3, lo, a3);
    b3 = fma(x3, hi, b3);
    a4 = fma(x4, lo, a4);
    b4 = fma(x4, hi, b4);
    a5 = fma(x5, lo, a5);
    b5 = fma(x5, hi, b5);
    a6 = fma(x6, lo, a6);
    b6 = fma(x6, hi, b6);
    a7 = fma(x7, lo, a7);
    b7 = fma(x7, hi, b7);
  }
  return Tile8(a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7);
}

// A lane's accumulators in an output tile (workgroup memory, rows of HDP floats): 8 rows from t0 (the
// lane's first row and column), 8 columns each.
fn loadTile(t : ptr<workgroup, array<f32, TB * HDP>>, t0 : i32) -> Tile8 {
  let a0 = vec4<f32>((*t)[t0 + 0 * HDP], (*t)[t0 + 0 * HDP + 1], (*t)[t0 + 0 * HDP + 2], (*t)[t0 + 0 * HDP + 3]);
  let b0 = vec4<f32>((*t)[t0 + 0 * HDP + 4], (*t)[t0 + 0 * HDP + 5], (*t)[t0 + 0 * HDP + 6], (*t)[t0 + 0 * HDP + 7]);
  let a1 = vec4<f32>((*t)[t0 + 1 * HDP], (*t)[t0 + 1 * HDP + 1], (*t)[t0 + 1 * HDP + 2], (*t)[t0 + 1 * HDP + 3]);
  let b1 = vec4<f32>((*t)[t0 + 1 * HDP + 4], (*t)[t0 + 1 * HDP + 5], (*t)[t0 + 1 * HDP + 6], (*t)[t0 + 1 * HDP + 7]);
  let a2 = vec4<f32>((*t)[t0 + 2 * HDP], (*t)[t0 + 2 * HDP + 1], (*t)[t0 + 2 * HDP + 2], (*t)[t0 + 2 * HDP + 3]);
  let b2 = vec4<f32>((*t)[t0 + 2 * HDP + 4], (*t)[t0 + 2 * HDP + 5], (*t)[t0 + 2 * HDP + 6], (*t)[t0 + 2 * HDP + 7]);
  let a3 = vec4<f32>((*t)[t0 + 3 * HDP], (*t)[t0 + 3 * HDP + 1], (*t)[t0 + 3 * HDP + 2], (*t)[t0 + 3 * HDP + 3]);
  let b3 = vec4<f32>((*t)[t0 + 3 * HDP + 4], (*t)[t0 + 3 * HDP + 5], (*t)[t0 + 3 * HDP + 6], (*t)[t0 + 3 * HDP + 7]);
  let a4 = vec4<f32>((*t)[t0 + 4 * HDP], (*t)[t0 + 4 * HDP + 1], (*t)[t0 + 4 * HDP + 2], (*t)[t0 + 4 * HDP + 3]);
  let b4 = vec4<f32>((*t)[t0 + 4 * HDP + 4], (*t)[t0 + 4 * HDP + 5], (*t)[t0 + 4 * HDP + 6], (*t)[t0 + 4 * HDP + 7]);
  let a5 = vec4<f32>((*t)[t0 + 5 * HDP], (*t)[t0 + 5 * HDP + 1], (*t)[t0 + 5 * HDP + 2], (*t)[t0 + 5 * HDP + 3]);
  let b5 = vec4<f32>((*t)[t0 + 5 * HDP + 4], (*t)[t0 + 5 * HDP + 5], (*t)[t0 + 5 * HDP + 6], (*t)[t0 + 5 * HDP + 7]);
  let a6 = vec4<f32>((*t)[t0 + 6 * HDP], (*t)[t0 + 6 * HDP + 1], (*t)[t0 + 6 * HDP + 2], (*t)[t0 + 6 * HDP + 3]);
  let b6 = vec4<f32>((*t)[t0 + 6 * HDP + 4], (*t)[t0 + 6 * HDP + 5], (*t)[t0 + 6 * HDP + 6], (*t)[t0 + 6 * HDP + 7]);
  let a7 = vec4<f32>((*t)[t0 + 7 * HDP], (*t)[t0 + 7 * HDP + 1], (*t)[t0 + 7 * HDP + 2], (*t)[t0 + 7 * HDP + 3]);
  let b7 = vec4<f32>((*t)[t0 + 7 * HDP + 4], (*t)[t0 + 7 * HDP + 5], (*t)[t0 + 7 * HDP + 6], (*t)[t0 + 7 * HDP + 7]);
  return Tile8(a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7);
}

fn storeTile(t : ptr<workgroup, array<f32, TB * HDP>>, t0 : i32, x : Tile8) {
  (*t)[t0 + 0 * HDP] = x.a0.x; (*t)[t0 + 0 * HDP + 1] = x.a0.y; (*t)[t0 + 0 * HDP + 2] = x.a0.z; (*t)[t0 + 0 * HDP + 3] = x.a0.w;
  (*t)[t0 + 0 * HDP + 4] = x.b0.x; (*t)[t0 + 0 * HDP + 5] = x.b0.y; (*t)[t0 + 0 * HDP + 6] = x.b0.z; (*t)[t0 + 0 * HDP + 7] = x.b0.w;
  (*t)[t0 + 1 * HDP] = x.a1.x; (*t)[t0 + 1 * HDP + 1] = x.a1.y; (*t)[t0 + 1 * HDP + 2] = x.a1.z; (*t)[t0 + 1 * HDP + 3] = x.a1.w;
  (*t)[t0 + 1 * HDP + 4] = x.b1.x; (*t)[t0 + 1 * HDP + 5] = x.b1.y; (*t)[t0 + 1 * HDP + 6] = x.b1.z; (*t)[t0 + 1 * HDP + 7] = x.b1.w;
  (*t)[t0 + 2 * HDP] = x.a2.x; (*t)[t0 + 2 * HDP + 1] = x.a2.y; (*t)[t0 + 2 * HDP + 2] = x.a2.z; (*t)[t0 + 2 * HDP + 3] = x.a2.w;
  (*t)[t0 + 2 * HDP + 4] = x.b2.x; (*t)[t0 + 2 * HDP + 5] = x.b2.y; (*t)[t0 + 2 * HDP + 6] = x.b2.z; (*t)[t0 + 2 * HDP + 7] = x.b2.w;
  (*t)[t0 + 3 * HDP] = x.a3.x; (*t)[t0 + 3 * HDP + 1] = x.a3.y; (*t)[t0 + 3 * HDP + 2] = x.a3.z; (*t)[t0 + 3 * HDP + 3] = x.a3.w;
  (*t)[t0 + 3 * HDP + 4] = x.b3.x; (*t)[t0 + 3 * HDP + 5] = x.b3.y; (*t)[t0 + 3 * HDP + 6] = x.b3.z; (*t)[t0 + 3 * HDP + 7] = x.b3.w;
  (*t)[t0 + 4 * HDP] = x.a4.x; (*t)[t0 + 4 * HDP + 1] = x.a4.y; (*t)[t0 + 4 * HDP + 2] = x.a4.z; (*t)[t0 + 4 * HDP + 3] = x.a4.w;
  (*t)[t0 + 4 * HDP + 4] = x.b4.x; (*t)[t0 + 4 * HDP + 5] = x.b4.y; (*t)[t0 + 4 * HDP + 6] = x.b4.z; (*t)[t0 + 4 * HDP + 7] = x.b4.w;
  (*t)[t0 + 5 * HDP] = x.a5.x; (*t)[t0 + 5 * HDP + 1] = x.a5.y; (*t)[t0 + 5 * HDP + 2] = x.a5.z; (*t)[t0 + 5 * HDP + 3] = x.a5.w;
  (*t)[t0 + 5 * HDP + 4] = x.b5.x; (*t)[t0 + 5 * HDP + 5] = x.b5.y; (*t)[t0 + 5 * HDP + 6] = x.b5.z; (*t)[t0 + 5 * HDP + 7] = x.b5.w;
  (*t)[t0 + 6 * HDP] = x.a6.x; (*t)[t0 + 6 * HDP + 1] = x.a6.y; (*t)[t0 + 6 * HDP + 2] = x.a6.z; (*t)[t0 + 6 * HDP + 3] = x.a6.w;
  (*t)[t0 + 6 * HDP + 4] = x.b6.x; (*t)[t0 + 6 * HDP + 5] = x.b6.y; (*t)[t0 + 6 * HDP + 6] = x.b6.z; (*t)[t0 + 6 * HDP + 7] = x.b6.w;
  (*t)[t0 + 7 * HDP] = x.a7.x; (*t)[t0 + 7 * HDP + 1] = x.a7.y; (*t)[t0 + 7 * HDP + 2] = x.a7.z; (*t)[t0 + 7 * HDP + 3] = x.a7.w;
  (*t)[t0 + 7 * HDP + 4] = x.b7.x; (*t)[t0 + 7 * HDP + 5] = x.b7.y; (*t)[t0 + 7 * HDP + 6] = x.b7.z; (*t)[t0 + 7 * HDP + 7] = x.b7.w;
}

// Eight consecutive entries of a TB x TB block in workgroup memory, from o: the weights of 8 rows.
fn weights8(w : ptr<workgroup, array<f32, TB * TB>>, o : i32) -> Rows8f {
  return Rows8f(vec4<f32>((*w)[o], (*w)[o + 1], (*w)[o + 2], (*w)[o + 3]), vec4<f32>((*w)[o + 4], (*w)[o + 5], (*w)[o + 6], (*w)[o + 7]));
}

// x with row r multiplied by f[r].
fn scaleRows(x : Tile8, f : Rows8f) -> Tile8 {
  return Tile8(x.a0 * f.lo.x, x.b0 * f.lo.x, x.a1 * f.lo.y, x.b1 * f.lo.y, x.a2 * f.lo.z, x.b2 * f.lo.z, x.a3 * f.lo.w, x.b3 * f.lo.w,
               x.a4 * f.hi.x, x.b4 * f.hi.x, x.a5 * f.hi.y, x.b5 * f.hi.y, x.a6 * f.hi.z, x.b6 * f.hi.z, x.a7 * f.hi.w, x.b7 * f.hi.w);
}

// acc + w[r] (lo, hi) for each row r: one step of (output tile) += (weights) x (source rows).
fn addOuter(acc : Tile8, w : Rows8f, lo : vec4<f32>, hi : vec4<f32>) -> Tile8 {
  return Tile8(
    fma(vec4<f32>(w.lo.x), lo, acc.a0), fma(vec4<f32>(w.lo.x), hi, acc.b0),
    fma(vec4<f32>(w.lo.y), lo, acc.a1), fma(vec4<f32>(w.lo.y), hi, acc.b1),
    fma(vec4<f32>(w.lo.z), lo, acc.a2), fma(vec4<f32>(w.lo.z), hi, acc.b2),
    fma(vec4<f32>(w.lo.w), lo, acc.a3), fma(vec4<f32>(w.lo.w), hi, acc.b3),
    fma(vec4<f32>(w.hi.x), lo, acc.a4), fma(vec4<f32>(w.hi.x), hi, acc.b4),
    fma(vec4<f32>(w.hi.y), lo, acc.a5), fma(vec4<f32>(w.hi.y), hi, acc.b5),
    fma(vec4<f32>(w.hi.z), lo, acc.a6), fma(vec4<f32>(w.hi.z), hi, acc.b6),
    fma(vec4<f32>(w.hi.w), lo, acc.a7), fma(vec4<f32>(w.hi.w), hi, acc.b7)
  );
}
