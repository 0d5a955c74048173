// Shared by the fused causal attention kernels (attention_fwd, attention_dq, attention_dkv): the
// tile layout and the score block.
//
// Tensors are in the [B, T, heads, HD] layout a projection produces (no transposes): q and dy have
// `heads` heads, k and v `kvHeads`; query head h reads key/value head h / (heads / kvHeads).
// A workgroup owns one tile of TB rows (queries, or keys for attention_dkv) of one (b, head) and
// walks the tiles of the other side in blocks of TB. Its LANES = G * G lanes form a G x G grid
// (G = TB / 4): in a TB x TB score block lane (rg, cg) holds rows 4 rg .. 4 rg + 3 and columns
// 4 cg .. 4 cg + 3 as four vec4 registers (one per row); in a TB x HD output tile it holds the same
// rows and columns 4 cg + TB u .. + 3 for u = 0 .. HDP / TB - 1 (HDP: HD rounded up to TB).
// Accumulators live in named vec4 registers and workgroup arrays only: a per-lane array indexed
// in a loop is lowered by some drivers (lavapipe) to selects over every element.
//
// Host-provided constants: TB (16 or 32), HD (head dimension), HDP (HD rounded up to a multiple of TB).

const G : i32 = TB / 4;
const LANES : i32 = G * G;
const LOWEST : f32 = -3.4028234e38;

// Four rows of a score block: sRow<a> holds row 4 rg + a, columns 4 cg .. 4 cg + 3.
struct Block4 {
  r0 : vec4<f32>,
  r1 : vec4<f32>,
  r2 : vec4<f32>,
  r3 : vec4<f32>,
}

// Element offsets of 4 rows (clamped to the last row t - 1) of one head in a [B, T, heads, HD] tensor.
fn rowOffsets(b : i32, row0 : i32, t : i32, heads : i32, head : i32) -> vec4<i32> {
  let base = b * t;
  return vec4<i32>(
    ((base + min(row0, t - 1)) * heads + head) * HD,
    ((base + min(row0 + 1, t - 1)) * heads + head) * HD,
    ((base + min(row0 + 2, t - 1)) * heads + head) * HD,
    ((base + min(row0 + 3, t - 1)) * heads + head) * HD);
}

// Scaled scores of 4 queries (rows, element offsets qOff into q) against 4 keys (vec4
// components, element offsets kOff into k): scale * sum_c q[row, c] k[key, c].
fn scoreBlock(qOff : vec4<i32>, kOff : vec4<i32>) -> Block4 {
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var s3 = vec4<f32>(0.0);
  for (var c = 0; c < HD; c++) {
    let kc = vec4<f32>(k[kOff.x + c], k[kOff.y + c], k[kOff.z + c], k[kOff.w + c]);
    s0 = fma(vec4<f32>(q[qOff.x + c]), kc, s0);
    s1 = fma(vec4<f32>(q[qOff.y + c]), kc, s1);
    s2 = fma(vec4<f32>(q[qOff.z + c]), kc, s2);
    s3 = fma(vec4<f32>(q[qOff.w + c]), kc, s3);
  }
  let sc = uniforms.scale;
  return Block4(s0 * sc, s1 * sc, s2 * sc, s3 * sc);
}

// Column offsets (within a row of HD) of a lane's 4 columns in output chunk u, clamped to HD - 1
// for reads; the padding columns past HD are computed and never written.
fn chunkColumns(cg : i32, u : i32) -> vec4<i32> {
  let c0 = u * TB + 4 * cg;
  return vec4<i32>(min(c0, HD - 1), min(c0 + 1, HD - 1), min(c0 + 2, HD - 1), min(c0 + 3, HD - 1));
}
