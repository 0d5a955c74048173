// osp-lab native kernel pack: float32 CPU kernels for tfjs's cpu backend.
//
// Every function takes typed arrays that JavaScript allocated (inputs and outputs) plus sizes, and
// writes its results in place: no allocation crosses the boundary, nothing is retained after a call.
// Shapes, broadcasting and dtype checks happen in TypeScript (src/backend/native/); this file trusts
// its arguments except for buffer lengths, which every entry point checks against the sizes it is
// given (a wrong length is a bug in the caller and throws instead of reading out of bounds).
//
// Matrix products go to gemm.h: OpenBLAS (with its own threads) when the build found it, or the
// portable SGEMM of gemm.cc (on this file's pool), chosen at run time. Everything else is a plain loop
// the compiler vectorises; the loops that matter are split over a small persistent thread pool.

#include <node_api.h>

#include "gemm.h"
#include "gemm_napi.h"
#include "napi_args.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Thread pool: parallel_for over [0, n) in contiguous chunks, the calling thread takes a share.

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    std::lock_guard<std::mutex> busy(run_);
    stop();
    stopping_ = false;
    // New workers start at the current generation: the last job (already finished) is not theirs to run.
    const uint64_t current = generation_;
    for (int i = 1; i < std::max(1, threads); i++) workers_.emplace_back([this, i, current] { loop(i, current); });
  }

  // Runs f(begin, end) over chunks of [0, n); chunks smaller than `grain` are not split further.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
    const int parts = static_cast<int>(std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(1, grain))));
    // One job at a time: a second caller (another worker thread's tfjs) runs its job inline.
    std::unique_lock<std::mutex> busy(run_, std::try_to_lock);
    if (parts <= 1 || !busy.owns_lock()) {
      f(0, n);
      return;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      job_ = &f;
      n_ = n;
      parts_ = parts;
      pending_ = parts - 1;
      generation_++;
    }
    cv_.notify_all();
    f(0, n / parts);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop(int index, uint64_t seen) {
    for (;;) {
      const std::function<void(int64_t, int64_t)>* job;
      int64_t n;
      int parts;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        job = job_;
        n = n_;
        parts = parts_;
      }
      if (index < parts) (*job)(n * index / parts, n * (index + 1) / parts);
      if (index < parts) {
        std::unique_lock<std::mutex> lock(mu_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  void stop() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex run_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

Pool& pool() {
  static Pool p(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return p;
}

// Elementwise work below this many elements runs on the calling thread.
constexpr int64_t kGrain = 1 << 15;

// ---------------------------------------------------------------------------------------------
// N-API argument helpers.

using osp::napi::Args;
using osp::napi::Error;

using Impl = void (*)(const Args&);

template <Impl F>
napi_value wrap(napi_env env, napi_callback_info info) {
  try {
    F(Args(env, info));
  } catch (const Error& e) {
    napi_throw_error(env, "OSP_NATIVE", e.message.c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, "OSP_NATIVE", e.what());
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Matrix products.

int64_t gBatchParallelMaxMNK = int64_t(1) << 22;

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

enum Act { kLinear = 0, kRelu = 1, kRelu6 = 2, kElu = 3, kSigmoid = 4, kLeakyRelu = 5 };

inline float activate(int act, float v, float alpha) {
  switch (act) {
    case kRelu: return v > 0 ? v : 0;
    case kRelu6: return std::min(6.0f, std::max(0.0f, v));
    case kElu: return v >= 0 ? v : std::expm1(v);
    case kSigmoid: return 1.0f / (1.0f + std::exp(-v));
    case kLeakyRelu: return v >= 0 ? v : alpha * v;
    default: return v;
  }
}

// biasAct(out, bias|null, rows, n, act, alpha): out[r, j] = act(out[r, j] + bias[j % biasLen]).
// bias has length n (per column) or 1 (a scalar).
void biasAct(const Args& x) {
  const int64_t rows = x.i64(2), n = x.i64(3);
  const int act = static_cast<int>(x.i64(4));
  const float alpha = static_cast<float>(x.f64(5));
  float* out = x.f32(0, rows * n, "out");
  const float* bias = nullptr;
  int64_t blen = 0;
  if (!x.isNull(1)) {
    size_t len;
    napi_typedarray_type t;
    void* d;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(x.env, x.at(1), &t, &len, &d, &buf, &off);
    if (t != napi_float32_array || (static_cast<int64_t>(len) != n && len != 1)) throw Error{"biasAct: bias must be a Float32Array of length n or 1"};
    bias = static_cast<const float*>(d);
    blen = static_cast<int64_t>(len);
  }
  pool().run(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* o = out + r * n;
      for (int64_t j = 0; j < n; j++) {
        const float v = bias ? o[j] + bias[blen == 1 ? 0 : j] : o[j];
        o[j] = activate(act, v, alpha);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Elementwise.

enum BinaryOp { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kPow, kSqDiff };

template <int Op>
inline float binop(float a, float b) {
  if constexpr (Op == kAdd) return a + b;
  if constexpr (Op == kSub) return a - b;
  if constexpr (Op == kMul) return a * b;
  if constexpr (Op == kDiv) return a / b;
  if constexpr (Op == kMax) return (a != a || b != b) ? NAN : std::max(a, b);
  if constexpr (Op == kMin) return (a != a || b != b) ? NAN : std::min(a, b);
  if constexpr (Op == kPow) return std::pow(a, b);
  if constexpr (Op == kSqDiff) return (a - b) * (a - b);
  return 0;
}

// Inner loop over `n` outputs with element strides sa, sb (0 = broadcast, 1 = contiguous).
template <int Op>
inline void binaryRow(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; i++) o[i] = binop<Op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; i++) o[i] = binop<Op>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; i++) o[i] = binop<Op>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) o[i] = binop<Op>(a[i * sa], b[i * sb]);
  }
}

template <int Op>
void binaryStrided(const float* a, const float* b, float* out, int rank, const int32_t* shape, const int32_t* sa, const int32_t* sb) {
  const int64_t inner = shape[rank - 1];
  int64_t outer = 1;
  for (int d = 0; d < rank - 1; d++) outer *= shape[d];
  pool().run(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner)), [&](int64_t r0, int64_t r1) {
    // Position of row r0 in the outer dimensions.
    std::vector<int64_t> idx(rank > 1 ? rank - 1 : 1, 0);
    int64_t rem = r0;
    for (int d = rank - 2; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    int64_t offA = 0, offB = 0;
    for (int d = 0; d < rank - 1; d++) {
      offA += idx[d] * sa[d];
      offB += idx[d] * sb[d];
    }
    for (int64_t r = r0; r < r1; r++) {
      binaryRow<Op>(a + offA, sa[rank - 1], b + offB, sb[rank - 1], out + r * inner, inner);
      for (int d = rank - 2; d >= 0; d--) {
        idx[d]++;
        offA += sa[d];
        offB += sb[d];
        if (idx[d] < shape[d]) break;
        offA -= sa[d] * shape[d];
        offB -= sb[d] * shape[d];
        idx[d] = 0;
      }
    }
  });
}

// binary(op, a, b, out, shape, aStrides, bStrides): out has `shape` (contiguous); a and b are read
// at element strides (0 on broadcast dimensions).
void binary(const Args& x) {
  const int op = static_cast<int>(x.i64(0));
  size_t rank, r2, r3;
  const int32_t* shape = x.i32any(4, "shape", &rank);
  const int32_t* sa = x.i32any(5, "aStrides", &r2);
  const int32_t* sb = x.i32any(6, "bStrides", &r3);
  if (rank == 0 || r2 != rank || r3 != rank) throw Error{"binary: shape and strides must have the same rank >= 1"};
  int64_t n = 1, lastA = 0, lastB = 0;
  for (size_t d = 0; d < rank; d++) {
    n *= shape[d];
    lastA += static_cast<int64_t>(shape[d] - 1) * sa[d];
    lastB += static_cast<int64_t>(shape[d] - 1) * sb[d];
  }
  const float* a = x.f32(1, -1, "a");
  const float* b = x.f32(2, -1, "b");
  float* out = x.f32(3, n, "out");
  size_t la, lb;
  {
    napi_typedarray_type t;
    void* d;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(x.env, x.at(1), &t, &la, &d, &buf, &off);
    napi_get_typedarray_info(x.env, x.at(2), &t, &lb, &d, &buf, &off);
  }
  if (n == 0) return;
  if (lastA >= static_cast<int64_t>(la) || lastB >= static_cast<int64_t>(lb)) throw Error{"binary: strides reach outside an operand"};
  const int r = static_cast<int>(rank);
  switch (op) {
    case kAdd: binaryStrided<kAdd>(a, b, out, r, shape, sa, sb); break;
    case kSub: binaryStrided<kSub>(a, b, out, r, shape, sa, sb); break;
    case kMul: binaryStrided<kMul>(a, b, out, r, shape, sa, sb); break;
    case kDiv: binaryStrided<kDiv>(a, b, out, r, shape, sa, sb); break;
    case kMax: binaryStrided<kMax>(a, b, out, r, shape, sa, sb); break;
    case kMin: binaryStrided<kMin>(a, b, out, r, shape, sa, sb); break;
    case kPow: binaryStrided<kPow>(a, b, out, r, shape, sa, sb); break;
    case kSqDiff: binaryStrided<kSqDiff>(a, b, out, r, shape, sa, sb); break;
    default: throw Error{"binary: unknown op " + std::to_string(op)};
  }
}

enum UnaryOp { kExp = 0, kLog, kSqrt, kRsqrt, kSquare, kNeg, kAbs, kSigmoidU, kReluU, kTanh, kReciprocal, kEluU, kRelu6U, kLeakyReluU, kSoftplus, kLog1p };

template <int Op>
void unaryLoop(const float* in, float* out, int64_t n, float alpha) {
  pool().run(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float v = in[i];
      float r;
      if constexpr (Op == kExp) r = std::exp(v);
      else if constexpr (Op == kLog) r = std::log(v);
      else if constexpr (Op == kSqrt) r = std::sqrt(v);
      else if constexpr (Op == kRsqrt) r = 1.0f / std::sqrt(v);
      else if constexpr (Op == kSquare) r = v * v;
      else if constexpr (Op == kNeg) r = -v;
      else if constexpr (Op == kAbs) r = std::fabs(v);
      else if constexpr (Op == kSigmoidU) r = 1.0f / (1.0f + std::exp(-v));
      else if constexpr (Op == kReluU) r = v > 0 ? v : (v != v ? v : 0.0f);
      else if constexpr (Op == kTanh) r = std::tanh(v);
      else if constexpr (Op == kReciprocal) r = 1.0f / v;
      else if constexpr (Op == kEluU) r = v >= 0 ? v : std::expm1(v);
      else if constexpr (Op == kRelu6U) r = std::min(6.0f, std::max(0.0f, v));
      else if constexpr (Op == kLeakyReluU) r = v >= 0 ? v : alpha * v;
      else if constexpr (Op == kSoftplus) r = v > 20 ? v : std::log1p(std::exp(v));
      else r = std::log1p(v);
      out[i] = r;
    }
  });
}

// unary(op, in, out, alpha)
void unary(const Args& x) {
  const int op = static_cast<int>(x.i64(0));
  size_t n;
  {
    napi_typedarray_type t;
    void* d;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(x.env, x.at(1), &t, &n, &d, &buf, &off);
  }
  const float* in = x.f32(1, static_cast<int64_t>(n), "in");
  float* out = x.f32(2, static_cast<int64_t>(n), "out");
  const float alpha = static_cast<float>(x.f64(3));
  const int64_t len = static_cast<int64_t>(n);
  switch (op) {
#define CASE(K) \
  case K: unaryLoop<K>(in, out, len, alpha); break;
    CASE(kExp) CASE(kLog) CASE(kSqrt) CASE(kRsqrt) CASE(kSquare) CASE(kNeg) CASE(kAbs) CASE(kSigmoidU) CASE(kReluU) CASE(kTanh)
    CASE(kReciprocal) CASE(kEluU) CASE(kRelu6U) CASE(kLeakyReluU) CASE(kSoftplus) CASE(kLog1p)
#undef CASE
    default: throw Error{"unary: unknown op " + std::to_string(op)};
  }
}

// ---------------------------------------------------------------------------------------------
// Layout: transpose, strided copies.

// transpose(in, out, shape, perm): out[...] = in permuted; out's dimension d is in's perm[d].
void transpose(const Args& x) {
  size_t rank, r2;
  const int32_t* shape = x.i32any(2, "shape", &rank);
  const int32_t* perm = x.i32any(3, "perm", &r2);
  if (rank == 0 || r2 != rank || rank > 8) throw Error{"transpose: shape and perm must have the same rank in [1, 8]"};
  int64_t n = 1;
  for (size_t d = 0; d < rank; d++) n *= shape[d];
  const float* in = x.f32(0, n, "in");
  float* out = x.f32(1, n, "out");
  if (n == 0) return;
  const int r = static_cast<int>(rank);
  int64_t inStride[8];
  inStride[r - 1] = 1;
  for (int d = r - 2; d >= 0; d--) inStride[d] = inStride[d + 1] * shape[d + 1];
  int64_t outShape[8], stride[8];  // stride: in-element step per out-index step along each out dim
  for (int d = 0; d < r; d++) {
    outShape[d] = shape[perm[d]];
    stride[d] = inStride[perm[d]];
  }
  const int64_t inner = outShape[r - 1];
  const int64_t rows = n / inner;
  pool().run(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner)), [&](int64_t r0, int64_t r1) {
    int64_t idx[8] = {0};
    int64_t rem = r0, off = 0;
    for (int d = r - 2; d >= 0; d--) {
      idx[d] = rem % outShape[d];
      rem /= outShape[d];
      off += idx[d] * stride[d];
    }
    const int64_t s = stride[r - 1];
    for (int64_t row = r0; row < r1; row++) {
      float* o = out + row * inner;
      const float* p = in + off;
      if (s == 1) std::memcpy(o, p, sizeof(float) * inner);
      else for (int64_t j = 0; j < inner; j++) o[j] = p[j * s];
      for (int d = r - 2; d >= 0; d--) {
        idx[d]++;
        off += stride[d];
        if (idx[d] < outShape[d]) break;
        off -= stride[d] * outShape[d];
        idx[d] = 0;
      }
    }
  });
}

