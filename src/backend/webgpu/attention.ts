/**
 * The attention kernels for webgpu: softmaxGrad (OspSoftmaxGrad, the gradient through the reference
 * path's softmax), and the fused causal attention (OspCausalAttention, OspCausalAttentionGrad;
 * kernels/wgsl/attention_*.wgsl): online softmax forward, backward recomputed from the forward's
 * log-sum-exp, so no [T, T] matrix is ever stored.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import { ATTENTION_MAX_HEAD_DIM, attentionShapes } from '../../ops/attention.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { attentionDkvSource, attentionDqSource, attentionForwardSource, rowsPerLane, SUBGROUP_SIZES } from './attention_subgroup.ts';
import { checkFloat, f32, FLAT_LANES, i32, numel, program, rowProgram, show, type Backend, type KernelFuncArgs } from './program.ts';

/**
 * The subgroup size of the generated kernels (attention_subgroup.ts), set on a software adapter with a
 * fixed subgroup size the generator supports; undefined: the tile kernels (kernels/wgsl/attention_*.wgsl).
 */
let subgroupSize: number | undefined;

export function setAttentionSubgroupSize(size: number | undefined): void {
  subgroupSize = size !== undefined && (SUBGROUP_SIZES as readonly number[]).includes(size) ? size : undefined;
}

/** The subgroup size of the generated attention kernels in use, or undefined where the tile kernels run. */
export function attentionSubgroupSize(): number | undefined {
  return subgroupSize;
}

/** Generated sources, one per (kernel, head dimension, subgroup size). */
const generated = new Map<string, string>();
function source(kind: 'fwd' | 'dq' | 'dkv', hd: number, S: number): string {
  const key = `${kind}:${hd}:${S}`;
  let code = generated.get(key);
  if (code === undefined) {
    code = (kind === 'fwd' ? attentionForwardSource : kind === 'dq' ? attentionDqSource : attentionDkvSource)(hd, S);
    generated.set(key, code);
  }
  return code;
}

/** The program of a generated kernel: one subgroup (S lanes) per S * R rows of one (batch, head) (R: rowsPerLane). */
function subgroupProgram(
  kind: 'fwd' | 'dq' | 'dkv',
  outputShape: number[],
  inputs: string[],
  B: number,
  heads: number,
  T: number,
  hd: number,
  S: number,
) {
  const blocks = Math.ceil(T / (S * rowsPerLane(S, hd)));
  const groups = B * heads * blocks;
  const p = program({
    file: `attention_sg_${kind}`,
    outputShape,
    inputs,
    workgroups: groups,
    workgroupSize: S,
    consts: { HD: hd, S },
    code: source(kind, hd, S),
    uniforms: ATTENTION_UNIFORMS,
  });
  return { p, blocks, groups };
}

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
 * Rows per attention tile (TB), the head dimension rounded up to it (HDP) and the lanes of a
 * workgroup ((TB / 8)^2: 8 x 8 blocks). TB = 32 where the kernel's workgroup arrays fit the device's
 * limit, else 16: `tiles` pairs of a TB x TB block and a TB x HDP tile, plus up to three TB-long
 * arrays and one i32 (each variable rounded up to 16 bytes, as WebGPU counts them). With lavapipe's
 * and common GPUs' 32 KiB, attention_dkv (two pairs) takes TB = 16 above head dimension 64.
 */
function tileRows(backend: Backend, name: string, hd: number, tiles: 1 | 2): { TB: number; HDP: number; lanes: number } {
  const limit = backend.device.limits.maxComputeWorkgroupStorageSize;
  const round = (bytes: number) => Math.ceil(bytes / 16) * 16;
  const bytes = (tb: number) => {
    const hdp = Math.ceil(hd / tb) * tb;
    return tiles * (round(4 * tb * tb) + round(4 * tb * hdp)) + 3 * round(4 * tb) + 16;
  };
  const TB = bytes(32) <= limit ? 32 : 16;
  if (bytes(TB) > limit) {
    throw new ShapeError(
      `${name} (webgpu): head dimension ${hd} needs ${bytes(TB)} bytes of workgroup memory, the adapter allows ${limit}`,
    );
  }
  return { TB, HDP: Math.ceil(hd / TB) * TB, lanes: (TB / 8) ** 2 };
}

