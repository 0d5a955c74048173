/**
 * The RMSNorm kernels for webgpu: rmsNorm (OspRmsNorm) and rmsNormGrad (OspRmsNormGrad: dx, and dw per
 * channel or summed for a single scale).
 */
import type * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import {
  checkFloat,
  COLS,
  f32,
  i32,
  numel,
  program,
  rowProgram,
  show,
  SLICES,
  sumAll,
  type Backend,
  type KernelFuncArgs,
} from './program.ts';

function rmsNormShapes(kernel: string, x: tf.TensorInfo, weight: tf.TensorInfo) {
  if (x.shape.length < 1) throw new ShapeError(`${kernel} (webgpu): x must have at least one axis, got ${show(x.shape)}`);
  const d = x.shape[x.shape.length - 1]!;
  if (weight.shape.length !== 1 || (weight.shape[0] !== d && weight.shape[0] !== 1)) {
    throw new ShapeError(`${kernel} (webgpu): weight must be [${d}] or [1] for x ${show(x.shape)}, got ${show(weight.shape)}`);
  }
  checkFloat(kernel, 'x', x);
  checkFloat(kernel, 'weight', weight);
  const rows = d === 0 ? 0 : numel(x.shape) / d;
  // weight [1] with d > 1 is the single scale: every channel reads element 0.
  const wStride = weight.shape[0] === d ? 1 : 0;
  return { d, rows, wStride };
}

export function rmsNorm({ inputs, backend, attrs }: KernelFuncArgs): tf.TensorInfo {
  const { x, weight } = inputs as { x: tf.TensorInfo; weight: tf.TensorInfo };
  const { eps } = attrs as unknown as { eps: number };
  const { d, rows, wStride } = rmsNormShapes(KERNELS.rmsNorm, x, weight);
  const p = rowProgram('rms_norm', [...x.shape], ['x', 'weight'], rows, d, 'rows : i32, d : i32, eps : f32, wStride : i32,', ['row_sum']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [x, weight], 'float32', [i32(rows), i32(d), f32(eps), i32(wStride)]);
}

export function rmsNormGrad({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = b as unknown as Backend;
  const { dy, x, weight } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; weight: tf.TensorInfo };
  const { eps } = attrs as unknown as { eps: number };
  const { d, rows, wStride } = rmsNormShapes(KERNELS.rmsNormGrad, x, weight);
  checkFloat(KERNELS.rmsNormGrad, 'dy', dy);
  if (dy.shape.length !== x.shape.length || dy.shape.some((s, i) => s !== x.shape[i])) {
    throw new ShapeError(`${KERNELS.rmsNormGrad} (webgpu): dy ${show(dy.shape)} must have the shape of x ${show(x.shape)}`);
  }
  const rstd = backend.runWebGPUProgram(
    rowProgram('rms_norm_rstd', [rows], ['x'], rows, d, 'rows : i32, d : i32, eps : f32,', ['row_sum']),
    [x],
    'float32',
    [i32(rows), i32(d), f32(eps)],
  );
  try {
    const dx = backend.runWebGPUProgram(
      rowProgram('rms_norm_grad_dx', [...x.shape], ['dy', 'x', 'weight', 'rstd'], rows, d, 'rows : i32, d : i32, wStride : i32,', [
        'row_sum',
      ]),
      [dy, x, weight, rstd],
      'float32',
      [i32(rows), i32(d), i32(wStride)],
    );
    const perChannel = backend.runWebGPUProgram(
      program({
        file: 'rms_norm_grad_dw',
        outputShape: [d],
        inputs: ['dy', 'x', 'rstd'],
        workgroups: Math.ceil(d / COLS),
        workgroupSize: COLS * SLICES,
        consts: { COLS, SLICES },
        uniforms: 'rows : i32, d : i32,',
      }),
      [dy, x, rstd],
      'float32',
      [i32(rows), i32(d)],
    );
    if (weight.shape[0] === d) return [dx, perChannel];
    const dw = sumAll(backend, perChannel, false);
    backend.disposeData(perChannel.dataId);
    return [dx, dw];
  } finally {
    backend.disposeData(rstd.dataId);
  }
}
