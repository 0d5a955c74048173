/**
 * The Newton-Schulz iteration of Muon for webgpu: newtonSchulz (OspNewtonSchulz) and its products
 * (ns_matmul.wgsl), whose 32 x 32 tiling batch_matmul.wgsl shares (TILE, NS_LANES).
 */
import type * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../../errors.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { checkFloat, f32, FLAT_LANES, i32, program, show, sumAll, type Backend, type KernelFuncArgs } from './program.ts';

interface NsAttrs {
  steps: number;
  a: number[];
  b: number[];
  c: number[];
  normScale: number;
  normEps: number;
}

export const TILE = 32;
/**
 * Software adapter (set by registerWebGPUKernels): the Newton-Schulz products read their operands
 * straight from the buffers instead of staging them in workgroup memory (ns_matmul's DIRECT).
 */
let directProducts = false;
/** Lanes of a Newton-Schulz product workgroup (each computes an 8 x 8 block of the 32 x 32 tile). */
export const NS_LANES = 16;

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

export function newtonSchulz({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo {
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

/** Sets directProducts: registerWebGPUKernels passes whether the adapter is a software one. */
export function setDirectProducts(on: boolean): void {
  directProducts = on;
}
