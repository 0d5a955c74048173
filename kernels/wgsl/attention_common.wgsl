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
