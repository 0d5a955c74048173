// osp-lab native kernel pack: elementwise and row-wise kernels: biasAct (the bias and activation of
// _FusedMatMul), binary (with broadcasting strides), unary, reduce (over the innermost axis), softmax and
// softmaxGrad. Each splits its rows (or elements) over the pool when a call has more than kGrain elements.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"
#include "napi_args.h"
#include "pool.h"
#include "softmax_row.h"

namespace osp {

using napi::Args;
using napi::Error;

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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
// Reductions over the innermost axis: in [outer, inner] -> out [outer].

namespace {

enum ReduceOp { kSum = 0, kMaxR, kMinR, kMean, kProd };

}  // namespace

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

}  // namespace osp
