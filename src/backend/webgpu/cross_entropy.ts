/**
 * The cross-entropy kernels for webgpu: crossEntropy (OspCrossEntropy, per-row losses) and
 * crossEntropyGrad (OspCrossEntropyGrad).
 */
import type * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { checkFloat, i32, rowProgram, show, type Backend, type KernelFuncArgs } from './program.ts';

function crossEntropyShapes(kernel: string, logits: tf.TensorInfo, targets: tf.TensorInfo) {
  if (logits.shape.length !== 2) throw new ShapeError(`${kernel} (webgpu): logits must be [N, V], got ${show(logits.shape)}`);
  const [n, v] = logits.shape as [number, number];
  if (targets.shape.length !== 1 || targets.shape[0] !== n) {
    throw new ShapeError(`${kernel} (webgpu): targets must be [${n}] for logits ${show(logits.shape)}, got ${show(targets.shape)}`);
  }
  if (targets.dtype !== 'int32') throw new ShapeError(`${kernel} (webgpu): targets must be int32, got ${targets.dtype}`);
  checkFloat(kernel, 'logits', logits);
  return { n, v };
}

export function crossEntropy({ inputs, backend }: KernelFuncArgs): tf.TensorInfo {
  const { logits, targets } = inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const { n, v } = crossEntropyShapes(KERNELS.crossEntropy, logits, targets);
  const p = rowProgram('cross_entropy', [n], ['logits', 'targets'], n, v, 'rows : i32, v : i32,', ['online_lse']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [logits, targets], 'float32', [i32(n), i32(v)]);
}

export function crossEntropyGrad({ inputs, backend }: KernelFuncArgs): tf.TensorInfo {
  const { dloss, logits, targets } = inputs as { dloss: tf.TensorInfo; logits: tf.TensorInfo; targets: tf.TensorInfo };
  const { n, v } = crossEntropyShapes(KERNELS.crossEntropyGrad, logits, targets);
  if (dloss.shape.length !== 1 || dloss.shape[0] !== n) {
    throw new ShapeError(`${KERNELS.crossEntropyGrad} (webgpu): dloss must be [${n}], got ${show(dloss.shape)}`);
  }
  checkFloat(KERNELS.crossEntropyGrad, 'dloss', dloss);
  const p = rowProgram('cross_entropy_grad', [n, v], ['dloss', 'logits', 'targets'], n, v, 'rows : i32, v : i32,', ['online_lse']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [dloss, logits, targets], 'float32', [i32(n), i32(v)]);
}
