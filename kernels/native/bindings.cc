// osp-lab native kernel pack: the addon's module: NAPI_MODULE_INIT and its table of exports.
//
// The kernels (kernels.h: gemm_dispatch.cc, elementwise.cc, layout.cc, fused.cc, attention.cc) are functions of Args;
// `wrap` turns each into an N-API callback that turns a thrown error into a JavaScript error with code
// OSP_NATIVE. This file also holds the thread settings (setThreads, setPoolThreads) and the reports
// (info, threads). gemm_napi.cc adds the exports that choose the GEMM.

#include <node_api.h>

#include <exception>
#include <functional>
#include <string>

#include "gemm.h"
#include "gemm_napi.h"
#include "kernels.h"
#include "napi_args.h"
#include "pool.h"

namespace osp {
namespace {

using napi::Args;
using napi::Error;

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
}  // namespace osp

NAPI_MODULE_INIT() {
  using namespace osp;  // the kernels (kernels.h), wrap, the settings above and pool()
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
      {"swiglu", nullptr, wrap<swiglu>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"swigluGrad", nullptr, wrap<swigluGrad>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"expApprox", nullptr, wrap<expApproxArray>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rope", nullptr, wrap<rope>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ropeGrad", nullptr, wrap<ropeGrad>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"causalAttention", nullptr, wrap<causalAttention>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"causalAttentionGrad", nullptr, wrap<causalAttentionGrad>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, wrap<setThreads>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setPoolThreads", nullptr, wrap<setPoolThreads>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"info", nullptr, info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"threads", nullptr, threads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  osp::defineGemmExports(env, exports);  // GEMM selection and the portable GEMM itself (gemm_napi.cc)
  return exports;
}
