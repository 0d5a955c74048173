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
  return tf.tidy(() => tf.mean(crossEntropyRowsReference(logits, targets)) as tf.Scalar);
}

/** Per-row losses logsumexp(logits_i) - logits_i[target_i], [N]. */
export function crossEntropyRowsReference(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits, -1);
    return tf.neg(tf.sum(tf.mul(logp, tf.oneHot(targets, logits.shape[1])), -1)) as tf.Tensor1D;
  });
}

/** Closed-form backward of the per-row losses: dlogits_i = dloss_i (softmax(logits_i) - onehot(t_i)). */
export function crossEntropyBackwardReference(dloss: tf.Tensor1D, logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(tf.softmax(logits, -1), tf.oneHot(targets, logits.shape[1])), tf.expandDims(dloss, 1)) as tf.Tensor2D);
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
  if (!hasKernel(KERNELS.crossEntropy)) return crossEntropyReference(logits, targets);
  // The targets are not differentiated; they are saved with the logits so that the backward pass has
  // them even when the caller's tensor is disposed before gradients run.
  const rows = tf.customGrad(((l: tf.Tensor, save: tf.GradSaveFunc) => {
    save([l, targets]);
    const value = tf.engine().runKernel(KERNELS.crossEntropy, { logits: l, targets }, {}) as tf.Tensor1D;
    const gradFunc = (dloss: tf.Tensor, saved: tf.Tensor[]) => {
      const [ls, ts] = saved as [tf.Tensor2D, tf.Tensor1D];
      if (hasKernel(KERNELS.crossEntropyGrad)) {
        return tf.engine().runKernel(KERNELS.crossEntropyGrad, { dloss, logits: ls, targets: ts }, {}) as tf.Tensor;
      }
      return crossEntropyBackwardReference(dloss as tf.Tensor1D, ls, ts);
    };
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor1D>>[0]);
  return tf.tidy(() => tf.mean(rows(logits)) as tf.Scalar);
}
