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
 * @param x [..., d]
 * @param weight [d] or [1]
 * @example rmsNorm(h, params.get('model.norm.weight'), 1e-6)
 */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor, eps: number): T {
  const d = x.shape[x.shape.length - 1];
  if (weight.rank !== 1 || (weight.shape[0] !== d && weight.shape[0] !== 1)) {
    throw new ShapeError(`rmsNorm: weight must be [${d}] or [1] for input [${x.shape}], got [${weight.shape}]`);
  }
  if (hasKernel(KERNELS.rmsNorm)) {
    return tf.engine().runKernel(KERNELS.rmsNorm, { x, weight }, { eps }) as T;
  }
  return rmsNormReference(x, weight, eps);
}