/** Checks q [B, T, H, hd], k and v [B, T, Hkv, hd] (Hkv dividing H), float32, hd within the kernels' limit; returns the sizes. */
function attentionSizes(name: string, q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo) {
  const { B, T, H, Hkv, hd } = attentionShapes(`${name} (webgpu)`, q, k, v);
  if (hd < 1 || hd > ATTENTION_MAX_HEAD_DIM) {
    throw new ShapeError(`${name} (webgpu): head dimension must be in [1, ${ATTENTION_MAX_HEAD_DIM}], got ${hd}`);
  }
  for (const [field, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const)
    checkFloat(name, field, t);
  return { B, T, H, Hkv, hd };
}

const ATTENTION_UNIFORMS = 'heads : i32, kvHeads : i32, t : i32, blocks : i32, groups : i32, scale : f32,';

/**
 * OspCausalAttention {q [B, T, H, hd], k [B, T, Hkv, hd], v [B, T, Hkv, hd]}, {scale}
 *   -> [B * T, H * hd + H]: per token, every head's output, then every head's log-sum-exp.
 */
export function causalAttention({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo {
  const { q, k, v } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const { scale } = attrs as unknown as { scale: number };
  const { B, T, H, Hkv, hd } = attentionSizes(KERNELS.causalAttention, q, k, v);
  const backend = b as unknown as Backend;
  if (subgroupSize !== undefined) {
    const { p, blocks, groups } = subgroupProgram('fwd', [B * T, H * hd + H], ['q', 'k', 'v'], B, H, T, hd, subgroupSize);
    return backend.runWebGPUProgram(p, [q, k, v], 'float32', [i32(H), i32(Hkv), i32(T), i32(blocks), i32(groups), f32(scale)]);
  }
  const { TB, HDP, lanes } = tileRows(backend, KERNELS.causalAttention, hd, 1);
  const blocks = Math.ceil(T / TB);
  const p = program({
    file: 'attention_fwd',
    outputShape: [B * T, H * hd + H],
    inputs: ['q', 'k', 'v'],
    workgroups: B * H * blocks,
    workgroupSize: lanes,
    consts: { TB, HD: hd, HDP },
    uniforms: ATTENTION_UNIFORMS,
    libs: ['attention_common'],
  });
  const groups = B * H * blocks;
  return backend.runWebGPUProgram(p, [q, k, v], 'float32', [i32(H), i32(Hkv), i32(T), i32(blocks), i32(groups), f32(scale)]);
}

/**
 * OspCausalAttentionGrad {dy [B, T, H, hd], q, k, v, fwd (OspCausalAttention's result)}, {scale}
 *   -> [dq [B, T, H, hd], dk [B, T, Hkv, hd], dv [B, T, Hkv, hd]].
 * Three programs: attention_delta (dy . out per row and head), attention_dq, and attention_dkv
 * (dk and dv of each key side by side, split with two slices).
 */
export function causalAttentionGrad({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
  const { dy, q, k, v, fwd } = inputs as { dy: tf.TensorInfo; q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo; fwd: tf.TensorInfo };
  const { scale } = attrs as unknown as { scale: number };
  const name = KERNELS.causalAttentionGrad;
  const { B, T, H, Hkv, hd } = attentionSizes(name, q, k, v);
  if (dy.shape.length !== 4 || dy.shape.some((s, i) => s !== q.shape[i])) {
    throw new ShapeError(`${name} (webgpu): dy ${show(dy.shape)} must have the shape of q ${show(q.shape)}`);
  }
  if (fwd.shape.length !== 2 || fwd.shape[0] !== B * T || fwd.shape[1] !== H * hd + H) {
    throw new ShapeError(`${name} (webgpu): fwd must be [${B * T}, ${H * hd + H}] (OspCausalAttention's result), got ${show(fwd.shape)}`);
  }
  checkFloat(name, 'dy', dy);
  checkFloat(name, 'fwd', fwd);
  const backend = b as unknown as Backend;
  const libs = ['attention_common', 'attention_bwd_common'];
  const rows = B * T * H;
  const deltaProgram = program({
    file: 'attention_delta',
    outputShape: [rows],
    inputs: ['dy', 'fwd'],
    workgroups: Math.ceil(rows / FLAT_LANES),
    workgroupSize: FLAT_LANES,
    consts: { HD: hd },
    uniforms: 'heads : i32,',
    size: true,
  });
  const delta = backend.runWebGPUProgram(deltaProgram, [dy, fwd], 'float32', [i32(H)]);
  const ins = [q, k, v, dy, fwd, delta];
  const names = ['q', 'k', 'v', 'dy', 'fwd', 'delta'];
  const run = (file: string, outputShape: number[], heads: number, tiles: 1 | 2) => {
    const S = subgroupSize;
    if (S !== undefined) {
      const kind = file === 'attention_dq' ? 'dq' : 'dkv';
      const { p, blocks, groups } = subgroupProgram(kind, outputShape, names, B, heads, T, hd, S);
      return backend.runWebGPUProgram(p, ins, 'float32', [i32(H), i32(Hkv), i32(T), i32(blocks), i32(groups), f32(scale)]);
    }
    const { TB, HDP, lanes } = tileRows(backend, name, hd, tiles);
    const blocks = Math.ceil(T / TB);
    const p = program({
      file,
      outputShape,
      inputs: names,
      workgroups: B * heads * blocks,
      workgroupSize: lanes,
      consts: { TB, HD: hd, HDP },
      uniforms: ATTENTION_UNIFORMS,
      libs,
    });
    return backend.runWebGPUProgram(p, ins, 'float32', [i32(H), i32(Hkv), i32(T), i32(blocks), i32(B * heads * blocks), f32(scale)]);
  };
  const dq = run('attention_dq', [B, T, H, hd], H, 1);
  const dkv = run('attention_dkv', [B * T * Hkv, 2 * hd], Hkv, 2);
  backend.disposeData(delta.dataId);
  const slice = tf.getKernel('Slice', 'webgpu')!.kernelFunc;
  const half = (begin: number): tf.TensorInfo => {
    const out = slice({ inputs: { x: dkv }, backend: b, attrs: { begin: [0, begin], size: [B * T * Hkv, hd] } }) as tf.TensorInfo;
    return { dataId: out.dataId, dtype: out.dtype, shape: [B, T, Hkv, hd] };
  };
  const dk = half(0);
  const dv = half(hd);
  backend.disposeData(dkv.dataId);
  return [dq, dk, dv];
}