// copyRows(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, cols): row-wise block copy.
// Slices, splits and concatenations reduce to this once their shapes are collapsed to 2-D.
void copyRows(const Args& x) {
  const int64_t so = x.i64(1), ss = x.i64(2), dO = x.i64(4), ds = x.i64(5), rows = x.i64(6), cols = x.i64(7);
  size_t ls, ld;
  napi_typedarray_type ts, td;
  void *ps, *pd;
  napi_value buf;
  size_t off;
  napi_get_typedarray_info(x.env, x.at(0), &ts, &ls, &ps, &buf, &off);
  napi_get_typedarray_info(x.env, x.at(3), &td, &ld, &pd, &buf, &off);
  if (ts != td || (ts != napi_float32_array && ts != napi_int32_array)) throw Error{"copyRows: src and dst must both be Float32Array or Int32Array"};
  if (rows == 0 || cols == 0) return;
  if (so < 0 || dO < 0 || so + (rows - 1) * ss + cols > static_cast<int64_t>(ls) || dO + (rows - 1) * ds + cols > static_cast<int64_t>(ld)) {
    throw Error{"copyRows: block reaches outside its buffer"};
  }
  const auto* s = static_cast<const uint32_t*>(ps) + so;
  auto* d = static_cast<uint32_t*>(pd) + dO;
  for (int64_t r = 0; r < rows; r++) std::memcpy(d + r * ds, s + r * ss, sizeof(float) * cols);
}

