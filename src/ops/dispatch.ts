/**
 * How a fused op finds a kernel. Each op in src/ops has one reference implementation built from
 * plain tfjs ops (differentiable, and the oracle in tests). When the active backend has registered a
 * kernel under the op's name (tf.registerKernel, done by src/backend/<backend>/ at start-up), the op
 * runs that instead. Kernel names and their contracts live here, in one place:
 *
 *   OspRmsNorm           {x [..., d], weight [d]|[1]}, {eps}          -> y [..., d]
 *   OspRmsNormGrad       {dy, x, weight}, {eps}                       -> [dx [..., d], dweight like weight]
 *   OspCrossEntropy      {logits [N, V], targets int32 [N]}, {}       -> loss per row [N]
 *   OspCrossEntropyGrad  {dloss [N], logits, targets}, {}             -> dlogits [N, V]
 *   OspAdamWUpdate       {param, grad, expAvg, expAvgSq} (one shape),
 *                        {lr, beta1, beta2, eps, decay, bc1, bc2Sqrt} -> [param', expAvg', expAvgSq']
 *   OspAdamWUpdateMulti  {param<i>, grad<i>, expAvg<i>, expAvgSq<i>} for i = 0..n-1 (each i one shape),
 *                        {slots: OspAdamWUpdate's attrs, one per i} -> [] (in place: writes param<i>,
 *                        expAvg<i>, expAvgSq<i>, which the caller makes sole owners of their buffers)
 *   OspNewtonSchulz      {x [m, n]}, {steps, a[], b[], c[], normScale, normEps} -> [m, n]
 *   OspChannelMoments    {x [N, d]}, {}                               -> [token [N, 4], channel [d, 4]]
 *   OspSoftmaxGrad       {dy, y} (softmax over the last axis), {}     -> dx = y (dy - sum(dy y, last axis))
 *   OspCausalAttention   {q [B, T, H, hd], k, v [B, T, Hkv, hd]}, {scale}
 *                        -> [B*T, H*hd + H]: per token every head's output, then every head's
 *                           log-sum-exp of its scaled scores (the backward's saved statistic)
 *   OspCausalAttentionGrad {dy [B, T, H, hd], q, k, v, fwd (the forward's result)}, {scale}
 *                        -> [dq like q, dk like k, dv like v]
 *   OspSwiGLU            {gate, up} (one shape), {}                   -> silu(gate) * up
 *   OspSwiGLUGrad        {dh, gate, up}, {}                           -> [dgate, dup]
 *   OspRope              {x [B, T, heads, hd], cos, sin [T, 1, hd]}, {} -> x cos + rotate_half(x) sin
 *   OspRopeGrad          {dy [B, T, heads, hd], cos, sin}, {}         -> dx = dy cos + rotate_half^T(dy sin)
 *   OspBatchMatMul       {a, b}, {transposeA, transposeB}             -> tfjs's BatchMatMul, same contract
 *
 * OspBatchMatMul is not an op of src/ops: it is a replacement for tfjs's own BatchMatMul kernel,
 * registered only on the webgpu backend with a software adapter (lavapipe), where tfjs's 'BatchMatMul'
 * dispatches to it while it is enabled (src/backend/webgpu/kernels.ts). It is listed here so that
 * setKernelsEnabled('all' | [KERNELS.batchMatMul], false) switches it off for A/B benchmarks.
 *
 * Gradients are defined once per op (src/ops/*.ts, with tf.customGrad): the backward kernel when the
 * backend has one, else the op's closed-form backward in plain tfjs ops. Attention has no closed form
 * there: it takes its fused path only when the backend has both OspCausalAttention and its Grad.
 */
import * as tf from '@tensorflow/tfjs';

/** Names of the fused kernels a backend may register. */
export const KERNELS = {
  rmsNorm: 'OspRmsNorm',
  rmsNormGrad: 'OspRmsNormGrad',
  crossEntropy: 'OspCrossEntropy',
  crossEntropyGrad: 'OspCrossEntropyGrad',
  adamwUpdate: 'OspAdamWUpdate',
  adamwUpdateMulti: 'OspAdamWUpdateMulti',
  newtonSchulz: 'OspNewtonSchulz',
  channelMoments: 'OspChannelMoments',
  softmaxGrad: 'OspSoftmaxGrad',
  causalAttention: 'OspCausalAttention',
  causalAttentionGrad: 'OspCausalAttentionGrad',
  swiglu: 'OspSwiGLU',
  swigluGrad: 'OspSwiGLUGrad',
  rope: 'OspRope',
  ropeGrad: 'OspRopeGrad',
  batchMatMul: 'OspBatchMatMul',
} as const;
export type KernelName = (typeof KERNELS)[keyof typeof KERNELS];

let referenceDepth = 0;
/** Kernels disabled by name (benchmarks: fused vs unfused on the same backend). */
const disabled = new Set<string>();
/** Kernels named in a setKernelsEnabled call: a backend's default no longer applies to them. */
const chosen = new Set<string>();
/** Per backend, the kernels it starts switched off (setKernelDefault). */
const offByDefault = new Map<string, Set<string>>();

/** True when the active backend registered a kernel for this fused op (and it is not switched off). */
export function hasKernel(name: KernelName): boolean {
  if (referenceDepth > 0 || disabled.has(name)) return false;
  const backend = tf.getBackend();
  if (!chosen.has(name) && offByDefault.get(backend)?.has(name)) return false;
  return tf.getKernel(name, backend) !== undefined;
}

/**
 * Runs fn with every op on its plain-tfjs reference path, gradients included when fn computes them.
 * Used where tfjs must differentiate twice (exact Hessian-vector products): a fused kernel's backward
 * is not itself differentiable.
 */
export function withReferenceOps<T>(fn: () => T): T {
  referenceDepth++;
  try {
    return fn();
  } finally {
    referenceDepth--;
  }
}

/**
 * Switches fused kernels off (or back on) for this process, by name; `'all'` means every one.
 * For benchmarks and A/B checks: the experiment itself is the same either way.
 */
export function setKernelsEnabled(names: readonly KernelName[] | 'all', enabled: boolean): void {
  for (const n of names === 'all' ? Object.values(KERNELS) : names) {
    chosen.add(n);
    if (enabled) disabled.delete(n);
    else disabled.add(n);
  }
}

/**
 * A backend's default for one of its kernels (set when the backend starts), which applies on that
 * backend only, until setKernelsEnabled names the kernel: webgpu starts its attention kernels switched
 * off on a software adapter, and native keeps its own.
 */
export function setKernelDefault(backend: string, name: KernelName, enabled: boolean): void {
  let off = offByDefault.get(backend);
  if (!off) offByDefault.set(backend, (off = new Set()));
  if (enabled) off.delete(name);
  else off.add(name);
}
