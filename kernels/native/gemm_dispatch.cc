// osp-lab native kernel pack: the `gemm` export, batched matrix products through osp::sgemm (gemm.h:
// OpenBLAS or the portable GEMM, whichever is selected), and setGemmBatchParallel, which sets the largest
// product that a batch runs one product per pool thread.

#include <algorithm>
#include <cstdint>

#include "gemm.h"
#include "kernels.h"
#include "napi_args.h"
#include "pool.h"

namespace osp {

using napi::Args;
using napi::Error;

namespace {

int64_t gBatchParallelMaxMNK = int64_t(1) << 22;

}  // namespace

// gemm(a, b, out, batch, M, N, K, transA, transB, aOffsets, bOffsets)
// out[i] (M x N, row-major, contiguous per batch) = op(a + aOff[i]) @ op(b + bOff[i]).
void gemm(const Args& x) {
  const int64_t batch = x.i64(3), M = x.i64(4), N = x.i64(5), K = x.i64(6);
  const bool ta = x.i64(7) != 0, tb = x.i64(8) != 0;
  size_t na, nb;
  const int32_t* aOff = x.i32any(9, "aOffsets", &na);
  const int32_t* bOff = x.i32any(10, "bOffsets", &nb);
  if (static_cast<int64_t>(na) != batch || static_cast<int64_t>(nb) != batch) throw Error{"gemm: offsets must have one entry per batch"};
  const float* a = x.f32(0, -1, "a");
  const float* b = x.f32(1, -1, "b");
  float* out = x.f32(2, batch * M * N, "out");
  size_t lenA, lenB;
  {
    napi_typedarray_type t;
    void* d;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(x.env, x.at(0), &t, &lenA, &d, &buf, &off);
    napi_get_typedarray_info(x.env, x.at(1), &t, &lenB, &d, &buf, &off);
  }
  for (int64_t i = 0; i < batch; i++) {
    if (aOff[i] < 0 || aOff[i] + M * K > static_cast<int64_t>(lenA) || bOff[i] < 0 || bOff[i] + K * N > static_cast<int64_t>(lenB)) {
      throw Error{"gemm: a batch offset points outside its operand"};
    }
  }
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(out, out + batch * M * N, 0.0f);
    return;
  }
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  auto one = [&](int64_t i, bool threaded) {
    osp::sgemm(ta, tb, M, N, K, 1.0f, a + aOff[i], lda, b + bOff[i], ldb, 0.0f, out + i * M * N, N, threaded);
  };
  // Many small products (attention heads): one product per pool thread, each single-threaded, instead
  // of splitting every small product over all threads.
  if (batch >= pool().size() && pool().size() > 1 && M * N * K <= gBatchParallelMaxMNK) {
    osp::GemmSerialScope serial;
    pool().run(batch, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) one(i, false);
    });
    return;
  }
  for (int64_t i = 0; i < batch; i++) one(i, true);
}

// setGemmBatchParallel(maxMNK): largest M*N*K run one-product-per-thread in a batch (0: never).
void setGemmBatchParallel(const Args& x) { gBatchParallelMaxMNK = x.i64(0); }

}  // namespace osp