// ---------------------------------------------------------------------------------------------
// Reductions over the innermost axis: in [outer, inner] -> out [outer].

enum ReduceOp { kSum = 0, kMaxR, kMinR, kMean, kProd };

void reduce(const Args& x) {
  const int op = static_cast<int>(x.i64(0));
  const int64_t outer = x.i64(3), inner = x.i64(4);
  const float* in = x.f32(1, outer * inner, "in");
  float* out = x.f32(2, outer, "out");
  pool().run(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* p = in + r * inner;
      if (op == kSum || op == kMean) {
        // Pairwise-ish: accumulate in double, which also makes the order irrelevant at float32.
        double acc = 0;
        for (int64_t j = 0; j < inner; j++) acc += p[j];
        out[r] = static_cast<float>(op == kMean ? acc / static_cast<double>(inner) : acc);
      } else if (op == kProd) {
        double acc = 1;
        for (int64_t j = 0; j < inner; j++) acc *= p[j];
        out[r] = static_cast<float>(acc);
      } else {
        float acc = op == kMaxR ? -INFINITY : INFINITY;
        bool nan = false;
        for (int64_t j = 0; j < inner; j++) {
          const float v = p[j];
          nan |= v != v;
          acc = op == kMaxR ? std::max(acc, v) : std::min(acc, v);
        }
        out[r] = nan ? NAN : acc;
      }
    }
  });
}

