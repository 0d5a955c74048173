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

namespace osp {
namespace {

struct Fail {
  std::string message;
};

struct Call {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  Call(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr); }

  napi_value at(size_t i) const {
    if (i >= argc) throw Fail{"missing argument " + std::to_string(i)};
    return argv[i];
  }
  bool present(size_t i) const {
    if (i >= argc) return false;
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    return t != napi_null && t != napi_undefined;
  }
  std::string str(size_t i) const {
    char buf[64];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, at(i), buf, sizeof(buf), &len) != napi_ok) throw Fail{"argument " + std::to_string(i) + ": expected a string"};
    return std::string(buf, len);
  }
  double num(size_t i) const {
    double v;
    if (napi_get_value_double(env, at(i), &v) != napi_ok) throw Fail{"argument " + std::to_string(i) + ": expected a number"};
    return v;
  }
  // A Float32Array and its length.
  float* f32(size_t i, const char* name, int64_t* length) const {
    bool is = false;
    napi_is_typedarray(env, at(i), &is);
    napi_typedarray_type type = napi_int8_array;
    size_t len = 0;
    void* data = nullptr;
    napi_value buf;
    size_t off;
    if (is) napi_get_typedarray_info(env, at(i), &type, &len, &data, &buf, &off);
    if (!is || type != napi_float32_array) throw Fail{std::string(name) + ": expected a Float32Array"};
    *length = static_cast<int64_t>(len);
    return static_cast<float*>(data);
  }
};

template <napi_value (*F)(const Call&)>
napi_value wrap(napi_env env, napi_callback_info info) {
  try {
    return F(Call(env, info));
  } catch (const Fail& e) {
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

napi_value setGemm(const Call& x) {
  const std::string kind = x.str(0);
  if (kind != "openblas" && kind != "portable") throw Fail{"setGemm: unknown GEMM '" + kind + "' (openblas or portable)"};
  if (kind == "openblas" && !gemmHasOpenBLAS()) throw Fail{"setGemm: this build has no OpenBLAS (it was built without cblas.h)"};
  if (x.present(1)) {
    const std::string isa = x.str(1);
    if (!gemmSetPortableIsa(isa)) throw Fail{"setGemm: instruction set '" + isa + "' is not available here (auto, avx2, generic)"};
  }
  gemmSetKind(kind == "openblas" ? GemmKind::kOpenBLAS : GemmKind::kPortable);
  return nullptr;
}

napi_value gemmKindJs(const Call& x) { return string(x.env, gemmKindName(gemmKind())); }

napi_value gemmKindsJs(const Call& x) {
  napi_value arr;
  napi_create_array(x.env, &arr);
  uint32_t i = 0;
  if (gemmHasOpenBLAS()) napi_set_element(x.env, arr, i++, string(x.env, "openblas"));
  napi_set_element(x.env, arr, i++, string(x.env, "portable"));
  return arr;
}

napi_value gemmIsaJs(const Call& x) { return string(x.env, gemmPortableIsa()); }

napi_value setGemmThreadMin(const Call& x) {
  const double v = x.num(0);
  if (!(v >= 0)) throw Fail{"setGemmThreadMin: expected a number >= 0"};
  gemmSetPortableThreadMin(static_cast<int64_t>(v));
  return nullptr;
}

napi_value gemmPortable(const Call& x) {
  const int64_t M = static_cast<int64_t>(x.num(3)), N = static_cast<int64_t>(x.num(4)), K = static_cast<int64_t>(x.num(5));
  const bool ta = x.num(6) != 0, tb = x.num(7) != 0;
  const int64_t lda = static_cast<int64_t>(x.num(8)), ldb = static_cast<int64_t>(x.num(9)), ldc = static_cast<int64_t>(x.num(10));
  const float alpha = static_cast<float>(x.num(11)), beta = static_cast<float>(x.num(12));
  const bool threaded = x.num(13) != 0;
  // op(a) is M x K: a is K x M when transposed; op(b) is K x N: b is N x K when transposed.
  const int64_t aRows = ta ? K : M, aCols = ta ? M : K, bRows = tb ? N : K, bCols = tb ? K : N;
  if (M < 0 || N < 0 || K < 0 || lda < std::max<int64_t>(1, aCols) || ldb < std::max<int64_t>(1, bCols) || ldc < std::max<int64_t>(1, N)) {
    throw Fail{"gemmPortable: bad sizes or leading dimensions"};
  }
  auto need = [](int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; };
  int64_t la, lb, lc;
  const float* a = x.f32(0, "a", &la);
  const float* b = x.f32(1, "b", &lb);
  float* c = x.f32(2, "c", &lc);
  if (la < need(aRows, aCols, lda) || lb < need(bRows, bCols, ldb) || lc < need(M, N, ldc)) {
    throw Fail{"gemmPortable: an operand is shorter than its sizes and leading dimension need"};
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
