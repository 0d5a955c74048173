// osp-lab native kernel pack: data movement: transpose (any permutation up to rank 8), copyRows (the
// row-wise block copy that slices, splits and concatenations reduce to), gather and segmentSum.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "kernels.h"
#include "napi_args.h"
#include "pool.h"

namespace osp {

using napi::Args;
using napi::Error;

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

}  // namespace osp
