/**
 * SwiGLU's gating, silu(gate) * up, elementwise over the MLP's two projections (gate, up [N, I]):
 *
 *   h = g s u,  s = sigmoid(g);   dgate = dh u s (1 + g (1 - s)),  dup = dh g s
 *
 * Where the backend registered OspSwiGLU (native) one pass computes h, and OspSwiGLUGrad both
 * gradients in one more: tfjs's ops make three passes forward and about eight backward over [N, I].
 * Elsewhere, and under withReferenceOps, the reference below runs (differentiable twice).
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

/** Reference in plain tfjs ops (the model's SwiGLU before the kernel, numerically the same): silu(gate) * up. */
export function swigluReference<T extends tf.Tensor>(gate: T, up: T): T {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
}

/** Closed-form backward in plain tfjs ops (when a backend has the forward kernel but not the backward one). */
export function swigluBackwardReference(dh: tf.Tensor, gate: tf.Tensor, up: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const s = tf.sigmoid(gate);
    const dgate = tf.mul(tf.mul(tf.mul(dh, up), s), tf.add(1, tf.mul(gate, tf.sub(1, s))));
    const dup = tf.mul(dh, tf.mul(gate, s));
    return [dgate, dup];
  });
}

/**
 * @param gate the gate projection's output, any shape
 * @param up the up projection's output, the same shape
 * @example const h = swigluGate(linear(x, wGate), linear(x, wUp)); // silu(gate) * up
 */
export function swigluGate<T extends tf.Tensor>(gate: T, up: T): T {
  if (!tf.util.arraysEqual(gate.shape, up.shape)) {
    throw new ShapeError(`swigluGate: gate [${gate.shape}] and up [${up.shape}] must have the same shape`);
  }
  if (!hasKernel(KERNELS.swiglu)) return swigluReference(gate, up);
  const fused = tf.customGrad(((g: tf.Tensor, u: tf.Tensor, save: tf.GradSaveFunc) => {
    save([g, u]);
    const value = tf.engine().runKernel(KERNELS.swiglu, { gate: g, up: u }, {}) as tf.Tensor;
    const gradFunc = (dh: tf.Tensor, saved: tf.Tensor[]) => {
      const [gs, us] = saved as [tf.Tensor, tf.Tensor];
      if (hasKernel(KERNELS.swigluGrad)) return tf.engine().runKernel(KERNELS.swigluGrad, { dh, gate: gs, up: us }, {}) as tf.Tensor[];
      return swigluBackwardReference(dh, gs, us);
    };
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor>>[0]);
  return fused(gate, up) as T;
}
