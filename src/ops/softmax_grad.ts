/**
 * Softmax's gradient, dx = y (dy - sum(dy y)) over the softmax axis, as one kernel where a backend has
 * one (OspSoftmaxGrad {dy, y} -> dx, last axis only). tfjs defines this gradient with four ops (mul,
 * sum, mul, sub), each a full pass over the [B, H, T, T] attention probabilities. registerSoftmaxGradient
 * replaces tfjs's gradient for the Softmax kernel with the same formula that dispatches to the kernel
 * when the active backend registered it; elsewhere it runs tfjs's four ops, unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { KERNELS, hasKernel } from './dispatch.ts';

let registered = false;

/** Composite reference: what tfjs computes, and the oracle for kernels. */
export function softmaxGradReference(dy: tf.Tensor, y: tf.Tensor, dim = -1): tf.Tensor {
  return tf.tidy(() => {
    const dyTimesY = tf.mul(dy, y);
    return tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y));
  });
}

/** Installs the dispatching gradient for tfjs's Softmax kernel (idempotent). */
export function registerSoftmaxGradient(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient({
    kernelName: tf.Softmax,
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const y = saved[0]!;
      const { dim } = attrs as unknown as { dim: number };
      const last = dim === -1 || dim === y.rank - 1;
      const d = dy as tf.Tensor;
      if (last && hasKernel(KERNELS.softmaxGrad)) {
        return { logits: () => tf.engine().runKernel(KERNELS.softmaxGrad, { dy: d, y }, {}) as tf.Tensor };
      }
      return { logits: () => softmaxGradReference(d, y, dim) };
    },
  });
}
