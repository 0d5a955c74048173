/**
 * osp-lab's fused kernels for tfjs-backend-webgpu, registered under the names of src/ops/dispatch.ts
 * (KERNELS) by `registerWebGPUKernels()` when the webgpu backend starts.
 *
 * The WGSL lives in kernels/wgsl/*.wgsl (the source of truth, read once at run time). Each file is
 * the "user code" of one tfjs WebGPU program: tfjs prepends its prelude (the `result` output
 * buffer, one read-only storage buffer per name in `variableNames`, the `uniforms` struct with the
 * shapes plus the fields this file declares in `uniforms`, and the `_start` entry point that calls
 * `main(index)` with the flat global invocation index). This file prepends the few compile-time
 * constants a shader needs (workgroup size, mode flags) and folds them into `shaderKey`, the key
 * of tfjs's pipeline cache; sizes travel as uniforms, so one pipeline serves every shape.
 *
 * Every input named in `variableNames` is read by its shader: with layout 'auto' an unread binding
 * is dropped and tfjs would bind the wrong buffers. Intermediate buffers (rstd, partial sums, the
 * Newton-Schulz iterates) are released with backend.disposeData as soon as their consumer has been
 * recorded (tfjs defers the actual release until the queued commands have run).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import type { AdamWUpdateAttrs } from '../../ops/adamw_update.ts';
import { hasKernel, KERNELS } from '../../ops/dispatch.ts';
import { registerSoftmaxGradient } from '../../ops/softmax_grad.ts';

type KernelFuncArgs = Parameters<tf.KernelFunc>[0];
type Uniform = { type: 'float32' | 'int32'; data: number[] };

/** The parts of tfjs's WebGPUProgram that osp-lab's programs set. */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}

