// osp-lab native kernel pack: N-API exports that choose the GEMM and call the portable one directly.
//
//   setGemm(kind, isa?)     kind "openblas" | "portable"; isa (the portable micro-kernel) "auto" | "avx2" | "generic"
//   gemmKind()              the GEMM in use: "openblas" | "portable"
//   gemmKinds()             the GEMMs this build has: ["openblas", "portable"] or ["portable"]
//   gemmIsa()               the portable micro-kernel's instruction set here: "AVX2" | "generic"
//   setGemmThreadMin(mnk)   smallest M*N*K the portable GEMM splits over the pool (a tuning knob)
//   gemmPortable(a, b, c, M, N, K, transA, transB, lda, ldb, ldc, alpha, beta, threaded)
//                           row-major c = alpha op(a) op(b) + beta c with the portable GEMM, whatever is selected
//
// Errors throw JavaScript errors with code OSP_NATIVE, as the rest of the addon does.

#include "gemm_napi.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "gemm.h"
#include "napi_args.h"

namespace osp {
namespace {

using napi::Args;
using napi::Error;

template <napi_value (*F)(const Args&)>
napi_value wrap(napi_env env, napi_callback_info info) {
  try {
    return F(Args(env, info));
  } catch (const Error& e) {
    napi_throw_error(env, "OSP_NATIVE", e.message.c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, "OSP_NATIVE", e.what());
  }
  return nullptr;
}

napi_value string(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

napi_value setGemm(const Args& x) {
  const std::string kind = x.str(0);
  if (kind != "openblas" && kind != "portable") throw Error{"setGemm: unknown GEMM '" + kind + "' (openblas or portable)"};
  if (kind == "openblas" && !gemmHasOpenBLAS()) throw Error{"setGemm: this build has no OpenBLAS (it was built without cblas.h)"};
  if (x.present(1)) {
    const std::string isa = x.str(1);
    if (!gemmSetPortableIsa(isa)) throw Error{"setGemm: instruction set '" + isa + "' is not available here (auto, avx2, generic)"};
  }
  gemmSetKind(kind == "openblas" ? GemmKind::kOpenBLAS : GemmKind::kPortable);
  return nullptr;
}

napi_value gemmKindJs(const Args& x) { return string(x.env, gemmKindName(gemmKind())); }

napi_value gemmKindsJs(const Args& x) {
  napi_value arr;
  napi_create_array(x.env, &arr);
  uint32_t i = 0;
  if (gemmHasOpenBLAS()) napi_set_element(x.env, arr, i++, string(x.env, "openblas"));
  napi_set_element(x.env, arr, i++, string(x.env, "portable"));
  return arr;
}

napi_value gemmIsaJs(const Args& x) { return string(x.env, gemmPortableIsa()); }

napi_value setGemmThreadMin(const Args& x) {
  const double v = x.f64(0);
  if (!(v >= 0)) throw Error{"setGemmThreadMin: expected a number >= 0"};
  gemmSetPortableThreadMin(static_cast<int64_t>(v));
  return nullptr;
}

napi_value gemmPortable(const Args& x) {
  const int64_t M = static_cast<int64_t>(x.f64(3)), N = static_cast<int64_t>(x.f64(4)), K = static_cast<int64_t>(x.f64(5));
  const bool ta = x.f64(6) != 0, tb = x.f64(7) != 0;
  const int64_t lda = static_cast<int64_t>(x.f64(8)), ldb = static_cast<int64_t>(x.f64(9)), ldc = static_cast<int64_t>(x.f64(10));
  const float alpha = static_cast<float>(x.f64(11)), beta = static_cast<float>(x.f64(12));
  const bool threaded = x.f64(13) != 0;
  // op(a) is M x K: a is K x M when transposed; op(b) is K x N: b is N x K when transposed.
  const int64_t aRows = ta ? K : M, aCols = ta ? M : K, bRows = tb ? N : K, bCols = tb ? K : N;
  if (M < 0 || N < 0 || K < 0 || lda < std::max<int64_t>(1, aCols) || ldb < std::max<int64_t>(1, bCols) || ldc < std::max<int64_t>(1, N)) {
    throw Error{"gemmPortable: bad sizes or leading dimensions"};
  }
  auto need = [](int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; };
  int64_t la, lb, lc;
  const float* a = x.f32any(0, "a", &la);
  const float* b = x.f32any(1, "b", &lb);
  float* c = x.f32any(2, "c", &lc);
  if (la < need(aRows, aCols, lda) || lb < need(bRows, bCols, ldb) || lc < need(M, N, ldc)) {
    throw Error{"gemmPortable: an operand is shorter than its sizes and leading dimension need"};
  }
  sgemmPortable(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, threaded);
  return nullptr;
}

}  // namespace

void defineGemmExports(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"setGemm", nullptr, wrap<setGemm>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmKind", nullptr, wrap<gemmKindJs>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmKinds", nullptr, wrap<gemmKindsJs>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmIsa", nullptr, wrap<gemmIsaJs>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setGemmThreadMin", nullptr, wrap<setGemmThreadMin>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmPortable", nullptr, wrap<gemmPortable>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace osp
