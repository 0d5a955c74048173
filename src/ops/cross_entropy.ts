/**
 * Softmax cross-entropy against integer targets, averaged over rows: the language-model loss.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

/**
 * Reference: mean_i (logsumexp(logits_i) - logits_i[target_i]). The one-hot mask is the simplest
 * formulation every backend differentiates (gather's gradient is missing on some); a fused kernel
 * avoids materialising it.
 */
export function crossEntropyReference(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits, -1);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, logits.shape[1])), -1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

/**
 * @param logits [N, V] float32
 * @param targets [N] int32 in [0, V)
 * @returns the mean loss in nats (a scalar)
 */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  if (logits.rank !== 2 || targets.rank !== 1 || targets.shape[0] !== logits.shape[0] || targets.dtype !== 'int32') {
    throw new ShapeError(
      `crossEntropy: expected logits [N, V] and int32 targets [N], got [${logits.shape}] and ${targets.dtype} [${targets.shape}]`,
    );
  }
  if (hasKernel(KERNELS.crossEntropy)) {
    return tf.engine().runKernel(KERNELS.crossEntropy, { logits, targets }, {}) as tf.Scalar;
  }
  return crossEntropyReference(logits, targets);
}
