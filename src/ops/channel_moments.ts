/**
 * Raw power sums of a 2-D activation matrix along both axes: for x [N, d], per row (token) and per
 * column (channel) the sums of x, x^2, x^3 and x^4. These four sums are all the device reductions the
 * outlier statistics (src/metrics/outliers.ts) need; everything after them runs in float64 on the host.
 * The sums are not mean-centred: the OSP kurtosis estimator uses the raw 4th moment, and the host derives
 * centred quantities from the raw sums in float64.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

/** Power sums of x [N, d]: column k holds the sums of x^(k+1). */
export interface ChannelMoments {
  /** [N, 4]: per-row sums of x, x^2, x^3, x^4 (over the d channels). */
  token: tf.Tensor2D;
  /** [d, 4]: per-column sums of x, x^2, x^3, x^4 (over the N tokens). */
  channel: tf.Tensor2D;
}

/**
 * Reference implementation in plain tfjs ops, and the oracle for kernels. The powers are stacked on a
 * trailing axis so that each direction is one reduction (two sum kernels instead of eight).
 */
export function channelMomentsReference(x: tf.Tensor2D): ChannelMoments {
  return tf.tidy(() => {
    const x2 = tf.square(x);
    const powers = tf.stack([x, x2, tf.mul(x2, x), tf.square(x2)], 2); // [N, d, 4]
    return {
      token: tf.sum(powers, 1) as tf.Tensor2D,
      channel: tf.sum(powers, 0) as tf.Tensor2D,
    };
  });
}

/**
 * Per-token and per-channel sums of x, x^2, x^3, x^4. Not differentiable: it serves monitoring only.
 *
 * @param x [N, d] float32 (flatten [B, T, d] taps to [B*T, d] first)
 * @example
 *   const { token, channel } = channelMoments(h.reshape([-1, d]) as tf.Tensor2D);
 *   const sums = await token.data(); // sums[4*t + 3] = sum_i x_ti^4
 *   tf.dispose([token, channel]);
 */
export function channelMoments(x: tf.Tensor2D): ChannelMoments {
  if (x.rank !== 2) {
    throw new ShapeError(`channelMoments: x must be 2-D [N, d], got shape [${x.shape}]`);
  }
  if (x.dtype !== 'float32') {
    throw new ShapeError(`channelMoments: x must be float32, got ${x.dtype}`);
  }
  if (x.shape[0] < 1 || x.shape[1] < 1) {
    throw new ShapeError(`channelMoments: x must have at least one row and one column, got [${x.shape}]`);
  }
  if (hasKernel(KERNELS.channelMoments)) {
    // A kernel returns its two outputs in the order of ChannelMoments: [token, channel].
    const [token, channel] = tf.engine().runKernel(KERNELS.channelMoments, { x }, {}) as tf.Tensor2D[];
    return { token: token!, channel: channel! };
  }
  return channelMomentsReference(x);
}
