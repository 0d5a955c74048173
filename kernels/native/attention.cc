// osp-lab native kernel pack: causal attention with grouped key/value heads, forward and backward
// (OspCausalAttention / OspCausalAttentionGrad, contracts in src/ops/dispatch.ts).
//
// Layout: q, dy, dq [B, T, H, hd]; k, v, dk, dv [B, T, Hkv, hd]; query head h reads key/value head
// h / (H / Hkv). The products run on gemm.h's sgemm with leading dimensions, straight on these layouts
// (no head transposes, no repeat_kv copies). Query rows go in blocks of kRows: a block's scores
// [rows, keys up to its last row] live in a per-thread scratch buffer, so no [B, H, T, T] tensor exists.
//
// Forward: one task per (batch, head, row block) over the pool; the softmax of each row is computed
// from its block of scores (all of a row's keys are in the block: no online rescaling is needed on a
// CPU), and the row's log-sum-exp is stored beside the output for the backward.
// Backward (FlashAttention's, recomputing p = exp(s - lse)): one task per (batch, key/value head), which
// owns that head's dk and dv rows and accumulates into them over its query heads and row blocks in a
// fixed order, so results are bit-identical for any thread count (exact resume).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "exp_approx.h"
#include "gemm.h"
#include "kernels.h"
#include "napi_args.h"
#include "pool.h"

