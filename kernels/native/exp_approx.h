// osp-lab native kernel pack: expApprox, an inline float exponential that the compiler vectorises (no
// libm call) once the build passes -fno-trapping-math (binding.gyp; clang's default), for the fused
// kernels whose time an exp per element dominates (attention.cc, swiglu in fused.cc). Relative error
// <= 2 float ulps on [-87.3, 88.37] (test/backend/native.test.ts checks it against Math.exp); outside
// it saturates: e^-87.3 = 1.2e-38 below (not a subnormal or 0), e^88.37 = 2.4e38 above (not infinity,
// so 2^k stays a normal float); NaN stays NaN.
//
// e^x = 2^k e^r with k = round(x / ln 2) and r = x - k ln 2 (ln 2 in two parts, Cody and Waite, so r is
// exact to a float), |r| <= ln(2)/2; e^r by its Taylor polynomial of degree 7 (truncation below 1e-8
// relative), 2^k written into the exponent bits. round() is the add-and-subtract of 1.5 * 2^23, which is
// exact in round-to-nearest and vectorises on the baseline ISA (floor needs SSE4.1).
#pragma once

#include <cstdint>
#include <cstring>

namespace osp {

inline float expApprox(float x) {
  x = x < -87.3f ? -87.3f : x;  // NaN compares false both times and stays NaN
  x = x > 88.37f ? 88.37f : x;  // round(x / ln 2) <= 127
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
  const float t = x * 1.44269504088896341f + magic;
  const float k = t - magic;
  const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  const int32_t kb = tb - 0x4B400000;  // the bits of magic: what remains is k
  const int32_t sb = (kb + 127) << 23;
  float scale;
  std::memcpy(&scale, &sb, sizeof scale);
  return p * scale;
}

}  // namespace osp
