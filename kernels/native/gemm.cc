// osp-lab native kernel pack: matrix products. See gemm.h for the interface and the determinism contract.
//
// The portable SGEMM (always built):
//   op(A) [M x K] and op(B) [K x N] are copied, one block of K at a time, into micro-panels:
//   A into panels of MR = 6 rows (k-major: the 6 values of one k side by side), B into panels of NR = 16
//   columns (the 16 values of one k side by side), zero-padded at the edges. A 6x16 micro-kernel then
//   keeps its 96 sums in registers (12 AVX2 registers) over the whole K block, reading one A panel and
//   one B panel sequentially. Loops over a tile: B panels outside (one 16 KB panel stays in L1 while
//   the A panels of the row block stream through it from L2), A panels inside.
//   The K blocks' size is a function of K only (<= 384), so each output element sees the same sums in
//   the same order on any number of threads; threads only ever split the output into tiles.
//
// Instruction set: an AVX2/FMA micro-kernel (a target attribute, so the file itself builds for the
// baseline ISA) chosen at run time when the CPU has it; else a plain C++ one that the compiler
// vectorises for what it targets (SSE2 on x86-64, NEON on aarch64).

#include "gemm.h"

#ifdef OSP_HAVE_CBLAS
#include <cblas.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define OSP_GEMM_X86 1
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#ifdef OSP_HAVE_CBLAS
// OpenBLAS's own extensions (declared by its cblas.h; repeated here for other CBLAS headers).
extern "C" {
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
}
#endif

namespace osp {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
constexpr int64_t KC_MAX = 384;   // k per packed block: a B panel is KC_MAX * NR * 4 = 24 KB (L1)
constexpr int64_t NC_MAX = 4096;  // columns per packed B block
constexpr int64_t MC_PANELS = 16; // A panels per row block on one thread: 96 rows x 384 k = 144 KB (L2)

ParallelFor gRun = nullptr;
int (*gThreads)() = nullptr;
#ifdef OSP_HAVE_CBLAS
std::atomic<int> gKind{static_cast<int>(GemmKind::kOpenBLAS)};
#else
std::atomic<int> gKind{static_cast<int>(GemmKind::kPortable)};
#endif
std::atomic<int64_t> gThreadMin{int64_t(1) << 20};

// ---------------------------------------------------------------------------------------------
// Micro-kernels: C[m x n] (m <= MR, n <= NR) = alpha * sum_k a[k] (x) b[k] + beta * C; beta == 0 never
// reads C. b: kc x NR (k-major, zero-padded). a: a packed panel, kc x MR (k-major, zero-padded; Direct
// false), or MR full rows of a row-major op(A) read in place, a[i * lda + k] (Direct true: when an A panel
// meets only a few B panels, packing it would cost as much as the products). Both read the same values
// and do the same operations in the same order, so they give bit-identical results.

using Kernel = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int m, int n, float alpha, float beta);
struct Kernels {
  Kernel packed;
  Kernel direct;
};

inline void storeTile(const float* acc, float* c, int64_t ldc, int m, int n, float alpha, float beta) {
  for (int i = 0; i < m; i++) {
    float* row = c + i * ldc;
    const float* s = acc + i * NR;
    if (beta == 0.0f) {
      for (int j = 0; j < n; j++) row[j] = alpha * s[j];
    } else {
      for (int j = 0; j < n; j++) row[j] = alpha * s[j] + beta * row[j];
    }
  }
}

template <bool Direct>
void kernelGeneric(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int m, int n, float alpha, float beta) {
  alignas(64) float acc[MR * NR] = {};
  for (int64_t k = 0; k < kc; k++) {
    const float* bk = b + k * NR;
    for (int i = 0; i < MR; i++) {
      const float ai = Direct ? a[i * lda + k] : a[k * MR + i];
      for (int j = 0; j < NR; j++) acc[i * NR + j] += ai * bk[j];
    }
  }
  storeTile(acc, c, ldc, m, n, alpha, beta);
}

