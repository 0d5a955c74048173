/**
 * osp-lab's fused kernels for tfjs-backend-webgpu, registered under the names of src/ops/dispatch.ts
 * (KERNELS) by `registerWebGPUKernels()` when the webgpu backend starts.
 *
 * The WGSL lives in kernels/wgsl/*.wgsl (the source of truth, read once at run time), except the
 * attention kernels for software adapters, generated per head dimension (attention_subgroup.ts). Each file is
 * the "user code" of one tfjs WebGPU program: tfjs prepends its prelude (the `result` output
 * buffer, one read-only storage buffer per name in `variableNames`, the `uniforms` struct with the
 * shapes plus the fields this file declares in `uniforms`, and the `_start` entry point that calls
 * `main(index)` with the flat global invocation index). program.ts prepends the few compile-time
 * constants a shader needs (workgroup size, mode flags) and folds them into `shaderKey`, the key
 * of tfjs's pipeline cache; sizes travel as uniforms, so one pipeline serves every shape.
 *
 * Every input named in `variableNames` is read by its shader: with layout 'auto' an unread binding
 * is dropped and tfjs would bind the wrong buffers. Intermediate buffers (rstd, partial sums, the
 * Newton-Schulz iterates) are released with backend.disposeData as soon as their consumer has been
 * recorded (tfjs defers the actual release until the queued commands have run).
 */
//
// This file holds the registration and the BatchMatMul replacement (which registration swaps in and
// out); the kernels live next to it: program.ts (the program builder and shared helpers), rms_norm.ts,
// cross_entropy.ts, adamw.ts, newton_schulz.ts, channel_moments.ts and attention.ts (softmax gradient,
// fused causal attention forward and backward; attention_subgroup.ts generates its software-adapter kernels).
import * as tf from '@tensorflow/tfjs';
import { hasKernel, KERNELS, setKernelDefault } from '../../ops/dispatch.ts';
import { registerSoftmaxGradient } from '../../ops/softmax_grad.ts';
import { adamwUpdate, adamwUpdateMulti } from './adamw.ts';
import { attentionSubgroupSize, causalAttention, causalAttentionGrad, setAttentionSubgroupSize, softmaxGrad } from './attention.ts';
import { channelMoments } from './channel_moments.ts';
import { crossEntropy, crossEntropyGrad } from './cross_entropy.ts';
import { newtonSchulz, NS_LANES, setDirectProducts, TILE } from './newton_schulz.ts';
import { i32, numel, program, type Backend, type KernelFuncArgs } from './program.ts';
import { rmsNorm, rmsNormGrad } from './rms_norm.ts';

export { rowLayout, wgslSource } from './program.ts';

/**
 * BatchMatMul for software adapters. On lavapipe tfjs's own BatchMatMul runs at ~2.5 GFLOP/s and
 * takes ~70% of a training step; batch_matmul.wgsl (ns_matmul's 8 x 8-per-lane tiling) is faster
 * there. On a hardware GPU tfjs's tuned matmul stays: nothing is replaced.
 *
 * registerWebGPUKernels({ softwareAdapter: true }) keeps tfjs's kernel config (tfjsBatchMatMul),
 * registers `batchMatMulSoftware` under KERNELS.batchMatMul ('OspBatchMatMul') and replaces tfjs's
 * 'BatchMatMul' on webgpu with `batchMatMulDispatch`, which calls the WGSL kernel while
 * hasKernel(KERNELS.batchMatMul) holds (so setKernelsEnabled(..., false) and withReferenceOps give
 * tfjs's own kernel back) and tfjs's otherwise. Cases the WGSL kernel does not cover go to tfjs's
 * kernel as well: a dtype other than float32, an empty output, inner sizes that differ (tfjs throws
 * its own error) and batch shapes whose broadcast is not max(batchA, batchB) elements (tfjs-webgpu
 * computes max(batchA, batchB) batches with index b % batchA, b % batchB; matching it exactly
 * means giving it the cases where that is not the broadcast).
 */
let tfjsBatchMatMul: tf.KernelConfig | undefined;

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

function tfjsMatMul(args: KernelFuncArgs): tf.TensorInfo {
  if (!tfjsBatchMatMul) throw new Error('BatchMatMul (webgpu): tfjs-backend-webgpu registered no BatchMatMul kernel');
  return tfjsBatchMatMul.kernelFunc(args) as tf.TensorInfo;
}