// o = scale * softmax(p) over one row of n elements (the maximum subtracted first; sum in double).
inline void scaledSoftmaxRow(const float* p, float* o, int64_t n, double scale) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = std::max(m, p[j]);
  double z = 0;
  for (int64_t j = 0; j < n; j++) {
    o[j] = std::exp(p[j] - m);
    z += o[j];
  }
  const float s = static_cast<float>(scale / z);
  for (int64_t j = 0; j < n; j++) o[j] *= s;
}

// softmax(in, out, rows, n) over the last axis.
void softmax(const Args& x) {
  const int64_t rows = x.i64(2), n = x.i64(3);
  const float* in = x.f32(0, rows * n, "in");
  float* out = x.f32(1, rows * n, "out");
  pool().run(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) scaledSoftmaxRow(in + r * n, out + r * n, n, 1.0);
  });
}

// softmaxGrad(y, dy, dx, rows, n): dx = y * (dy - sum(dy * y)) per row.
void softmaxGrad(const Args& x) {
  const int64_t rows = x.i64(3), n = x.i64(4);
  const float* y = x.f32(0, rows * n, "y");
  const float* dy = x.f32(1, rows * n, "dy");
  float* dx = x.f32(2, rows * n, "dx");
  pool().run(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * n;
      const float* g = dy + r * n;
      double dot = 0;
      for (int64_t j = 0; j < n; j++) dot += static_cast<double>(g[j]) * yr[j];
      const float d = static_cast<float>(dot);
      for (int64_t j = 0; j < n; j++) dx[r * n + j] = yr[j] * (g[j] - d);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Gathers and scatters.

// gather(in, idx, out, outer, axisSize, inner): in [outer, axisSize, inner], out [outer, nIdx, inner].
void gather(const Args& x) {
  const int64_t outer = x.i64(3), axis = x.i64(4), inner = x.i64(5);
  size_t nIdx;
  const int32_t* idx = x.i32any(1, "indices", &nIdx);
  const int64_t k = static_cast<int64_t>(nIdx);
  const float* in = x.f32(0, outer * axis * inner, "in");
  float* out = x.f32(2, outer * k * inner, "out");
  for (int64_t i = 0; i < k; i++) {
    if (idx[i] < 0 || idx[i] >= axis) throw Error{"gather: index " + std::to_string(idx[i]) + " outside [0, " + std::to_string(axis) + ")"};
  }
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < k; i++) std::memcpy(out + (o * k + i) * inner, in + (o * axis + idx[i]) * inner, sizeof(float) * inner);
  }
}