#ifdef OSP_GEMM_X86
template <bool Direct>
__attribute__((target("avx2,fma"))) void kernelAvx2(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                                    int n, float alpha, float beta) {
  // Direct: row i of op(A) at a + i * lda, one float per k; packed: a[k * MR + i].
  const int64_t rs = Direct ? lda : 1, ks = Direct ? 1 : MR;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define OSP_GEMM_STEP(K)                                            \
  {                                                                 \
    const __m256 b0 = _mm256_load_ps(b + (K) * NR);                 \
    const __m256 b1 = _mm256_load_ps(b + (K) * NR + 8);             \
    __m256 av = _mm256_broadcast_ss(a + (K) * ks);                  \
    c00 = _mm256_fmadd_ps(av, b0, c00);                             \
    c01 = _mm256_fmadd_ps(av, b1, c01);                             \
    av = _mm256_broadcast_ss(a + (K) * ks + 1 * rs);                \
    c10 = _mm256_fmadd_ps(av, b0, c10);                             \
    c11 = _mm256_fmadd_ps(av, b1, c11);                             \
    av = _mm256_broadcast_ss(a + (K) * ks + 2 * rs);                \
    c20 = _mm256_fmadd_ps(av, b0, c20);                             \
    c21 = _mm256_fmadd_ps(av, b1, c21);                             \
    av = _mm256_broadcast_ss(a + (K) * ks + 3 * rs);                \
    c30 = _mm256_fmadd_ps(av, b0, c30);                             \
    c31 = _mm256_fmadd_ps(av, b1, c31);                             \
    av = _mm256_broadcast_ss(a + (K) * ks + 4 * rs);                \
    c40 = _mm256_fmadd_ps(av, b0, c40);                             \
    c41 = _mm256_fmadd_ps(av, b1, c41);                             \
    av = _mm256_broadcast_ss(a + (K) * ks + 5 * rs);                \
    c50 = _mm256_fmadd_ps(av, b0, c50);                             \
    c51 = _mm256_fmadd_ps(av, b1, c51);                             \
  }
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    OSP_GEMM_STEP(0)
    OSP_GEMM_STEP(1)
    OSP_GEMM_STEP(2)
    OSP_GEMM_STEP(3)
    a += 4 * ks;
    b += 4 * NR;
  }
  for (; k < kc; k++) {
    OSP_GEMM_STEP(0)
    a += ks;
    b += NR;
  }
#undef OSP_GEMM_STEP
  const __m256 va = _mm256_set1_ps(alpha);
  if (m == MR && n == NR) {
    const __m256 rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (beta == 0.0f) {
      for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, rows[i][0]));
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, rows[i][1]));
      }
    } else {
      const __m256 vb = _mm256_set1_ps(beta);
      for (int i = 0; i < MR; i++) {
        // alpha * acc + beta * C, rounded as storeTile rounds it (two products, one sum).
        _mm256_storeu_ps(c + i * ldc, _mm256_add_ps(_mm256_mul_ps(va, rows[i][0]), _mm256_mul_ps(vb, _mm256_loadu_ps(c + i * ldc))));
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_add_ps(_mm256_mul_ps(va, rows[i][1]), _mm256_mul_ps(vb, _mm256_loadu_ps(c + i * ldc + 8))));
      }
    }
    return;
  }
  alignas(32) float acc[MR * NR];
  _mm256_store_ps(acc + 0 * NR, c00);
  _mm256_store_ps(acc + 0 * NR + 8, c01);
  _mm256_store_ps(acc + 1 * NR, c10);
  _mm256_store_ps(acc + 1 * NR + 8, c11);
  _mm256_store_ps(acc + 2 * NR, c20);
  _mm256_store_ps(acc + 2 * NR + 8, c21);
  _mm256_store_ps(acc + 3 * NR, c30);
  _mm256_store_ps(acc + 3 * NR + 8, c31);
  _mm256_store_ps(acc + 4 * NR, c40);
  _mm256_store_ps(acc + 4 * NR + 8, c41);
  _mm256_store_ps(acc + 5 * NR, c50);
  _mm256_store_ps(acc + 5 * NR + 8, c51);
  storeTile(acc, c, ldc, m, n, alpha, beta);
}
#endif

