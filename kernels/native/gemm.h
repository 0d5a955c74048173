// osp-lab native kernel pack: the matrix products (sgemm and the two routines Newton-Schulz uses).
//
// Two implementations behind one interface:
//   - OpenBLAS (cblas_sgemm / ssyrk / ssymm with OpenBLAS's own threads), compiled in when the build
//     found cblas.h (binding.gyp defines OSP_HAVE_CBLAS=1 and links -lopenblas);
//   - a portable SGEMM of our own (gemm.cc), always compiled in: packed micro-panels, a register-blocked
//     6x16 micro-kernel (AVX2/FMA when the CPU has it, chosen at run time; plain C++ otherwise), large
//     products split over the addon's thread pool by output tiles.
// The active one is chosen at run time (setGemmKind); OpenBLAS is the default when it is built in.
//
// Determinism: the portable GEMM gives bit-identical results for any thread count and any scheduling.
// Work is split by output tiles only, never along K; every output element is accumulated in the same
// order (k blocks whose size depends on K alone, k ascending inside a block) whichever thread computes it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace osp {

// The addon's thread pool: runs f over contiguous chunks of [0, n), the calling thread included, and
// returns when every chunk is done. `threads` reports how many threads it has.
using ParallelFor = void (*)(int64_t n, const std::function<void(int64_t, int64_t)>& f);
void gemmSetPool(ParallelFor run, int (*threads)());

enum class GemmKind { kOpenBLAS = 0, kPortable = 1 };

// Whether this build links OpenBLAS.
bool gemmHasOpenBLAS();
GemmKind gemmKind();
// Selects the implementation; false (and no change) when it is not built in.
bool gemmSetKind(GemmKind kind);
// Forces the portable micro-kernel: "generic" (plain C++), "avx2" (false when the CPU lacks AVX2/FMA),
// or "auto" (AVX2 when the CPU has it; the default). Lets one machine test both.
bool gemmSetPortableIsa(const std::string& isa);
// "openblas" / "portable".
const char* gemmKindName(GemmKind kind);
// The instruction set the portable micro-kernel runs on this CPU: "AVX2" or "generic".
const char* gemmPortableIsa();
// One line for logs: "OpenBLAS (<its config>); BLAS threads N" or "portable AVX2 GEMM".
std::string gemmDescribe();
// OpenBLAS's own thread count (no-op without it; the portable GEMM uses the pool).
void gemmSetBlasThreads(int n);

// Row-major C[M x N] = alpha * op(A) op(B) + beta * C, op(A) M x K, op(B) K x N (the CBLAS contract with
// CblasRowMajor; beta == 0 never reads C). `threaded` false keeps the product on the calling thread (for
// the portable GEMM; OpenBLAS follows its own thread count, see GemmSerialScope).
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc, bool threaded = true);

// The upper triangle of C (n x n) = alpha * A A^T + beta * C, A n x k row-major (cblas_ssyrk, Upper,
// NoTrans). The portable path may also write below the diagonal: callers must treat it as garbage.
void ssyrkUpper(int64_t n, int64_t k, float alpha, const float* A, int64_t lda, float beta, float* C, int64_t ldc);

// C (m x n) = alpha * A B + beta * C with A m x m symmetric and stored in full (cblas_ssymm, Left,
// Upper: OpenBLAS reads the upper triangle, the portable path reads all of it).
void ssymmLeft(int64_t m, int64_t n, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc);

// While alive, OpenBLAS runs single-threaded (a batch of small products, one per pool thread, each
// called with threaded = false). Construct and destroy it on the calling thread, around the whole batch.
class GemmSerialScope {
 public:
  GemmSerialScope();
  ~GemmSerialScope();
  GemmSerialScope(const GemmSerialScope&) = delete;
  GemmSerialScope& operator=(const GemmSerialScope&) = delete;

 private:
  int saved_ = -1;
};

// The portable GEMM itself, whatever gemmKind() says (tests and benchmarks).
void sgemmPortable(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool threaded = true);

// Smallest M*N*K the portable GEMM splits over the pool (a tuning knob; smaller products stay on one thread).
void gemmSetPortableThreadMin(int64_t mnk);

}  // namespace osp