// segmentSum(data, ids, out, inner, numSegments): out[s] = sum of rows of data [n, inner] with id s.
// Ids outside [0, numSegments) are dropped, as tf.unsortedSegmentSum does.
void segmentSum(const Args& x) {
  const int64_t inner = x.i64(3), segs = x.i64(4);
  size_t n;
  const int32_t* ids = x.i32any(1, "segmentIds", &n);
  const float* data = x.f32(0, static_cast<int64_t>(n) * inner, "data");
  float* out = x.f32(2, segs * inner, "out");
  std::fill(out, out + segs * inner, 0.0f);
  for (size_t r = 0; r < n; r++) {
    const int32_t s = ids[r];
    if (s < 0 || s >= segs) continue;
    float* o = out + s * inner;
    const float* d = data + r * inner;
    for (int64_t j = 0; j < inner; j++) o[j] += d[j];
  }
}

// ---------------------------------------------------------------------------------------------
// The fused ops of src/ops (contracts in src/ops/dispatch.ts).

// rmsNorm(x, w, y, rows, d, wlen, eps)
void rmsNorm(const Args& a) {
  const int64_t rows = a.i64(3), d = a.i64(4), wlen = a.i64(5);
  const float eps = static_cast<float>(a.f64(6));
  const float* x = a.f32(0, rows * d, "x");
  const float* w = a.f32(1, wlen, "weight");
  float* y = a.f32(2, rows * d, "y");
  pool().run(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, d)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      double ss = 0;
      for (int64_t i = 0; i < d; i++) ss += static_cast<double>(xr[i]) * xr[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      if (wlen == 1) {
        const float s = inv * w[0];
        for (int64_t i = 0; i < d; i++) yr[i] = xr[i] * s;
      } else {
        for (int64_t i = 0; i < d; i++) yr[i] = xr[i] * inv * w[i];
      }
    }
  });
}