bool cpuHasAvx2() {
#ifdef OSP_GEMM_X86
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

// The portable micro-kernel in use: AVX2 when the CPU has it, unless forced to the generic one.
std::atomic<bool> gForceGeneric{false};

Kernels kernels() {
#ifdef OSP_GEMM_X86
  if (!gForceGeneric.load(std::memory_order_relaxed) && cpuHasAvx2()) return {kernelAvx2<false>, kernelAvx2<true>};
#endif
  return {kernelGeneric<false>, kernelGeneric<true>};
}

// ---------------------------------------------------------------------------------------------
// Packing. A panel: rows [i0, i0 + m) of op(A), k in [p0, p0 + kc) -> dst[k * MR + i]. B panel:
// columns [j0, j0 + n) of op(B) -> dst[k * NR + j]. Rows/columns past m/n are zeros.

void packA(bool ta, const float* A, int64_t lda, int64_t i0, int m, int64_t p0, int64_t kc, float* dst) {
  if (ta) {  // op(A)[i][k] = A[k * lda + i]: MR consecutive floats per k
    for (int64_t k = 0; k < kc; k++) {
      const float* s = A + (p0 + k) * lda + i0;
      float* d = dst + k * MR;
      int i = 0;
      for (; i < m; i++) d[i] = s[i];
      for (; i < MR; i++) d[i] = 0.0f;
    }
    return;
  }
  // op(A)[i][k] = A[i * lda + k]: one contiguous row per i.
  if (m == MR) {
    const float* r0 = A + (i0 + 0) * lda + p0;
    const float* r1 = A + (i0 + 1) * lda + p0;
    const float* r2 = A + (i0 + 2) * lda + p0;
    const float* r3 = A + (i0 + 3) * lda + p0;
    const float* r4 = A + (i0 + 4) * lda + p0;
    const float* r5 = A + (i0 + 5) * lda + p0;
    for (int64_t k = 0; k < kc; k++) {
      float* d = dst + k * MR;
      d[0] = r0[k];
      d[1] = r1[k];
      d[2] = r2[k];
      d[3] = r3[k];
      d[4] = r4[k];
      d[5] = r5[k];
    }
    return;
  }
  for (int i = 0; i < MR; i++) {
    if (i < m) {
      const float* s = A + (i0 + i) * lda + p0;
      for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = s[k];
    } else {
      for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
    }
  }
}

void packB(bool tb, const float* B, int64_t ldb, int64_t j0, int n, int64_t p0, int64_t kc, float* dst) {
  if (!tb) {  // op(B)[k][j] = B[k * ldb + j]: NR consecutive floats per k
    if (n == NR) {
      for (int64_t k = 0; k < kc; k++) std::memcpy(dst + k * NR, B + (p0 + k) * ldb + j0, sizeof(float) * NR);
      return;
    }
    for (int64_t k = 0; k < kc; k++) {
      const float* s = B + (p0 + k) * ldb + j0;
      float* d = dst + k * NR;
      int j = 0;
      for (; j < n; j++) d[j] = s[j];
      for (; j < NR; j++) d[j] = 0.0f;
    }
    return;
  }
  // op(B)[k][j] = B[j * ldb + k]: one contiguous row of B per output column, 4 columns at a time.
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* s0 = B + (j0 + j) * ldb + p0;
    const float* s1 = s0 + ldb;
    const float* s2 = s1 + ldb;
    const float* s3 = s2 + ldb;
    for (int64_t k = 0; k < kc; k++) {
      float* d = dst + k * NR + j;
      d[0] = s0[k];
      d[1] = s1[k];
      d[2] = s2[k];
      d[3] = s3[k];
    }
  }
  for (; j < n; j++) {
    const float* s = B + (j0 + j) * ldb + p0;
    for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = s[k];
  }
  for (; j < NR; j++) {
    for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
  }
}

// Packed operands, kept per calling thread (fresh large allocations are fresh pages; a page fault costs
// more than a small product). 64-byte aligned.
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      const size_t want = std::max(n, cap + cap / 2);
      const size_t bytes = (want * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) {
        cap = 0;
        throw std::bad_alloc();
      }
      cap = bytes / sizeof(float);
    }
    return p;
  }
};

// C = beta * C over an M x N block (K == 0 or alpha == 0): beta == 0 writes zeros without reading C.
void scaleC(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    float* row = C + i * ldc;
    if (beta == 0.0f) {
      std::fill(row, row + N, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
    }
  }
}

