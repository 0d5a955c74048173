/**
 * The fused AdamW update for webgpu: adamwUpdate (OspAdamWUpdate: new param, exp_avg and exp_avg_sq).
 */
import type * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import type { AdamWUpdateAttrs } from '../../ops/adamw_update.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { checkFloat, f32, FLAT_LANES, numel, program, show, type Backend, type KernelFuncArgs, type Program } from './program.ts';

/**
 * Three programs, one per output (tfjs programs have one output). Measured alternatives: one
 * program writing a packed [3, ...] buffer needs three Slice copies afterwards (tfjs-webgpu has no
 * shallow slice), i.e. 4 reads + 3 writes + 3 copies; the three programs read 2 + 2 + 4 tensors and
 * write 3, with the parameter program recomputing m' and v' in registers.
 */
export function adamwUpdate({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = b as unknown as Backend;
  const { param, grad, expAvg, expAvgSq } = inputs as Record<'param' | 'grad' | 'expAvg' | 'expAvgSq', tf.TensorInfo>;
  const a = attrs as unknown as AdamWUpdateAttrs;
  for (const [name, t] of [
    ['param', param],
    ['grad', grad],
    ['expAvg', expAvg],
    ['expAvgSq', expAvgSq],
  ] as const) {
    checkFloat(KERNELS.adamwUpdate, name, t);
    if (t.shape.length !== param.shape.length || t.shape.some((s, i) => s !== param.shape[i])) {
      throw new ShapeError(`${KERNELS.adamwUpdate} (webgpu): ${name} has shape ${show(t.shape)}, param ${show(param.shape)}`);
    }
  }
  const size = numel(param.shape);
  const flat = (file: string, names: string[], uniforms: string): Program =>
    program({
      file,
      outputShape: [...param.shape],
      inputs: names,
      workgroups: Math.ceil(size / FLAT_LANES),
      workgroupSize: FLAT_LANES,
      uniforms,
      size: true,
    });
  const m = backend.runWebGPUProgram(
    flat('adamw_exp_avg', ['grad', 'expAvg'], 'beta1 : f32, oneMinusBeta1 : f32,'),
    [grad, expAvg],
    'float32',
    [f32(a.beta1), f32(1 - a.beta1)],
  );
  const v = backend.runWebGPUProgram(
    flat('adamw_exp_avg_sq', ['grad', 'expAvgSq'], 'beta2 : f32, oneMinusBeta2 : f32,'),
    [grad, expAvgSq],
    'float32',
    [f32(a.beta2), f32(1 - a.beta2)],
  );
  const p = backend.runWebGPUProgram(
    flat(
      'adamw_param',
      ['param', 'grad', 'expAvg', 'expAvgSq'],
      'beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, eps : f32, decay : f32, stepSize : f32, bc2Sqrt : f32,',
    ),
    [param, grad, expAvg, expAvgSq],
    'float32',
    [f32(a.beta1), f32(1 - a.beta1), f32(a.beta2), f32(1 - a.beta2), f32(a.eps), f32(a.decay), f32(a.lr / a.bc1), f32(a.bc2Sqrt)],
  );
  return [p, m, v];
}