// rmsNormGrad(dy, x, w, dx, dw, rows, d, wlen, eps)
// Deterministic for any thread count: dx row by row; dweight summed afterwards in row order (per column
// in parallel for weight [d], serially for weight [1]), never from per-thread partial sums.
void rmsNormGrad(const Args& a) {
  const int64_t rows = a.i64(5), d = a.i64(6), wlen = a.i64(7);
  const double eps = a.f64(8);
  const float* dy = a.f32(0, rows * d, "dy");
  const float* x = a.f32(1, rows * d, "x");
  const float* w = a.f32(2, wlen, "weight");
  float* dx = a.f32(3, rows * d, "dx");
  float* dw = a.f32(4, wlen, "dweight");
  // Per-row scratch of the calling thread. The lambdas below run on pool threads too, where the name of a
  // thread_local would mean *their* (empty) instance: they must use these pointers.
  thread_local std::vector<double> invBuf, rowSumBuf;
  invBuf.resize(static_cast<size_t>(rows));
  rowSumBuf.resize(static_cast<size_t>(rows));
  double* inv = invBuf.data();
  double* rowSum = rowSumBuf.data();
  pool().run(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, d)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      const float* g = dy + r * d;
      double ss = 0, dot = 0, gx = 0;
      for (int64_t i = 0; i < d; i++) {
        ss += static_cast<double>(xr[i]) * xr[i];
        dot += static_cast<double>(g[i]) * (wlen == 1 ? w[0] : w[i]) * xr[i];
        gx += static_cast<double>(g[i]) * xr[i];
      }
      const double rinv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
      inv[r] = rinv;
      rowSum[r] = gx * rinv;
      // dx_i = inv (w_i dy_i - x_i inv^2 dot / d)
      const double k = rinv * rinv * dot / static_cast<double>(d);
      for (int64_t i = 0; i < d; i++) {
        const double wi = wlen == 1 ? w[0] : w[i];
        dx[r * d + i] = static_cast<float>(rinv * (wi * g[i] - xr[i] * k));
      }
    }
  });
  if (wlen == 1) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++) s += rowSum[r];
    dw[0] = static_cast<float>(s);
    return;
  }
  // Column blocks in parallel; inside a block, rows in order (row-major reads, one sum per column).
  pool().run(d, std::max<int64_t>(16, kGrain / std::max<int64_t>(1, rows)), [&](int64_t c0, int64_t c1) {
    std::vector<double> acc(static_cast<size_t>(c1 - c0), 0.0);
    for (int64_t r = 0; r < rows; r++) {
      const float* g = dy + r * d;
      const float* xr = x + r * d;
      const double ri = inv[r];
      for (int64_t i = c0; i < c1; i++) acc[i - c0] += static_cast<double>(g[i]) * xr[i] * ri;
    }
    for (int64_t i = c0; i < c1; i++) dw[i] = static_cast<float>(acc[i - c0]);
  });
}

// crossEntropy(logits, targets, loss, N, V): loss[i] = logsumexp(logits_i) - logits_i[t_i]
void crossEntropy(const Args& a) {
  const int64_t N = a.i64(3), V = a.i64(4);
  const float* l = a.f32(0, N * V, "logits");
  const int32_t* t = a.i32(1, N, "targets");
  float* loss = a.f32(2, N, "loss");
  for (int64_t i = 0; i < N; i++) {
    if (t[i] < 0 || t[i] >= V) throw Error{"crossEntropy: target " + std::to_string(t[i]) + " outside [0, " + std::to_string(V) + ")"};
  }
  pool().run(N, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, V)), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* p = l + i * V;
      float m = -INFINITY;
      for (int64_t j = 0; j < V; j++) m = std::max(m, p[j]);
      double z = 0;
      for (int64_t j = 0; j < V; j++) z += std::exp(static_cast<double>(p[j] - m));
      loss[i] = static_cast<float>(m + std::log(z) - p[t[i]]);
    }
  });
}

