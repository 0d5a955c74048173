// osp-lab native kernel pack: the kernels' entry points, which bindings.cc registers as the addon's exports.
//
// Every function takes typed arrays that JavaScript allocated (inputs and outputs) plus sizes, and
// writes its results in place: no allocation crosses the boundary, nothing is retained after a call.
// Shapes, broadcasting and dtype checks happen in TypeScript (src/backend/native/); the kernels trust
// their arguments except for buffer lengths, which every entry point checks against the sizes it is
// given (a wrong length is a bug in the caller and throws instead of reading out of bounds).
//
// Matrix products go to gemm.h: OpenBLAS (with its own threads) when the build found it, or the
// portable SGEMM of gemm.cc (on the addon's pool, pool.h), chosen at run time. Everything else is a plain
// loop the compiler vectorises; the loops that matter are split over the pool.
//
// Each entry point reads its arguments with napi_args.h and throws napi::Error for a bad one; its comment
// (where it is defined) gives the argument order that src/backend/native/addon.ts declares.
#pragma once

#include "napi_args.h"

namespace osp {

// gemm_dispatch.cc: batched matrix products.
void gemm(const napi::Args& x);
void setGemmBatchParallel(const napi::Args& x);

// elementwise.cc: elementwise ops, reductions over the innermost axis, softmax.
void biasAct(const napi::Args& x);
void binary(const napi::Args& x);
void unary(const napi::Args& x);
void reduce(const napi::Args& x);
void softmax(const napi::Args& x);
void softmaxGrad(const napi::Args& x);

// layout.cc: transposes, strided copies, gathers and scatters.
void transpose(const napi::Args& x);
void copyRows(const napi::Args& x);
void gather(const napi::Args& x);
void segmentSum(const napi::Args& x);

// fused.cc: the fused ops of src/ops (contracts in src/ops/dispatch.ts).
void rmsNorm(const napi::Args& a);
void rmsNormGrad(const napi::Args& a);
void crossEntropy(const napi::Args& a);
void crossEntropyGrad(const napi::Args& a);
void adamw(const napi::Args& a);
void newtonSchulz(const napi::Args& x);
void channelMoments(const napi::Args& a);
void swiglu(const napi::Args& a);
void swigluGrad(const napi::Args& a);
void expApproxArray(const napi::Args& a);
void rope(const napi::Args& a);
void ropeGrad(const napi::Args& a);

// attention.cc: causal attention with grouped key/value heads, forward and backward.
void causalAttention(const napi::Args& a);
void causalAttentionGrad(const napi::Args& a);

}  // namespace osp
