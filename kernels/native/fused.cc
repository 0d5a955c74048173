// osp-lab native kernel pack: the fused ops of src/ops (contracts in src/ops/dispatch.ts): rmsNorm,
// rmsNormGrad, crossEntropy, crossEntropyGrad, adamw, newtonSchulz (on gemm.h's sgemm, ssyrk and ssymm),
// channelMoments, swiglu, swigluGrad, rope and ropeGrad. Row reductions accumulate in double; rmsNormGrad is deterministic
// for any thread count.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "exp_approx.h"
#include "gemm.h"
#include "kernels.h"
#include "napi_args.h"
#include "pool.h"
#include "softmax_row.h"

namespace osp {

using napi::Args;
using napi::Error;

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

// swiglu(gate, up, h, n): h = silu(gate) * up = (g sigmoid(g)) u, in the order tfjs's ops compute it.
void swiglu(const Args& a) {
  const int64_t n = a.i64(3);
  const float* g = a.f32(0, n, "gate");
  const float* u = a.f32(1, n, "up");
  float* h = a.f32(2, n, "h");
  pool().run(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float s = 1.0f / (1.0f + expApprox(-g[i]));
      h[i] = g[i] * s * u[i];
    }
  });
}

// swigluGrad(dh, gate, up, dgate, dup, n): dgate = dh u s (1 + g (1 - s)), dup = dh g s, s = sigmoid(g).
void swigluGrad(const Args& a) {
  const int64_t n = a.i64(5);
  const float* dh = a.f32(0, n, "dh");
  const float* g = a.f32(1, n, "gate");
  const float* u = a.f32(2, n, "up");
  float* dg = a.f32(3, n, "dgate");
  float* du = a.f32(4, n, "dup");
  pool().run(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      const float s = 1.0f / (1.0f + expApprox(-g[i]));
      dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
      du[i] = dh[i] * g[i] * s;
    }
  });
}

// expApprox(x, out, n): exp_approx.h's exponential on every element (for its accuracy test).
void expApproxArray(const Args& a) {
  const int64_t n = a.i64(2);
  const float* x = a.f32(0, n, "x");
  float* out = a.f32(1, n, "out");
  for (int64_t i = 0; i < n; i++) out[i] = expApprox(x[i]);
}

// rope(x, cos, sin, y, rows, T, heads, hd): per row (b, t, head) of x [B, T, heads, hd], with c, s the
// tables' row t and h = hd / 2: y[j] = x[j] c[j] - x[j+h] s[j], y[j+h] = x[j+h] c[j+h] + x[j] s[j+h].
// ropeGrad(dy, cos, sin, dx, ...): dx[j] = dy[j] c[j] + dy[j+h] s[j+h], dx[j+h] = dy[j+h] c[j+h] - dy[j] s[j].
template <bool Grad>
void ropeImpl(const Args& a) {
  const int64_t rows = a.i64(4), T = a.i64(5), heads = a.i64(6), hd = a.i64(7);
  if (T < 1 || heads < 1 || hd < 2 || hd % 2 != 0 || rows % (T * heads) != 0) throw Error{"rope: bad sizes (rows, T, heads, even hd)"};
  const float* x = a.f32(0, rows * hd, Grad ? "dy" : "x");
  const float* cs = a.f32(1, T * hd, "cos");
  const float* sn = a.f32(2, T * hd, "sin");
  float* y = a.f32(3, rows * hd, Grad ? "dx" : "y");
  const int64_t h = hd / 2;
  pool().run(rows, std::max<int64_t>(1, kGrain / hd), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r / heads % T;
      const float* xr = x + r * hd;
      const float* c = cs + t * hd;
      const float* s = sn + t * hd;
      float* yr = y + r * hd;
      for (int64_t j = 0; j < h; j++) {
        if (Grad) {
          yr[j] = xr[j] * c[j] + xr[j + h] * s[j + h];
          yr[j + h] = xr[j + h] * c[j + h] - xr[j] * s[j];
        } else {
          yr[j] = xr[j] * c[j] - xr[j + h] * s[j];
          yr[j + h] = xr[j + h] * c[j + h] + xr[j] * s[j + h];
        }
      }
    }
  });
}

void rope(const Args& a) { ropeImpl<false>(a); }
void ropeGrad(const Args& a) { ropeImpl<true>(a); }

}  // namespace osp
