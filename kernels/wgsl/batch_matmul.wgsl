// BatchMatMul for software adapters (lavapipe, llvmpipe, SwiftShader): tfjs's own BatchMatMul
// kernel, replaced on those adapters only (src/backend/webgpu/kernels.ts).
//   out[b, i, j] = sum_k A[b % batchA, i, k] B[b % batchB, k, j]
// A is stored [batchA, M, K], or [batchA, K, M] when TRANS_A; B is stored [batchB, K, N], or
// [batchB, N, K] when TRANS_B; out is [batches, M, N] with batches = max(batchA, batchB). The batch
// indexing (b % batchA) is the one tfjs-webgpu's own matmul programs use for a broadcast batch.
//
// Tiling (as in ns_matmul.wgsl): a workgroup of 16 lanes computes one 32 x 32 output tile of one
// batch, each lane an 8 x 8 register block (rows 8 ty .. 8 ty + 7, columns 8 tx .. 8 tx + 7, as 16
// vec4 accumulators). The inner dimension is walked in 32-wide slabs: the lanes stage a 32 x 32
// slab of A and of B in workgroup memory, stored as vec4s along the lane blocks (A's slab as
// [k][row], B's as [k][col]), so each k step is four vec4 loads and sixteen vec4 FMAs. A tile whose
// slab lies inside both matrices is loaded without bounds checks; edge slabs are zero-padded. The
// staging loop walks each slab along the operand's contiguous axis (rows of K for plain A, rows of
// M for A^T, and so on), so consecutive loads of a lane hit consecutive addresses.
// Workgroups are numbered batch-major, then row-major over the tile grid (a flat dispatch); a
// workgroup past the last batch (a folded dispatch may round up) computes but writes nothing.
//
// Host-provided constants: const TRANS_A : bool; const TRANS_B : bool;
// Bindings: result, matA, matB. Uniforms: mmM, mmN, mmK, tilesM, tilesN, batches, batchA, batchB.

const TILE : i32 = 32;
const LANES : i32 = 16;

var<workgroup> slabA : array<vec4<f32>, 256>; // [k][row / 4]
var<workgroup> slabB : array<vec4<f32>, 256>; // [k][col / 4]

// Stages the 32 x 32 slab of A at rows i0.., inner k0.. (64 elements per lane). Element
// e = lane + 16 q sits at (stored row e / 32, position e % 32 along it): the 16 lanes read 16
// consecutive addresses of one stored row per step.
fn stageA(base : i32, i0 : i32, k0 : i32, lane : i32, full : bool) {
  let M = uniforms.mmM;
  let K = uniforms.mmK;
  for (var q = 0; q < 64; q++) {
    let e = lane + LANES * q;
    let outer = e / TILE; // stored row within the slab
    let inner = e % TILE; // position along the stored row
    var i : i32;
    var k : i32;
    if (TRANS_A) {
      k = outer; // stored [K, M]: rows are k
      i = inner;
    } else {
      i = outer; // stored [M, K]: rows are i
      k = inner;
    }
    let gi = i0 + i;
    let gk = k0 + k;
    var v = 0.0;
    if (full || (gi < M && gk < K)) {
      if (TRANS_A) {
        v = matA[base + gk * M + gi];
      } else {
        v = matA[base + gi * K + gk];
      }
    }
    slabA[k * 8 + i / 4][i % 4] = v;
  }
}