/** The parts of tfjs-backend-webgpu's WebGPUBackend the kernels use. */
interface Backend {
  runWebGPUProgram(program: Program, inputs: tf.TensorInfo[], outputDtype: tf.DataType, uniforms?: Uniform[]): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

const sources = new Map<string, string>();

/** The text of kernels/wgsl/<name>.wgsl, read once. */
export function wgslSource(name: string): string {
  let src = sources.get(name);
  if (src === undefined) {
    src = readFileSync(new URL(`../../../kernels/wgsl/${name}.wgsl`, import.meta.url), 'utf8');
    sources.set(name, src);
  }
  return src;
}

type Const = number | boolean;

/** WGSL declarations for the host-provided constants, e.g. `const WG : i32 = 64;`. */
function constants(consts: Record<string, Const>): string {
  return Object.entries(consts)
    .map(([k, v]) => (typeof v === 'boolean' ? `const ${k} : bool = ${v};` : `const ${k} : i32 = ${v};`))
    .join('\n');
}

interface ProgramSpec {
  file: string;
  outputShape: number[];
  inputs: string[];
  /** Number of workgroups (a flat dispatch: tfjs folds it into y/z past the per-dimension limit). */
  workgroups: number;
  workgroupSize: number;
  consts?: Record<string, Const>;
  /** Extra uniform fields, WGSL syntax with trailing commas. */
  uniforms?: string;
  /** Adds tfjs's `size` uniform (the output's element count). */
  size?: boolean;
  /** Shared WGSL files (kernels/wgsl/<name>.wgsl) prepended after the constants, in order. */
  libs?: string[];
}

function program(spec: ProgramSpec): Program {
  const consts = spec.consts ?? {};
  const key = Object.entries(consts)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const p: Program = {
    outputShape: spec.outputShape,
    shaderKey: `osp_${spec.file}_${key}`,
    dispatchLayout: { x: spec.outputShape.map((_, i) => i) },
    dispatch: [Math.max(1, spec.workgroups), 1, 1],
    variableNames: spec.inputs,
    workgroupSize: [spec.workgroupSize, 1, 1],
    getUserCode: () => [constants(consts), ...(spec.libs ?? []).map(wgslSource), wgslSource(spec.file)].join('\n'),
  };
  if (spec.uniforms) p.uniforms = spec.uniforms;
  if (spec.size) p.size = true;
  return p;
}

const i32 = (v: number): Uniform => ({ type: 'int32', data: [v] });
const f32 = (v: number): Uniform => ({ type: 'float32', data: [v] });
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const show = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Row programs: LPR lanes per row and RPW rows per workgroup (one barrier per workgroup; see
 * rms_norm.wgsl). About 16 elements per lane, at least 64 lanes per workgroup.
 */
export function rowLayout(d: number): { LPR: number; RPW: number; lanes: number } {
  let LPR = 1;
  while (LPR < 256 && LPR * 16 < d) LPR *= 2;
  const lanes = Math.max(64, LPR);
  return { LPR, RPW: lanes / LPR, lanes };
}

/**
 * A row program over `rows` rows of `d` elements (kernels/wgsl/rows.wgsl, then `libs`): the layout of
 * rowLayout, one workgroup per RPW rows.
 */
function rowProgram(file: string, outputShape: number[], inputs: string[], rows: number, d: number, uniforms: string, libs: string[] = []): Program {
  const { LPR, RPW, lanes } = rowLayout(d);
  return program({
    file,
    outputShape,
    inputs,
    workgroups: Math.ceil(rows / RPW),
    workgroupSize: lanes,
    consts: { LPR, RPW },
    uniforms,
    libs: ['rows', ...libs],
  });
}

/** Column reductions: 32 adjacent columns per workgroup, 8 lanes splitting the rows of each. */
const COLS = 32;
const SLICES = 8;
/** Lanes of the single-workgroup sums and of the elementwise programs. */
const SUM_LANES = 256;
const FLAT_LANES = 64;

function checkFloat(kernel: string, field: string, t: tf.TensorInfo): void {
  if (t.dtype !== 'float32') throw new ShapeError(`${kernel} (webgpu): ${field} must be float32, got ${t.dtype}`);
}

/** Sum (or sum of squares) of all elements of x into a [1] tensor. */
function sumAll(backend: Backend, x: tf.TensorInfo, square: boolean): tf.TensorInfo {
  const p = program({
    file: 'sum_all',
    outputShape: [1],
    inputs: ['x'],
    workgroups: 1,
    workgroupSize: SUM_LANES,
    consts: { WG: SUM_LANES, SQUARE: square },
    uniforms: 'count : i32,',
  });
  return backend.runWebGPUProgram(p, [x], 'float32', [i32(numel(x.shape))]);
}

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

function rmsNorm({ inputs, backend, attrs }: KernelFuncArgs): tf.TensorInfo {
  const { x, weight } = inputs as { x: tf.TensorInfo; weight: tf.TensorInfo };
  const { eps } = attrs as unknown as { eps: number };
  const { d, rows, wStride } = rmsNormShapes(KERNELS.rmsNorm, x, weight);
  const p = rowProgram('rms_norm', [...x.shape], ['x', 'weight'], rows, d, 'rows : i32, d : i32, eps : f32, wStride : i32,', ['row_sum']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [x, weight], 'float32', [i32(rows), i32(d), f32(eps), i32(wStride)]);
}

function rmsNormGrad({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
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
      rowProgram('rms_norm_grad_dx', [...x.shape], ['dy', 'x', 'weight', 'rstd'], rows, d, 'rows : i32, d : i32, wStride : i32,', ['row_sum']),
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

function crossEntropy({ inputs, backend }: KernelFuncArgs): tf.TensorInfo {
  const { logits, targets } = inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo };
  const { n, v } = crossEntropyShapes(KERNELS.crossEntropy, logits, targets);
  const p = rowProgram('cross_entropy', [n], ['logits', 'targets'], n, v, 'rows : i32, v : i32,', ['online_lse']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [logits, targets], 'float32', [i32(n), i32(v)]);
}

function crossEntropyGrad({ inputs, backend }: KernelFuncArgs): tf.TensorInfo {
  const { dloss, logits, targets } = inputs as { dloss: tf.TensorInfo; logits: tf.TensorInfo; targets: tf.TensorInfo };
  const { n, v } = crossEntropyShapes(KERNELS.crossEntropyGrad, logits, targets);
  if (dloss.shape.length !== 1 || dloss.shape[0] !== n) {
    throw new ShapeError(`${KERNELS.crossEntropyGrad} (webgpu): dloss must be [${n}], got ${show(dloss.shape)}`);
  }
  checkFloat(KERNELS.crossEntropyGrad, 'dloss', dloss);
  const p = rowProgram('cross_entropy_grad', [n, v], ['dloss', 'logits', 'targets'], n, v, 'rows : i32, v : i32,', ['online_lse']);
  return (backend as unknown as Backend).runWebGPUProgram(p, [dloss, logits, targets], 'float32', [i32(n), i32(v)]);
}


/**
 * Three programs, one per output (tfjs programs have one output). Measured alternatives: one
 * program writing a packed [3, ...] buffer needs three Slice copies afterwards (tfjs-webgpu has no
 * shallow slice), i.e. 4 reads + 3 writes + 3 copies; the three programs read 2 + 2 + 4 tensors and
 * write 3, with the parameter program recomputing m' and v' in registers.
 */
function adamwUpdate({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = b as unknown as Backend;
  const { param, grad, expAvg, expAvgSq } = inputs as Record<'param' | 'grad' | 'expAvg' | 'expAvgSq', tf.TensorInfo>;
  const a = attrs as unknown as AdamWUpdateAttrs;
  for (const [name, t] of [['param', param], ['grad', grad], ['expAvg', expAvg], ['expAvgSq', expAvgSq]] as const) {
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
  const m = backend.runWebGPUProgram(flat('adamw_exp_avg', ['grad', 'expAvg'], 'beta1 : f32, oneMinusBeta1 : f32,'), [grad, expAvg], 'float32', [
    f32(a.beta1),
    f32(1 - a.beta1),
  ]);
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

interface NsAttrs {
  steps: number;
  a: number[];
  b: number[];
  c: number[];
  normScale: number;
  normEps: number;
}

const TILE = 32;
/**
 * Software adapter (set by registerWebGPUKernels): the Newton-Schulz products read their operands
 * straight from the buffers instead of staging them in workgroup memory (ns_matmul's DIRECT).
 */
let directProducts = false;
/** Lanes of a Newton-Schulz product workgroup (each computes an 8 x 8 block of the 32 x 32 tile). */
const NS_LANES = 16;

/** out = beta * lhs.rhs(^T) + alpha * E, out [M, N] (or its transpose). See ns_matmul.wgsl. */
function nsProduct(
  backend: Backend,
  lhs: tf.TensorInfo,
  rhs: tf.TensorInfo,
  dims: { M: number; N: number; K: number },
  mode: { rhsT: boolean; epi: 0 | 1 | 2; outT: boolean; sym: boolean },
  alpha: number,
  beta: number,
): tf.TensorInfo {
  const { M, N, K } = dims;
  const tilesN = Math.ceil(N / TILE);
  if (mode.sym && M !== N) throw new Error(`ns_matmul: a symmetric product must be square, got [${M}, ${N}]`);
  const p = program({
    file: 'ns_matmul',
    outputShape: mode.outT ? [N, M] : [M, N],
    inputs: ['lhs', 'rhs'],
    // Symmetric outputs: only the upper triangle of the tile grid.
    workgroups: mode.sym ? (tilesN * (tilesN + 1)) / 2 : Math.ceil(M / TILE) * tilesN,
    workgroupSize: NS_LANES,
    consts: { RHS_T: mode.rhsT, EPI: mode.epi, OUT_T: mode.outT, SYM: mode.sym, DIRECT: directProducts },
    uniforms: 'mmM : i32, mmN : i32, mmK : i32, tilesN : i32, alpha : f32, beta : f32,',
  });
  return backend.runWebGPUProgram(p, [lhs, rhs], 'float32', [i32(M), i32(N), i32(K), i32(tilesN), f32(alpha), f32(beta)]);
}

function newtonSchulz({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo {
  const backend = b as unknown as Backend;
  const { x } = inputs as { x: tf.TensorInfo };
  const a = attrs as unknown as NsAttrs;
  const k = KERNELS.newtonSchulz;
  if (x.shape.length !== 2) throw new ShapeError(`${k} (webgpu): x must be 2-D [m, n], got ${show(x.shape)}`);
  checkFloat(k, 'x', x);
  if (!Number.isInteger(a.steps) || a.steps < 1) throw new ShapeError(`${k} (webgpu): steps must be a positive integer, got ${a.steps}`);
  for (const f of ['a', 'b', 'c'] as const) {
    if (!Array.isArray(a[f]) || a[f].length !== a.steps) {
      throw new ShapeError(`${k} (webgpu): ${f} must hold one coefficient per step (${a.steps}), got ${JSON.stringify(a[f])}`);
    }
  }
  const [m, n] = x.shape as [number, number];
  const transposed = m > n;
  const r = Math.min(m, n);
  const c = Math.max(m, n);
  const sumsq = sumAll(backend, x, true);
  let X = backend.runWebGPUProgram(
    program({
      file: 'ns_normalize',
      outputShape: [r, c],
      inputs: ['g', 'sumsq'],
      workgroups: Math.ceil((r * c) / FLAT_LANES),
      workgroupSize: FLAT_LANES,
      consts: { TRANSPOSE_IN: transposed },
      uniforms: 'r : i32, c : i32, normScale : f32, normEps : f32,',
      size: true,
    }),
    [x, sumsq],
    'float32',
    [i32(r), i32(c), f32(a.normScale), f32(a.normEps)],
  );
  backend.disposeData(sumsq.dataId);
  for (let s = 0; s < a.steps; s++) {
    const A = nsProduct(backend, X, X, { M: r, N: r, K: c }, { rhsT: true, epi: 0, outT: false, sym: true }, 0, 1);
    const B = nsProduct(backend, A, A, { M: r, N: r, K: r }, { rhsT: false, epi: 1, outT: false, sym: true }, a.b[s]!, a.c[s]!);
    backend.disposeData(A.dataId);
    const last = s === a.steps - 1;
    const next = nsProduct(backend, B, X, { M: r, N: c, K: r }, { rhsT: false, epi: 2, outT: last && transposed, sym: false }, a.a[s]!, 1);
    backend.disposeData(B.dataId);
    backend.disposeData(X.dataId);
    X = next;
  }
  return X;
}

function channelMoments({ inputs, backend: b }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = b as unknown as Backend;
  const { x } = inputs as { x: tf.TensorInfo };
  const k = KERNELS.channelMoments;
  if (x.shape.length !== 2) throw new ShapeError(`${k} (webgpu): x must be 2-D [N, d], got ${show(x.shape)}`);
  checkFloat(k, 'x', x);
  const [n, d] = x.shape as [number, number];
  const token = backend.runWebGPUProgram(
    rowProgram('channel_moments_rows', [n, 4], ['x'], n, d, 'rows : i32, d : i32,'),
    [x],
    'float32',
    [i32(n), i32(d)],
  );
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

function softmaxGrad({ inputs, backend }: KernelFuncArgs): tf.TensorInfo {
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
 * Causal attention forward (the issue's stretch): not part of src/ops/dispatch.ts's contracts and not
 * used by the model yet (training would need its backward too); tests and the bench call it by name.
 *   OspCausalAttention {q [B, H, T, hd], k [B, Hkv, T, hd], v [B, Hkv, T, hd]}, {scale} -> [B, H, T, hd]
 */
export const CAUSAL_ATTENTION = 'OspCausalAttention';
/** Query rows (lanes) per causal-attention workgroup, and the largest head dimension compiled. */
const ATT_QB = 16;
const ATT_MAX_HD = 256;

function causalAttention({ inputs, backend, attrs }: KernelFuncArgs): tf.TensorInfo {
  const { q, k, v } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const { scale } = attrs as unknown as { scale: number };
  const name = CAUSAL_ATTENTION;
  if (q.shape.length !== 4) throw new ShapeError(`${name} (webgpu): q must be [B, H, T, hd], got ${show(q.shape)}`);
  const [B, H, T, hd] = q.shape as [number, number, number, number];
  for (const [field, t] of [['k', k], ['v', v]] as const) {
    const [b2, hkv, t2, hd2] = t.shape as number[];
    if (t.shape.length !== 4 || b2 !== B || t2 !== T || hd2 !== hd || !hkv || H % hkv !== 0) {
      throw new ShapeError(`${name} (webgpu): ${field} must be [${B}, Hkv, ${T}, ${hd}] with Hkv dividing ${H}, got ${show(t.shape)}`);
    }
  }
  if (k.shape[1] !== v.shape[1]) throw new ShapeError(`${name} (webgpu): k ${show(k.shape)} and v ${show(v.shape)} differ in heads`);
  if (hd < 1 || hd > ATT_MAX_HD) throw new ShapeError(`${name} (webgpu): head dimension must be in [1, ${ATT_MAX_HD}], got ${hd}`);
  for (const [field, t] of [['q', q], ['k', k], ['v', v]] as const) checkFloat(name, field, t);
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

/**
 * BatchMatMul for software adapters. On lavapipe tfjs's own BatchMatMul runs at ~2.5 GFLOP/s and
 * takes ~70% of a training step; batch_matmul.wgsl (ns_matmul's 8 x 8-per-lane tiling) is faster
 * there. On a hardware GPU tfjs's tuned matmul stays: nothing is replaced.
 *
 * registerWebGPUKernels({ softwareAdapter: true }) keeps tfjs's kernel config (tfjsBatchMatMul),
 * registers `batchMatMulSoftware` under KERNELS.batchMatMul ('OspBatchMatMul') and replaces tfjs's
 * 'BatchMatMul' on webgpu with `batchMatMulDispatch`, which calls the WGSL kernel while
 * hasKernel(KERNELS.batchMatMul) holds (so setKernelsEnabled(..., false) and withReferenceOps give
 * tfjs's own kernel back) and tfjs's otherwise. Cases the WGSL kernel does not cover go to tfjs's
 * kernel as well: a dtype other than float32, an empty output, inner sizes that differ (tfjs throws
 * its own error) and batch shapes whose broadcast is not max(batchA, batchB) elements (tfjs-webgpu
 * computes max(batchA, batchB) batches with index b % batchA, b % batchB; matching it exactly
 * means giving it the cases where that is not the broadcast).
 */
let tfjsBatchMatMul: tf.KernelConfig | undefined;

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

function tfjsMatMul(args: KernelFuncArgs): tf.TensorInfo {
  if (!tfjsBatchMatMul) throw new Error('BatchMatMul (webgpu): tfjs-backend-webgpu registered no BatchMatMul kernel');
  return tfjsBatchMatMul.kernelFunc(args) as tf.TensorInfo;
}

/** OspBatchMatMul: tfjs's BatchMatMul contract, computed by batch_matmul.wgsl where it applies. */
function batchMatMulSoftware(args: KernelFuncArgs): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || ra < 2 || rb < 2) return tfjsMatMul(args);
  const M = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = numel(outerA);
  const batchB = numel(outerB);
  const batches = Math.max(batchA, batchB);
  if (K !== Kb || batchA === 0 || batchB === 0 || M === 0 || N === 0) return tfjsMatMul(args);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return tfjsMatMul(args);
  }
  if (numel(outer) !== batches) return tfjsMatMul(args);
  const backend = args.backend as unknown as Backend;
  const outShape = [...outer, M, N];
  if (K === 0) {
    // An empty inner dimension: zeros (a program would have to bind the empty input buffers).
    return tf.getKernel('Fill', 'webgpu')!.kernelFunc({ inputs: {}, backend: args.backend, attrs: { shape: outShape, value: 0, dtype: 'float32' } }) as tf.TensorInfo;
  }
  const tilesM = Math.ceil(M / TILE);
  const tilesN = Math.ceil(N / TILE);
  const p = program({
    file: 'batch_matmul',
    outputShape: [batches, M, N],
    inputs: ['matA', 'matB'],
    workgroups: batches * tilesM * tilesN,
    workgroupSize: NS_LANES,
    consts: { TRANS_A: transposeA, TRANS_B: transposeB },
    uniforms: 'mmM : i32, mmN : i32, mmK : i32, tilesM : i32, tilesN : i32, batches : i32, batchA : i32, batchB : i32,',
  });
  // The program indexes flat buffers: the inputs go in as rank-3 views of the same data (no copy).
  const a3: tf.TensorInfo = { dataId: a.dataId, dtype: a.dtype, shape: transposeA ? [batchA, K, M] : [batchA, M, K] };
  const b3: tf.TensorInfo = { dataId: b.dataId, dtype: b.dtype, shape: transposeB ? [batchB, N, K] : [batchB, K, N] };
  const out = backend.runWebGPUProgram(p, [a3, b3], 'float32', [
    i32(M),
    i32(N),
    i32(K),
    i32(tilesM),
    i32(tilesN),
    i32(batches),
    i32(batchA),
    i32(batchB),
  ]);
  // Same data, the broadcast batch shape (what tfjs's kernel returns after its reshape).
  return { dataId: out.dataId, dtype: out.dtype, shape: outShape };
}

/** Registered as tfjs's 'BatchMatMul' on webgpu when the adapter is a software one. */
function batchMatMulDispatch(args: KernelFuncArgs): tf.TensorInfo {
  return hasKernel(KERNELS.batchMatMul) ? batchMatMulSoftware(args) : tfjsMatMul(args);
}

const KERNEL_FUNCS: Record<string, tf.KernelFunc> = {
  [KERNELS.rmsNorm]: rmsNorm as tf.KernelFunc,
  [KERNELS.rmsNormGrad]: rmsNormGrad as unknown as tf.KernelFunc,
  [KERNELS.crossEntropy]: crossEntropy as tf.KernelFunc,
  [KERNELS.crossEntropyGrad]: crossEntropyGrad as tf.KernelFunc,
  [KERNELS.adamwUpdate]: adamwUpdate as unknown as tf.KernelFunc,
  [KERNELS.newtonSchulz]: newtonSchulz as tf.KernelFunc,
  [KERNELS.channelMoments]: channelMoments as unknown as tf.KernelFunc,
  [KERNELS.softmaxGrad]: softmaxGrad as tf.KernelFunc,
  [CAUSAL_ATTENTION]: causalAttention as tf.KernelFunc,
};

/**
 * Registers osp-lab's WGSL kernels for the 'webgpu' backend (idempotent; called at every start), and
 * the Softmax gradient that dispatches to OspSoftmaxGrad (src/ops/softmax_grad.ts). On a software
 * adapter it also puts batch_matmul.wgsl behind tfjs's 'BatchMatMul'; on a hardware one it makes
 * sure tfjs's own BatchMatMul is in place.
 */
export function registerWebGPUKernels(opts: { softwareAdapter: boolean }): void {
  registerSoftmaxGradient();
  directProducts = opts.softwareAdapter;
  for (const [kernelName, kernelFunc] of Object.entries(KERNEL_FUNCS)) {
    if (tf.getKernel(kernelName, 'webgpu') === undefined) {
      tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });
    }
  }
  const current = tf.getKernel('BatchMatMul', 'webgpu');
  if (current && current.kernelFunc !== batchMatMulDispatch) tfjsBatchMatMul = current;
  const replaced = current?.kernelFunc === batchMatMulDispatch;
  if (opts.softwareAdapter && tfjsBatchMatMul) {
    if (!replaced) {
      tf.unregisterKernel('BatchMatMul', 'webgpu');
      tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'webgpu', kernelFunc: batchMatMulDispatch as tf.KernelFunc });
    }
    if (tf.getKernel(KERNELS.batchMatMul, 'webgpu') === undefined) {
      tf.registerKernel({ kernelName: KERNELS.batchMatMul, backendName: 'webgpu', kernelFunc: batchMatMulSoftware as tf.KernelFunc });
    }
  } else {
    if (replaced && tfjsBatchMatMul) {
      tf.unregisterKernel('BatchMatMul', 'webgpu');
      tf.registerKernel(tfjsBatchMatMul);
    }
    if (tf.getKernel(KERNELS.batchMatMul, 'webgpu') !== undefined) tf.unregisterKernel(KERNELS.batchMatMul, 'webgpu');
  }
}
