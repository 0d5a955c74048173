/**
 * How a fused op finds a kernel. Each op in src/ops has one reference implementation built from
 * plain tfjs ops (differentiable, and the oracle in tests). When the active backend has registered a
 * kernel under the op's name (tf.registerKernel, done by src/backend/<backend>/ at start-up), the op
 * runs that instead. Kernel names live here, in one place.
 */
import * as tf from '@tensorflow/tfjs';

/** Names of the fused kernels a backend may register. */
export const KERNELS = {
  rmsNorm: 'OspRmsNorm',
  crossEntropy: 'OspCrossEntropy',
  adamwUpdate: 'OspAdamWUpdate',
  newtonSchulz: 'OspNewtonSchulz',
  channelMoments: 'OspChannelMoments',
} as const;
export type KernelName = (typeof KERNELS)[keyof typeof KERNELS];

/** True when the active backend registered a kernel for this fused op. */
export function hasKernel(name: KernelName): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}