/** OspBatchMatMul: tfjs's BatchMatMul contract, computed by batch_matmul.wgsl where it applies. */
function batchMatMulSoftware(args: KernelFuncArgs): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || ra < 2 || rb < 2) return tfjsMatMul(args);
  const M = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = numel(outerA);
  const batchB = numel(outerB);
  const batches = Math.max(batchA, batchB);
  if (K !== Kb || batchA === 0 || batchB === 0 || M === 0 || N === 0) return tfjsMatMul(args);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return tfjsMatMul(args);
  }
  if (numel(outer) !== batches) return tfjsMatMul(args);
  const backend = args.backend as unknown as Backend;
  const outShape = [...outer, M, N];
  if (K === 0) {
    // An empty inner dimension: zeros (a program would have to bind the empty input buffers).
    return tf
      .getKernel('Fill', 'webgpu')!
      .kernelFunc({ inputs: {}, backend: args.backend, attrs: { shape: outShape, value: 0, dtype: 'float32' } }) as tf.TensorInfo;
  }
  const tilesM = Math.ceil(M / TILE);
  const tilesN = Math.ceil(N / TILE);
  const p = program({
    file: 'batch_matmul',
    outputShape: [batches, M, N],
    inputs: ['matA', 'matB'],
    workgroups: batches * tilesM * tilesN,
    workgroupSize: NS_LANES,
    consts: { TRANS_A: transposeA, TRANS_B: transposeB },
    uniforms: 'mmM : i32, mmN : i32, mmK : i32, tilesM : i32, tilesN : i32, batches : i32, batchA : i32, batchB : i32,',
  });
  // The program indexes flat buffers: the inputs go in as rank-3 views of the same data (no copy).
  const a3: tf.TensorInfo = { dataId: a.dataId, dtype: a.dtype, shape: transposeA ? [batchA, K, M] : [batchA, M, K] };
  const b3: tf.TensorInfo = { dataId: b.dataId, dtype: b.dtype, shape: transposeB ? [batchB, N, K] : [batchB, K, N] };
  const out = backend.runWebGPUProgram(p, [a3, b3], 'float32', [
    i32(M),
    i32(N),
    i32(K),
    i32(tilesM),
    i32(tilesN),
    i32(batches),
    i32(batchA),
    i32(batchB),
  ]);
  // Same data, the broadcast batch shape (what tfjs's kernel returns after its reshape).
  return { dataId: out.dataId, dtype: out.dtype, shape: outShape };
}

/** Registered as tfjs's 'BatchMatMul' on webgpu when the adapter is a software one. */
function batchMatMulDispatch(args: KernelFuncArgs): tf.TensorInfo {
  return hasKernel(KERNELS.batchMatMul) ? batchMatMulSoftware(args) : tfjsMatMul(args);
}

const KERNEL_FUNCS: Record<string, tf.KernelFunc> = {
  [KERNELS.rmsNorm]: rmsNorm as tf.KernelFunc,
  [KERNELS.rmsNormGrad]: rmsNormGrad as unknown as tf.KernelFunc,
  [KERNELS.crossEntropy]: crossEntropy as tf.KernelFunc,
  [KERNELS.crossEntropyGrad]: crossEntropyGrad as tf.KernelFunc,
  [KERNELS.adamwUpdate]: adamwUpdate as unknown as tf.KernelFunc,
  [KERNELS.adamwUpdateMulti]: adamwUpdateMulti as unknown as tf.KernelFunc,
  [KERNELS.newtonSchulz]: newtonSchulz as tf.KernelFunc,
  [KERNELS.channelMoments]: channelMoments as unknown as tf.KernelFunc,
  [KERNELS.softmaxGrad]: softmaxGrad as tf.KernelFunc,
  [KERNELS.causalAttention]: causalAttention as tf.KernelFunc,
  [KERNELS.causalAttentionGrad]: causalAttentionGrad as unknown as tf.KernelFunc,
};

/**
 * Registers osp-lab's WGSL kernels for the 'webgpu' backend (idempotent; called at every start), and
 * the Softmax gradient that dispatches to OspSoftmaxGrad (src/ops/softmax_grad.ts). On a software
 * adapter it also puts batch_matmul.wgsl behind tfjs's 'BatchMatMul'; on a hardware one it makes
 * sure tfjs's own BatchMatMul is in place.
 */
export function registerWebGPUKernels(opts: { softwareAdapter: boolean; subgroupSize?: number | undefined }): void {
  registerSoftmaxGradient();
  setDirectProducts(opts.softwareAdapter);
  setAttentionSubgroupSize(opts.softwareAdapter ? opts.subgroupSize : undefined);
  for (const [kernelName, kernelFunc] of Object.entries(KERNEL_FUNCS)) {
    if (tf.getKernel(kernelName, 'webgpu') === undefined) {
      tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });
    }
  }
  // On a software adapter the fused attention runs the generated subgroup kernels where the adapter has
  // them (lavapipe: forward + backward 4.5x its reference, a training step 1.17x, bench/RESULTS_webgpu.md);
  // without subgroups it would run the tile kernels, which made a lavapipe step no faster (0.96x) and take
  // up to about a minute per head dimension to compile, so there it starts switched off.
  // setKernelsEnabled([KERNELS.causalAttention], ...) wins either way.
  setKernelDefault('webgpu', KERNELS.causalAttention, !opts.softwareAdapter || attentionSubgroupSize() !== undefined);
  const current = tf.getKernel('BatchMatMul', 'webgpu');
  if (current && current.kernelFunc !== batchMatMulDispatch) tfjsBatchMatMul = current;
  const replaced = current?.kernelFunc === batchMatMulDispatch;
  if (opts.softwareAdapter && tfjsBatchMatMul) {
    if (!replaced) {
      tf.unregisterKernel('BatchMatMul', 'webgpu');
      tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'webgpu', kernelFunc: batchMatMulDispatch as tf.KernelFunc });
    }
    if (tf.getKernel(KERNELS.batchMatMul, 'webgpu') === undefined) {
      tf.registerKernel({ kernelName: KERNELS.batchMatMul, backendName: 'webgpu', kernelFunc: batchMatMulSoftware as tf.KernelFunc });
    }
  } else {
    if (replaced && tfjsBatchMatMul) {
      tf.unregisterKernel('BatchMatMul', 'webgpu');
      tf.registerKernel(tfjsBatchMatMul);
    }
    if (tf.getKernel(KERNELS.batchMatMul, 'webgpu') !== undefined) tf.unregisterKernel(KERNELS.batchMatMul, 'webgpu');
  }
}
