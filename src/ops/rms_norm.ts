/**
 * RMSNorm and Single-Scale RMSNorm: y = w * x / sqrt(mean(x^2, last axis) + eps).
 * w has shape [d] (RMSNorm) or [1] (SSNorm); the same op serves both.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

/** Reference implementation in plain tfjs ops: differentiable, and the oracle for kernels. */
export function rmsNormReference<T extends tf.Tensor>(x: T, weight: tf.Tensor, eps: number): T {
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight) as T;
  });
}

/**
 * Closed-form backward in plain tfjs ops, used when a backend has the forward kernel but not the
 * backward one. With r = 1/sqrt(mean(x^2) + eps), xh = x r and g = dy w:
 *   dx = r (g - xh mean(g xh)),   dw = sum over rows of dy xh (summed over channels too for w [1]).
 */
export function rmsNormBackwardReference(dy: tf.Tensor, x: tf.Tensor, weight: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1]!;
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps));
    const xh = tf.mul(x, r);
    const g = tf.mul(dy, weight);
    const dx = tf.mul(r, tf.sub(g, tf.mul(xh, tf.mean(tf.mul(g, xh), -1, true))));
    const prod = tf.reshape(tf.mul(dy, xh), [-1, d]);
    const dw = weight.shape[0] === 1 ? tf.reshape(tf.sum(prod), [1]) : tf.sum(prod, 0);
    return [dx, dw];
  });
}

/**
 * @param x [..., d]
 * @param weight [d] or [1]
 * @example rmsNorm(h, params.get('model.norm.weight'), 1e-6)
 */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor, eps: number): T {
  const d = x.shape[x.shape.length - 1];
  if (weight.rank !== 1 || (weight.shape[0] !== d && weight.shape[0] !== 1)) {
    throw new ShapeError(`rmsNorm: weight must be [${d}] or [1] for input [${x.shape}], got [${weight.shape}]`);
  }
  if (!hasKernel(KERNELS.rmsNorm)) return rmsNormReference(x, weight, eps);
  const fused = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi, wi]);
    const value = tf.engine().runKernel(KERNELS.rmsNorm, { x: xi, weight: wi }, { eps }) as tf.Tensor;
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
      if (hasKernel(KERNELS.rmsNormGrad)) {
        return tf.engine().runKernel(KERNELS.rmsNormGrad, { dy, x: xs, weight: ws }, { eps }) as tf.Tensor[];
      }
      return rmsNormBackwardReference(dy, xs, ws, eps);
    };
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor>>[0]);
  return fused(x, weight) as T;
}
