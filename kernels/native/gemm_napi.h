// osp-lab native kernel pack: the addon's exports for choosing the GEMM (gemm_napi.cc).
#pragma once

#include <node_api.h>

namespace osp {

// Adds setGemm, gemmKind, gemmKinds, gemmIsa, setGemmThreadMin and gemmPortable to `exports`.
void defineGemmExports(napi_env env, napi_value exports);

}  // namespace osp
