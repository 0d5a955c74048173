/**
 * Rotary position embedding in Hugging Face's rotate_half convention, on the projections' layout:
 *
 *   y = x cos + rotate_half(x) sin,  rotate_half(x) = [-x2, x1]   (x1, x2: the two halves of a head)
 *   dx = dy cos + rotate_half^T(dy sin),  rotate_half^T(z) = [z2, -z1]
 *
 * x [B, T, heads, hd]; cos, sin [T, 1, hd] (src/model/layers.ts ropeTables, reshaped), constants: no
 * gradient flows into them. Where the backend registered OspRope (native) one pass computes y and
 * OspRopeGrad dx in one more, against seven tfjs ops forward (split, neg, concat, two products, sum)
 * and more backward. Elsewhere, and under withReferenceOps, the reference below runs.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

/** Reference in plain tfjs ops (the model's RoPE before the kernel, numerically the same); differentiable twice. */
export function ropeReference(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const [x1, x2] = tf.split(x, 2, 3);
    const rotated = tf.concat([tf.neg(x2!), x1!], 3);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  });
}

/**
 * @param x [B, T, heads, hd], hd even
 * @param cos [T, 1, hd]
 * @param sin [T, 1, hd]
 * @example const q = rope(tf.reshape(linear(x, wq), [B, T, H, hd]), cos, sin);
 */
export function rope(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  const [, T, , hd] = x.shape;
  for (const [name, t] of [
    ['cos', cos],
    ['sin', sin],
  ] as const) {
    if (t.rank !== 3 || t.shape[0] !== T || t.shape[1] !== 1 || t.shape[2] !== hd || hd % 2 !== 0) {
      throw new ShapeError(`rope: ${name} must be [${T}, 1, ${hd}] (an even head dimension) for x [${x.shape}], got [${t.shape}]`);
    }
  }
  if (!hasKernel(KERNELS.rope) || !hasKernel(KERNELS.ropeGrad)) return ropeReference(x, cos, sin);
  // The tables are closed over, not inputs: constants, no gradient.
  const fused = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    const value = tf.engine().runKernel(KERNELS.rope, { x: xi, cos, sin }, {}) as tf.Tensor;
    const gradFunc = (dy: tf.Tensor) => [tf.engine().runKernel(KERNELS.ropeGrad, { dy, cos, sin }, {}) as tf.Tensor];
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor>>[0]);
  return fused(x) as tf.Tensor4D;
}
