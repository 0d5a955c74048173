/**
 * The channel-moments kernel for webgpu: channelMoments (OspChannelMoments: sums of x..x^4 per token
 * and per channel).
 */
import type * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { checkFloat, COLS, i32, program, rowProgram, show, SLICES, type Backend, type KernelFuncArgs } from './program.ts';

export function channelMoments({ inputs, backend: b }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = b as unknown as Backend;
  const { x } = inputs as { x: tf.TensorInfo };
  const k = KERNELS.channelMoments;
  if (x.shape.length !== 2) throw new ShapeError(`${k} (webgpu): x must be 2-D [N, d], got ${show(x.shape)}`);
  checkFloat(k, 'x', x);
  const [n, d] = x.shape as [number, number];
  const token = backend.runWebGPUProgram(rowProgram('channel_moments_rows', [n, 4], ['x'], n, d, 'rows : i32, d : i32,'), [x], 'float32', [
    i32(n),
    i32(d),
  ]);
  const channel = backend.runWebGPUProgram(
    program({
      file: 'channel_moments_cols',
      outputShape: [d, 4],
      inputs: ['x'],
      workgroups: Math.ceil(d / COLS),
      workgroupSize: COLS * SLICES,
      consts: { COLS, SLICES },
      uniforms: 'rows : i32, d : i32,',
    }),
    [x],
    'float32',
    [i32(n), i32(d)],
  );
  return [token, channel];
}
