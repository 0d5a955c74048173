// BatchMatMul for software adapters (lavapipe, llvmpipe, SwiftShader): tfjs's own BatchMatMul
// kernel, replaced on those adapters only (src/backend/webgpu/kernels.ts).
//   out[b, i, j] = sum_k A[b % batchA, i, k] B[b % batchB, k, j]
// A is stored [batchA, M, K], or [batchA, K, M] when TRANS_A; B is stored [batchB, K, N], or
// [batchB, N, K] when TRANS_B; out is [batches, M, N] with batches = max(batchA, batchB). The batch
// indexing (b % batchA) is the one tfjs-webgpu's own matmul programs use for a broadcast batch.
//
// Layout (the register blocking of ns_matmul.wgsl): a workgroup of 16 lanes computes one 32 x 32
// output tile of one batch, each lane an 8 x 8 register block (rows i0 .. i0 + 7, columns
// j0 .. j0 + 7, as 16 vec4 accumulators), so each k step is 16 loads and 16 vec4 FMAs per lane.
// Unlike ns_matmul there is no workgroup memory: every lane reads its 8 values of A's column k and
// B's row k straight from the storage buffers. On a software adapter the buffers sit in the CPU's
// caches anyway (a 32-row panel of A with K = 352 is 45 KB) and staging a slab through workgroup
// memory costs as many scattered loads and stores as the products save, plus two barriers per slab
// that the adapter steps every lane through. Measured on lavapipe at the bench model's five
// shapes: 2.1x-4.2x faster than tfjs's kernel (bench/RESULTS_webgpu.md), where the same tiling
// with 32 x 32 slabs staged in workgroup memory reached 0.9x-1.6x; 16 lanes per workgroup ran faster than 8 (2 x 4 blocks) or
// 64 (8 x 8 blocks) in one comparison run.
// Rows and columns past the matrix edge are clamped to the last one for the reads (no bounds
// checks in the k loop) and not written. Workgroups are numbered batch-major, then row-major over
// the tile grid (a flat dispatch); a workgroup past the last batch (a folded dispatch may round up)
// computes but writes nothing.
//
// Host-provided constants: const TRANS_A : bool; const TRANS_B : bool;
// Bindings: result, matA, matB. Uniforms: mmM, mmN, mmK, tilesM, tilesN, batches, batchA, batchB.

const TILE : i32 = 32;
const LANES : i32 = 16;

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  let M = uniforms.mmM;
  let N = uniforms.mmN;
  let K = uniforms.mmK;
  let perBatch = uniforms.tilesM * uniforms.tilesN;
  let batch = wg / perBatch;
  let t = wg % perBatch;
  let i0 = (t / uniforms.tilesN) * TILE + 8 * (lane / 4);
  let j0 = (t % uniforms.tilesN) * TILE + 8 * (lane % 4);
  let baseA = (batch % uniforms.batchA) * M * K;
  let baseB = (batch % uniforms.batchB) * K * N;

  // Where row i0 + r of A and column j0 + r of B start (clamped), and the step of one k.
  var rowA : array<i32, 8>;
  var colB : array<i32, 8>;
  for (var r = 0; r < 8; r++) {
    let i = min(i0 + r, M - 1);
    let j = min(j0 + r, N - 1);
    if (TRANS_A) { rowA[r] = baseA + i; } else { rowA[r] = baseA + i * K; }
    if (TRANS_B) { colB[r] = baseB + j * K; } else { colB[r] = baseB + j; }
  }
  var stepA = 1;
  if (TRANS_A) { stepA = M; }
  var stepB = N;
  if (TRANS_B) { stepB = 1; }
  let a0 = rowA[0]; let a1 = rowA[1]; let a2 = rowA[2]; let a3 = rowA[3];
  let a4 = rowA[4]; let a5 = rowA[5]; let a6 = rowA[6]; let a7 = rowA[7];
  let b0 = colB[0]; let b1 = colB[1]; let b2 = colB[2]; let b3 = colB[3];
  let b4 = colB[4]; let b5 = colB[5]; let b6 = colB[6]; let b7 = colB[7];

  // acc<r>a / acc<r>b: row i0 + r, columns j0 .. j0 + 3 and j0 + 4 .. j0 + 7
  var acc0a = vec4<f32>(0.0); var acc0b = vec4<f32>(0.0);
  var acc1a = vec4<f32>(0.0); var acc1b = vec4<f32>(0.0);
  var acc2a = vec4<f32>(0.0); var acc2b = vec4<f32>(0.0);
  var acc3a = vec4<f32>(0.0); var acc3b = vec4<f32>(0.0);
  var acc4a = vec4<f32>(0.0); var acc4b = vec4<f32>(0.0);
  var acc5a = vec4<f32>(0.0); var acc5b = vec4<f32>(0.0);
  var acc6a = vec4<f32>(0.0); var acc6b = vec4<f32>(0.0);
  var acc7a = vec4<f32>(0.0); var acc7b = vec4<f32>(0.0);
  var oa = 0;
  var ob = 0;
  for (var k = 0; k < K; k++) {
    let la = vec4<f32>(matA[a0 + oa], matA[a1 + oa], matA[a2 + oa], matA[a3 + oa]);
    let lb = vec4<f32>(matA[a4 + oa], matA[a5 + oa], matA[a6 + oa], matA[a7 + oa]);
    let ra = vec4<f32>(matB[b0 + ob], matB[b1 + ob], matB[b2 + ob], matB[b3 + ob]);
    let rb = vec4<f32>(matB[b4 + ob], matB[b5 + ob], matB[b6 + ob], matB[b7 + ob]);
    oa += stepA;
    ob += stepB;
    acc0a = fma(vec4<f32>(la.x), ra, acc0a); acc0b = fma(vec4<f32>(la.x), rb, acc0b);
    acc1a = fma(vec4<f32>(la.y), ra, acc1a); acc1b = fma(vec4<f32>(la.y), rb, acc1b);
    acc2a = fma(vec4<f32>(la.z), ra, acc2a); acc2b = fma(vec4<f32>(la.z), rb, acc2b);
    acc3a = fma(vec4<f32>(la.w), ra, acc3a); acc3b = fma(vec4<f32>(la.w), rb, acc3b);
    acc4a = fma(vec4<f32>(lb.x), ra, acc4a); acc4b = fma(vec4<f32>(lb.x), rb, acc4b);
    acc5a = fma(vec4<f32>(lb.y), ra, acc5a); acc5b = fma(vec4<f32>(lb.y), rb, acc5b);
    acc6a = fma(vec4<f32>(lb.z), ra, acc6a); acc6b = fma(vec4<f32>(lb.z), rb, acc6b);
    acc7a = fma(vec4<f32>(lb.w), ra, acc7a); acc7b = fma(vec4<f32>(lb.w), rb, acc7b);
  }

  if (batch >= uniforms.batches) {
    return;
  }
  let outBase = batch * M * N;
  let accs = array<vec4<f32>, 16>(acc0a, acc0b, acc1a, acc1b, acc2a, acc2b, acc3a, acc3b,
                                  acc4a, acc4b, acc5a, acc5b, acc6a, acc6b, acc7a, acc7b);
  if (i0 + 8 <= M && j0 + 8 <= N) {
    // A whole block inside the matrix: no per-element checks.
    for (var u = 0; u < 16; u++) {
      let o = outBase + (i0 + u / 2) * N + j0 + 4 * (u % 2);
      let v = accs[u];
      result[o] = v.x;
      result[o + 1] = v.y;
      result[o + 2] = v.z;
      result[o + 3] = v.w;
    }
    return;
  }
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
