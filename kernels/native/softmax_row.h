// osp-lab native kernel pack: scaledSoftmaxRow, the one-row softmax shared by softmax (elementwise.cc)
// and crossEntropyGrad (fused.cc).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace osp {

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

}  // namespace osp
