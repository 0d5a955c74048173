/**
 * The attention kernels for webgpu: softmaxGrad (OspSoftmaxGrad, the gradient through the attention
 * softmax) and causalAttention (OspCausalAttention, a forward not yet used by the model).
 */
import type * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { checkFloat, f32, i32, numel, program, rowProgram, show, type Backend, type KernelFuncArgs } from './program.ts';

export function softmaxGrad({ inputs, backend }: KernelFuncArgs): tf.TensorInfo {
  const { dy, y } = inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
  const k = KERNELS.softmaxGrad;
  if (y.shape.length < 1) throw new ShapeError(`${k} (webgpu): y must have at least one axis, got ${show(y.shape)}`);
  if (dy.shape.length !== y.shape.length || dy.shape.some((s, i) => s !== y.shape[i])) {
    throw new ShapeError(`${k} (webgpu): dy ${show(dy.shape)} must have the shape of y ${show(y.shape)}`);
  }
  checkFloat(k, 'dy', dy);
  checkFloat(k, 'y', y);
  const d = y.shape[y.shape.length - 1]!;
  const rows = d === 0 ? 0 : numel(y.shape) / d;
  const p = rowProgram('softmax_grad', [...y.shape], ['dy', 'y'], rows, d, 'rows : i32, d : i32,', ['row_sum']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [dy, y], 'float32', [i32(rows), i32(d)]);
}

/**
 * Causal attention forward (the stretch): not part of src/ops/dispatch.ts's contracts and not
 * used by the model yet (training would need its backward too); tests and the bench call it by name.
 *   OspCausalAttention {q [B, H, T, hd], k [B, Hkv, T, hd], v [B, Hkv, T, hd]}, {scale} -> [B, H, T, hd]
 */
export const CAUSAL_ATTENTION = 'OspCausalAttention';
/** Query rows (lanes) per causal-attention workgroup, and the largest head dimension compiled. */
const ATT_QB = 16;
const ATT_MAX_HD = 256;

export function causalAttention({ inputs, backend, attrs }: KernelFuncArgs): tf.TensorInfo {
  const { q, k, v } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const { scale } = attrs as unknown as { scale: number };
  const name = CAUSAL_ATTENTION;
  if (q.shape.length !== 4) throw new ShapeError(`${name} (webgpu): q must be [B, H, T, hd], got ${show(q.shape)}`);
  const [B, H, T, hd] = q.shape as [number, number, number, number];
  for (const [field, t] of [
    ['k', k],
    ['v', v],
  ] as const) {
    const [b2, hkv, t2, hd2] = t.shape as number[];
    if (t.shape.length !== 4 || b2 !== B || t2 !== T || hd2 !== hd || !hkv || H % hkv !== 0) {
      throw new ShapeError(`${name} (webgpu): ${field} must be [${B}, Hkv, ${T}, ${hd}] with Hkv dividing ${H}, got ${show(t.shape)}`);
    }
  }
  if (k.shape[1] !== v.shape[1]) throw new ShapeError(`${name} (webgpu): k ${show(k.shape)} and v ${show(v.shape)} differ in heads`);
  if (hd < 1 || hd > ATT_MAX_HD) throw new ShapeError(`${name} (webgpu): head dimension must be in [1, ${ATT_MAX_HD}], got ${hd}`);
  for (const [field, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const)
    checkFloat(name, field, t);
  const qBlocks = Math.ceil(T / ATT_QB);
  const p = program({
    file: 'causal_attention',
    outputShape: [B, H, T, hd],
    inputs: ['q', 'k', 'v'],
    workgroups: B * H * qBlocks,
    workgroupSize: ATT_QB,
    consts: { QB: ATT_QB, HD: hd },
    uniforms: 'heads : i32, kvHeads : i32, t : i32, qBlocks : i32, scale : f32,',
  });
  return (backend as unknown as Backend).runWebGPUProgram(p, [q, k, v], 'float32', [
    i32(H),
    i32(k.shape[1]!),
    i32(T),
    i32(qBlocks),
    f32(scale),
  ]);
}