// The portable driver. `upper`: only tiles that reach the upper triangle (j >= i) are computed (ssyrk).
void drive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc, bool threaded, bool upper) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scaleC(M, N, beta, C, ldc);
    return;
  }
  const Kernels kern = kernels();
  int threads = 1;
  if (threaded && gRun && gThreads && M * N * K >= gThreadMin.load(std::memory_order_relaxed)) threads = std::max(1, gThreads());

  // K blocks: sizes from K alone (the determinism contract).
  const int64_t kBlocks = (K + KC_MAX - 1) / KC_MAX;
  const int64_t kcStd = (K + kBlocks - 1) / kBlocks;
  const int64_t mp = (M + MR - 1) / MR;  // A panels

  // Packed B of the calling thread; the lambdas below may run on pool threads, so they use this pointer.
  thread_local Scratch sb;

  for (int64_t jc = 0; jc < N; jc += NC_MAX) {
    const int64_t nc = std::min(NC_MAX, N - jc);
    const int64_t np = (nc + NR - 1) / NR;  // B panels
    // Row blocks x column blocks of panels: one tile per work item.
    int64_t mcb = MC_PANELS, ncb = np;
    if (threads > 1) {
      const int64_t target = 4 * threads;
      if ((mp + mcb - 1) / mcb < target) mcb = std::max<int64_t>(1, (mp + target - 1) / target);
      const int64_t mb = (mp + mcb - 1) / mcb;
      if (mb < target) {
        const int64_t nb = std::min(np, (target + mb - 1) / mb);
        ncb = (np + nb - 1) / nb;
      }
    }
    const int64_t mBlocks = (mp + mcb - 1) / mcb, nBlocks = (np + ncb - 1) / ncb;

    for (int64_t blk = 0; blk < kBlocks; blk++) {
      const int64_t p0 = blk * kcStd;
      const int64_t kc = std::min(kcStd, K - p0);
      float* Bp = sb.get(static_cast<size_t>(np * NR * kc));
      const float betaEff = blk == 0 ? beta : 1.0f;

      auto pack = [&, Bp](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; t++) {
          packB(tb, B, ldb, jc + t * NR, static_cast<int>(std::min<int64_t>(NR, nc - t * NR)), p0, kc, Bp + t * NR * kc);
        }
      };
      // Each tile packs its row block of A into the scratch of the thread that runs it (kept in L2 while
      // the B panels stream past it), once per run of consecutive tiles in the same row block.
      auto compute = [&, Bp](int64_t t0, int64_t t1) {
        thread_local Scratch sa;
        float* Ap = sa.get(static_cast<size_t>(mcb * MR * kc));
        int64_t packed = -1;
        for (int64_t t = t0; t < t1; t++) {
          const int64_t ib = t / nBlocks, jb = t % nBlocks;
          const int64_t ir0 = ib * mcb, ir1 = std::min(mp, ir0 + mcb);
          const int64_t jr0 = jb * ncb, jr1 = std::min(np, jr0 + ncb);
          // op(A) row-major and only a few B panels per A panel: read A in place (full panels).
          const bool direct = !ta && !upper && jr1 - jr0 <= 4;
          if (!direct && ib != packed) {
            for (int64_t ir = ir0; ir < ir1; ir++) {
              // Under the diagonal (ssyrk): panels whose first row is past this block's last column are not needed.
              if (upper && ir * MR > jc + jr1 * NR - 1) break;
              packA(ta, A, lda, ir * MR, static_cast<int>(std::min<int64_t>(MR, M - ir * MR)), p0, kc, Ap + (ir - ir0) * MR * kc);
            }
            packed = upper ? -1 : ib;  // (upper packs depend on the column block too)
          }
          for (int64_t jr = jr0; jr < jr1; jr++) {
            const int64_t col = jc + jr * NR;
            const int n = static_cast<int>(std::min<int64_t>(NR, nc - jr * NR));
            const float* bp = Bp + jr * NR * kc;
            for (int64_t ir = ir0; ir < ir1; ir++) {
              const int64_t row = ir * MR;
              if (upper && col + NR - 1 < row) break;  // this tile and those below it lie under the diagonal
              const int m = static_cast<int>(std::min<int64_t>(MR, M - row));
              float* ct = C + row * ldc + col;
              if (!direct) {
                kern.packed(kc, Ap + (ir - ir0) * MR * kc, 0, bp, ct, ldc, m, n, alpha, betaEff);
              } else if (m == MR) {
                kern.direct(kc, A + row * lda + p0, lda, bp, ct, ldc, m, n, alpha, betaEff);
              } else {  // the last, partial panel: packed (zero-padded), not read past A's last row
                packA(false, A, lda, row, m, p0, kc, Ap);
                kern.packed(kc, Ap, 0, bp, ct, ldc, m, n, alpha, betaEff);
              }
            }
          }
        }
      };
      if (threads > 1) {
        gRun(np, pack);
        gRun(mBlocks * nBlocks, compute);
      } else {
        pack(0, np);
        compute(0, mBlocks * nBlocks);
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Selection and the public entry points.

void gemmSetPool(ParallelFor run, int (*threads)()) {
  gRun = run;
  gThreads = threads;
}

bool gemmHasOpenBLAS() {
#ifdef OSP_HAVE_CBLAS
  return true;
#else
  return false;
#endif
}

GemmKind gemmKind() { return static_cast<GemmKind>(gKind.load()); }

bool gemmSetKind(GemmKind kind) {
  if (kind == GemmKind::kOpenBLAS && !gemmHasOpenBLAS()) return false;
  gKind.store(static_cast<int>(kind));
  return true;
}

const char* gemmKindName(GemmKind kind) { return kind == GemmKind::kOpenBLAS ? "openblas" : "portable"; }

const char* gemmPortableIsa() { return kernels().packed == kernelGeneric<false> ? "generic" : "AVX2"; }

bool gemmSetPortableIsa(const std::string& isa) {
  if (isa == "generic") {
    gForceGeneric.store(true);
    return true;
  }
  if (isa == "auto") {
    gForceGeneric.store(false);
    return true;
  }
  if (isa == "avx2") {
    if (!cpuHasAvx2()) return false;
    gForceGeneric.store(false);
    return true;
  }
  return false;
}

std::string gemmDescribe() {
#ifdef OSP_HAVE_CBLAS
  if (gemmKind() == GemmKind::kOpenBLAS) {
    return std::string("OpenBLAS (") + openblas_get_config() + "); BLAS threads " + std::to_string(openblas_get_num_threads());
  }
#endif
  return std::string("portable ") + gemmPortableIsa() + " GEMM";
}

void gemmSetBlasThreads(int n) {
#ifdef OSP_HAVE_CBLAS
  openblas_set_num_threads(n);
#else
  (void)n;
#endif
}

void gemmSetPortableThreadMin(int64_t mnk) { gThreadMin.store(mnk); }

GemmSerialScope::GemmSerialScope() {
#ifdef OSP_HAVE_CBLAS
  if (gemmKind() == GemmKind::kOpenBLAS) {
    saved_ = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
#endif
}

GemmSerialScope::~GemmSerialScope() {
#ifdef OSP_HAVE_CBLAS
  if (saved_ > 0) openblas_set_num_threads(saved_);
#endif
}

void sgemmPortable(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float beta, float* C, int64_t ldc, bool threaded) {
  drive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threaded, false);
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc, bool threaded) {
#ifdef OSP_HAVE_CBLAS
  if (gemmKind() == GemmKind::kOpenBLAS) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M), static_cast<int>(N),
                static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
    return;
  }
#endif
  drive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threaded, false);
}

void ssyrkUpper(int64_t n, int64_t k, float alpha, const float* A, int64_t lda, float beta, float* C, int64_t ldc) {
#ifdef OSP_HAVE_CBLAS
  if (gemmKind() == GemmKind::kOpenBLAS) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), alpha, A, static_cast<int>(lda), beta, C,
                static_cast<int>(ldc));
    return;
  }
#endif
  drive(false, true, n, n, k, alpha, A, lda, A, lda, beta, C, ldc, true, true);
}

void ssymmLeft(int64_t m, int64_t n, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
#ifdef OSP_HAVE_CBLAS
  if (gemmKind() == GemmKind::kOpenBLAS) {
    cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, static_cast<int>(m), static_cast<int>(n), alpha, A, static_cast<int>(lda), B,
                static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
    return;
  }
#endif
  drive(false, false, m, n, m, alpha, A, lda, B, ldb, beta, C, ldc, true, false);
}

}  // namespace osp