fn stageB(base : i32, j0 : i32, k0 : i32, lane : i32, full : bool) {
  let N = uniforms.mmN;
  let K = uniforms.mmK;
  for (var q = 0; q < 64; q++) {
    let e = lane + LANES * q;
    let outer = e / TILE;
    let inner = e % TILE;
    var j : i32;
    var k : i32;
    if (TRANS_B) {
      j = outer; // stored [N, K]: rows are j
      k = inner;
    } else {
      k = outer; // stored [K, N]: rows are k
      j = inner;
    }
    let gj = j0 + j;
    let gk = k0 + k;
    var v = 0.0;
    if (full || (gj < N && gk < K)) {
      if (TRANS_B) {
        v = matB[base + gj * K + gk];
      } else {
        v = matB[base + gk * N + gj];
      }
    }
    slabB[k * 8 + j / 4][j % 4] = v;
  }
}

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  let M = uniforms.mmM;
  let N = uniforms.mmN;
  let K = uniforms.mmK;
  let perBatch = uniforms.tilesM * uniforms.tilesN;
  let batch = wg / perBatch;
  let t = wg % perBatch;
  let tileRow = (t / uniforms.tilesN) * TILE;
  let tileCol = (t % uniforms.tilesN) * TILE;
  let baseA = (batch % uniforms.batchA) * M * K;
  let baseB = (batch % uniforms.batchB) * K * N;
  let rowsIn = tileRow + TILE <= M;
  let colsIn = tileCol + TILE <= N;
  let tx = lane % 4;
  let ty = lane / 4;

  // acc<r>a / acc<r>b: row 8 ty + r, columns 8 tx .. 8 tx + 3 and 8 tx + 4 .. 8 tx + 7
  var acc0a = vec4<f32>(0.0); var acc0b = vec4<f32>(0.0);
  var acc1a = vec4<f32>(0.0); var acc1b = vec4<f32>(0.0);
  var acc2a = vec4<f32>(0.0); var acc2b = vec4<f32>(0.0);
  var acc3a = vec4<f32>(0.0); var acc3b = vec4<f32>(0.0);
  var acc4a = vec4<f32>(0.0); var acc4b = vec4<f32>(0.0);
  var acc5a = vec4<f32>(0.0); var acc5b = vec4<f32>(0.0);
  var acc6a = vec4<f32>(0.0); var acc6b = vec4<f32>(0.0);
  var acc7a = vec4<f32>(0.0); var acc7b = vec4<f32>(0.0);

  for (var k0 = 0; k0 < K; k0 += TILE) {
    let kIn = k0 + TILE <= K;
    stageA(baseA, tileRow, k0, lane, rowsIn && kIn);
    stageB(baseB, tileCol, k0, lane, colsIn && kIn);
    workgroupBarrier();
    for (var k = 0; k < TILE; k++) {
      let la = slabA[k * 8 + 2 * ty];
      let lb = slabA[k * 8 + 2 * ty + 1];
      let ra = slabB[k * 8 + 2 * tx];
      let rb = slabB[k * 8 + 2 * tx + 1];
      acc0a = fma(vec4<f32>(la.x), ra, acc0a); acc0b = fma(vec4<f32>(la.x), rb, acc0b);
      acc1a = fma(vec4<f32>(la.y), ra, acc1a); acc1b = fma(vec4<f32>(la.y), rb, acc1b);
      acc2a = fma(vec4<f32>(la.z), ra, acc2a); acc2b = fma(vec4<f32>(la.z), rb, acc2b);
      acc3a = fma(vec4<f32>(la.w), ra, acc3a); acc3b = fma(vec4<f32>(la.w), rb, acc3b);
      acc4a = fma(vec4<f32>(lb.x), ra, acc4a); acc4b = fma(vec4<f32>(lb.x), rb, acc4b);
      acc5a = fma(vec4<f32>(lb.y), ra, acc5a); acc5b = fma(vec4<f32>(lb.y), rb, acc5b);
      acc6a = fma(vec4<f32>(lb.z), ra, acc6a); acc6b = fma(vec4<f32>(lb.z), rb, acc6b);
      acc7a = fma(vec4<f32>(lb.w), ra, acc7a); acc7b = fma(vec4<f32>(lb.w), rb, acc7b);
    }
    workgroupBarrier();
  }

  if (batch >= uniforms.batches) {
    return;
  }
  let i0 = tileRow + 8 * ty;
  let j0 = tileCol + 8 * tx;
  let outBase = batch * M * N;
  let accs = array<vec4<f32>, 16>(acc0a, acc0b, acc1a, acc1b, acc2a, acc2b, acc3a, acc3b,
                                  acc4a, acc4b, acc5a, acc5b, acc6a, acc6b, acc7a, acc7b);
  for (var u = 0; u < 16; u++) {
    let v = accs[u];
    let i = i0 + u / 2;
    let j = j0 + 4 * (u % 2);
    if (i < M) {
      let o = outBase + i * N + j;
      if (j < N) { result[o] = v.x; }
      if (j + 1 < N) { result[o + 1] = v.y; }
      if (j + 2 < N) { result[o + 2] = v.z; }
      if (j + 3 < N) { result[o + 3] = v.w; }
    }
  }
}