namespace osp {

using napi::Args;
using napi::Error;

namespace {

// Query rows per block: scores of a block are kRows x (keys so far). 64 keeps the products large enough
// for the GEMM while the causal waste (the part of a diagonal block above the diagonal) stays small.
constexpr int64_t kRows = 64;

struct Dims {
  int64_t B, T, H, Hkv, hd, group;
  int64_t qRow() const { return H * hd; }     // stride between tokens in q, dy, dq
  int64_t kvRow() const { return Hkv * hd; }  // stride between tokens in k, v, dk, dv
  int64_t fwdRow() const { return H * hd + H; }
  int64_t blocks() const { return (T + kRows - 1) / kRows; }
};

Dims dims(const Args& a, int first) {
  Dims d{a.i64(first), a.i64(first + 1), a.i64(first + 2), a.i64(first + 3), a.i64(first + 4), 0};
  if (d.B < 0 || d.T < 0 || d.H < 1 || d.Hkv < 1 || d.hd < 1 || d.H % d.Hkv != 0) {
    throw Error{"attention: bad sizes (B, T, H, Hkv, hd); H must be a multiple of Hkv"};
  }
  d.group = d.H / d.Hkv;
  return d;
}

// One thread's scratch (two [kRows, T] blocks), grown on demand and kept for the thread's lifetime.
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

}  // namespace

// causalAttention(q, k, v, fwd, B, T, H, Hkv, hd, scale)
// fwd [B*T, H*hd + H]: per token every head's output, then every head's log-sum-exp of its scaled scores.
void causalAttention(const Args& a) {
  const Dims d = dims(a, 4);
  const float scale = static_cast<float>(a.f64(9));
  const float* q = a.f32(0, d.B * d.T * d.qRow(), "q");
  const float* k = a.f32(1, d.B * d.T * d.kvRow(), "k");
  const float* v = a.f32(2, d.B * d.T * d.kvRow(), "v");
  float* fwd = a.f32(3, d.B * d.T * d.fwdRow(), "fwd");
  if (d.B * d.T == 0) return;
  const int64_t nb = d.blocks(), W = d.fwdRow();
  GemmSerialScope serial;  // products stay on the pool thread that runs the task
  pool().run(d.B * d.H * nb, 1, [&](int64_t t0, int64_t t1) {
    float* s = scratch(kRows * d.T);
    for (int64_t t = t0; t < t1; t++) {
      const int64_t b = t / (d.H * nb), h = t / nb % d.H, i0 = t % nb * kRows;
      const int64_t i1 = std::min(d.T, i0 + kRows), n = i1 - i0, m = i1;  // rows, keys
      const int64_t g = h / d.group;
      const float* qb = q + ((b * d.T + i0) * d.H + h) * d.hd;
      const float* kb = k + (b * d.T * d.Hkv + g) * d.hd;
      const float* vb = v + (b * d.T * d.Hkv + g) * d.hd;
      // s = scale q k^T over keys [0, i1)
      sgemm(false, true, n, m, d.hd, scale, qb, d.qRow(), kb, d.kvRow(), 0.0f, s, m, false);
      for (int64_t r = 0; r < n; r++) {
        float* row = s + r * m;
        const int64_t keys = i0 + r + 1;
        float mx = -INFINITY;
        for (int64_t j = 0; j < keys; j++) mx = std::max(mx, row[j]);
        for (int64_t j = 0; j < keys; j++) row[j] = expApprox(row[j] - mx);
        double z = 0;
        for (int64_t j = 0; j < keys; j++) z += row[j];
        const float inv = static_cast<float>(1.0 / z);
        for (int64_t j = 0; j < keys; j++) row[j] *= inv;
        std::fill(row + keys, row + m, 0.0f);
        fwd[(b * d.T + i0 + r) * W + d.H * d.hd + h] = static_cast<float>(mx + std::log(z));
      }
      // out = p v
      sgemm(false, false, n, d.hd, m, 1.0f, s, m, vb, d.kvRow(), 0.0f, fwd + (b * d.T + i0) * W + h * d.hd, W, false);
    }
  });
}

// causalAttentionGrad(dy, q, k, v, fwd, dq, dk, dv, B, T, H, Hkv, hd, scale)
//   p = exp(scale q k^T - lse), dp = dy v^T, ds = scale p (dp - delta) with delta_i = dy_i . out_i,
//   dq = ds k, dk = ds^T q, dv = p^T dy
void causalAttentionGrad(const Args& a) {
  const Dims d = dims(a, 8);
  const float scale = static_cast<float>(a.f64(13));
  const int64_t nq = d.B * d.T * d.qRow(), nkv = d.B * d.T * d.kvRow();
  const float* dy = a.f32(0, nq, "dy");
  const float* q = a.f32(1, nq, "q");
  const float* k = a.f32(2, nkv, "k");
  const float* v = a.f32(3, nkv, "v");
  const float* fwd = a.f32(4, d.B * d.T * d.fwdRow(), "fwd");
  float* dq = a.f32(5, nq, "dq");
  float* dk = a.f32(6, nkv, "dk");
  float* dv = a.f32(7, nkv, "dv");
  if (d.B * d.T == 0) return;
  const int64_t nb = d.blocks(), W = d.fwdRow();
  GemmSerialScope serial;
  pool().run(d.B * d.Hkv, 1, [&](int64_t t0, int64_t t1) {
    float* p = scratch(2 * kRows * d.T + kRows);
    float* ds = p + kRows * d.T;
    float* delta = ds + kRows * d.T;
    for (int64_t t = t0; t < t1; t++) {
      const int64_t b = t / d.Hkv, g = t % d.Hkv;
      const float* kb = k + (b * d.T * d.Hkv + g) * d.hd;
      const float* vb = v + (b * d.T * d.Hkv + g) * d.hd;
      float* dkb = dk + (b * d.T * d.Hkv + g) * d.hd;
      float* dvb = dv + (b * d.T * d.Hkv + g) * d.hd;
      for (int64_t j = 0; j < d.T; j++) {
        std::memset(dkb + j * d.kvRow(), 0, sizeof(float) * d.hd);
        std::memset(dvb + j * d.kvRow(), 0, sizeof(float) * d.hd);
      }
      for (int64_t h = g * d.group; h < (g + 1) * d.group; h++) {
        for (int64_t blk = 0; blk < nb; blk++) {
          const int64_t i0 = blk * kRows, i1 = std::min(d.T, i0 + kRows), n = i1 - i0, m = i1;
          const int64_t qOff = ((b * d.T + i0) * d.H + h) * d.hd;
          // p = exp(scale q k^T - lse) on and below the diagonal, 0 above; dp = dy v^T
          sgemm(false, true, n, m, d.hd, scale, q + qOff, d.qRow(), kb, d.kvRow(), 0.0f, p, m, false);
          sgemm(false, true, n, m, d.hd, 1.0f, dy + qOff, d.qRow(), vb, d.kvRow(), 0.0f, ds, m, false);
          for (int64_t r = 0; r < n; r++) {
            const float* o = fwd + (b * d.T + i0 + r) * W + h * d.hd;
            const float* g2 = dy + qOff + r * d.qRow();
            double dot = 0;
            for (int64_t c = 0; c < d.hd; c++) dot += static_cast<double>(g2[c]) * o[c];
            delta[r] = static_cast<float>(dot);
          }
          for (int64_t r = 0; r < n; r++) {
            const float lse = fwd[(b * d.T + i0 + r) * W + d.H * d.hd + h];
            const int64_t keys = i0 + r + 1;
            float* pr = p + r * m;
            float* sr = ds + r * m;
            const float dr = delta[r];
            for (int64_t j = 0; j < keys; j++) {
              pr[j] = expApprox(pr[j] - lse);
              sr[j] = scale * pr[j] * (sr[j] - dr);
            }
            std::fill(pr + keys, pr + m, 0.0f);
            std::fill(sr + keys, sr + m, 0.0f);
          }
          // dq (rows of this block, written once) = ds k; dk += ds^T q; dv += p^T dy
          sgemm(false, false, n, d.hd, m, 1.0f, ds, m, kb, d.kvRow(), 0.0f, dq + qOff, d.qRow(), false);
          sgemm(true, false, m, d.hd, n, 1.0f, ds, m, q + qOff, d.qRow(), 1.0f, dkb, d.kvRow(), false);
          sgemm(true, false, m, d.hd, n, 1.0f, p, m, dy + qOff, d.qRow(), 1.0f, dvb, d.kvRow(), false);
        }
      }
    }
  });
}

}  // namespace osp