// crossEntropyGrad(dloss, logits, targets, dlogits, N, V)
void crossEntropyGrad(const Args& a) {
  const int64_t N = a.i64(4), V = a.i64(5);
  const float* dl = a.f32(0, N, "dloss");
  const float* l = a.f32(1, N * V, "logits");
  const int32_t* t = a.i32(2, N, "targets");
  float* g = a.f32(3, N * V, "dlogits");
  pool().run(N, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, V)), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      float* o = g + i * V;
      scaledSoftmaxRow(l + i * V, o, V, dl[i]);
      if (t[i] >= 0 && t[i] < V) o[t[i]] -= dl[i];
    }
  });
}

// adamw(p, g, m, v, pOut, mOut, vOut, lr, beta1, beta2, eps, decay, bc1, bc2Sqrt)
void adamw(const Args& a) {
  size_t n;
  {
    napi_typedarray_type t;
    void* d;
    napi_value buf;
    size_t off;
    napi_get_typedarray_info(a.env, a.at(0), &t, &n, &d, &buf, &off);
  }
  const int64_t len = static_cast<int64_t>(n);
  const float* p = a.f32(0, len, "param");
  const float* g = a.f32(1, len, "grad");
  const float* m = a.f32(2, len, "expAvg");
  const float* v = a.f32(3, len, "expAvgSq");
  float* po = a.f32(4, len, "paramOut");
  float* mo = a.f32(5, len, "expAvgOut");
  float* vo = a.f32(6, len, "expAvgSqOut");
  const float b1 = static_cast<float>(a.f64(8)), b2 = static_cast<float>(a.f64(9));
  const float eps = static_cast<float>(a.f64(10)), decay = static_cast<float>(a.f64(11));
  // lr / bc1 in float64, as the reference computes it on the host.
  const float step = static_cast<float>(a.f64(7) / a.f64(12)), bc2 = static_cast<float>(a.f64(13));
  pool().run(len, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float gi = g[i];
      const float mi = b1 * m[i] + (1 - b1) * gi;
      const float vi = b2 * v[i] + (1 - b2) * gi * gi;
      mo[i] = mi;
      vo[i] = vi;
      po[i] = p[i] * decay - step * (mi / (std::sqrt(vi) / bc2 + eps));
    }
  });
}

// newtonSchulz(g, out, m, n, steps, a[], b[], c[], normScale, normEps) — see src/ops/newton_schulz.ts.
void newtonSchulz(const Args& x) {
  const int64_t m = x.i64(2), n = x.i64(3), steps = x.i64(4);
  const float* g = x.f32(0, m * n, "x");
  float* out = x.f32(1, m * n, "out");
  const float* ca = x.f32(5, steps, "a");
  const float* cb = x.f32(6, steps, "b");
  const float* cc = x.f32(7, steps, "c");
  const double normScale = x.f64(8), normEps = x.f64(9);
  // Wide orientation: r <= c, so A = X X^T is the smaller r x r Gram matrix.
  const bool tall = m > n;
  const int r = static_cast<int>(tall ? n : m), c = static_cast<int>(tall ? m : n);
  // Work buffers reused across calls: fresh large allocations are fresh pages, and page faults are
  // expensive (inside a VM, a 1 MB buffer's first touch cost more than a 128 x 2048 x 128 product).
  thread_local std::vector<float> X, Y, A, B;
  X.resize(static_cast<size_t>(r) * c);
  Y.resize(static_cast<size_t>(r) * c);
  A.resize(static_cast<size_t>(r) * r);
  B.resize(static_cast<size_t>(r) * r);
  double ss = 0;
  for (int64_t i = 0; i < m * n; i++) ss += static_cast<double>(g[i]) * g[i];
  const float scale = static_cast<float>(1.0 / (normScale * std::sqrt(ss) + normEps));
  if (tall) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) X[j * c + i] = g[i * n + j] * scale;
  } else {
    for (int64_t i = 0; i < m * n; i++) X[i] = g[i] * scale;
  }
  for (int64_t s = 0; s < steps; s++) {
    // A = X X^T
    osp::ssyrkUpper(r, c, 1.0f, X.data(), c, 0.0f, A.data(), r);
    for (int i = 0; i < r; i++)
      for (int j = 0; j < i; j++) A[i * r + j] = A[j * r + i];
    // B = b A + c A A
    B = A;
    osp::ssymmLeft(r, r, cc[s], A.data(), r, A.data(), r, cb[s], B.data(), r);
    // X = a X + B X   (Y holds the result, then swap)
    Y = X;
    osp::sgemm(false, false, r, c, r, 1.0f, B.data(), r, X.data(), c, ca[s], Y.data(), c);
    std::swap(X, Y);
  }
  if (tall) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) out[i * n + j] = X[j * c + i];
  } else {
    std::memcpy(out, X.data(), sizeof(float) * m * n);
  }
}

// channelMoments(x, token, channel, N, d): power sums 1..4 per row [N, 4] and per column [d, 4].
void channelMoments(const Args& a) {
  const int64_t N = a.i64(3), d = a.i64(4);
  const float* x = a.f32(0, N * d, "x");
  float* tok = a.f32(1, N * 4, "token");
  float* ch = a.f32(2, d * 4, "channel");
  std::vector<double> col(static_cast<size_t>(d) * 4, 0.0);
  for (int64_t i = 0; i < N; i++) {
    const float* r = x + i * d;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (int64_t j = 0; j < d; j++) {
      const double v = r[j], v2 = v * v;
      s1 += v;
      s2 += v2;
      s3 += v2 * v;
      s4 += v2 * v2;
      double* cj = col.data() + j * 4;
      cj[0] += v;
      cj[1] += v2;
      cj[2] += v2 * v;
      cj[3] += v2 * v2;
    }
    tok[i * 4] = static_cast<float>(s1);
    tok[i * 4 + 1] = static_cast<float>(s2);
    tok[i * 4 + 2] = static_cast<float>(s3);
    tok[i * 4 + 3] = static_cast<float>(s4);
  }
  for (int64_t j = 0; j < d * 4; j++) ch[j] = static_cast<float>(col[j]);
}

// ---------------------------------------------------------------------------------------------
// Configuration.

void setThreads(const Args& x) {
  const int n = static_cast<int>(x.i64(0));
  if (n < 1 || n > 1024) throw Error{"setThreads: expected 1..1024"};
  osp::gemmSetBlasThreads(n);
  pool().resize(n);
}

// setPoolThreads(n): the addon's own pool only (OpenBLAS keeps its count; the portable GEMM uses the pool).
void setPoolThreads(const Args& x) {
  const int n = static_cast<int>(x.i64(0));
  if (n < 1 || n > 1024) throw Error{"setPoolThreads: expected 1..1024"};
  pool().resize(n);
}

napi_value info(napi_env env, napi_callback_info) {
  std::string s = osp::gemmDescribe() + "; pool threads " + std::to_string(pool().size());
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

napi_value threads(napi_env env, napi_callback_info) {
  napi_value v;
  napi_create_int32(env, pool().size(), &v);
  return v;
}

}  // namespace

NAPI_MODULE_INIT() {
  osp::gemmSetPool([](int64_t n, const std::function<void(int64_t, int64_t)>& f) { pool().run(n, 1, f); }, [] { return pool().size(); });
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, wrap<gemm>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setGemmBatchParallel", nullptr, wrap<setGemmBatchParallel>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"biasAct", nullptr, wrap<biasAct>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"binary", nullptr, wrap<binary>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"unary", nullptr, wrap<unary>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"transpose", nullptr, wrap<transpose>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"copyRows", nullptr, wrap<copyRows>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"reduce", nullptr, wrap<reduce>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"softmax", nullptr, wrap<softmax>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"softmaxGrad", nullptr, wrap<softmaxGrad>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gather", nullptr, wrap<gather>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"segmentSum", nullptr, wrap<segmentSum>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsNorm", nullptr, wrap<rmsNorm>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsNormGrad", nullptr, wrap<rmsNormGrad>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"crossEntropy", nullptr, wrap<crossEntropy>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"crossEntropyGrad", nullptr, wrap<crossEntropyGrad>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adamw", nullptr, wrap<adamw>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"newtonSchulz", nullptr, wrap<newtonSchulz>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"channelMoments", nullptr, wrap<channelMoments>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, wrap<setThreads>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setPoolThreads", nullptr, wrap<setPoolThreads>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"info", nullptr, info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"threads", nullptr, threads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  osp::defineGemmExports(env, exports);  // GEMM selection and the portable GEMM itself (gemm_napi.cc)
  return exports;
}
