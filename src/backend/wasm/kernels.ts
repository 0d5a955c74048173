/**
 * Kernels tfjs-backend-wasm does not have, written in JS over the wasm heap. Each one is registered
 * only if the backend lacks it, so an upgrade of tfjs that adds a native one wins automatically.
 *
 * - UnsortedSegmentSum: the gradient of tf.gather (the token embedding's backward pass).
 *
 * And one it has but runs slowly: BatchMatMul with transposeA/transposeB. XNNPACK's transposed paths
 * measured 1.8-2.0 GFLOP/s against 11-18 GFLOP/s for the plain product on [2048,128]x[128,352]
 * (wasm, 1 thread). Every linear layer's forward (x W^T in the [out, in] layout) and its weight
 * gradient (dY^T X) are transposed products, so the wrapper transposes the operand explicitly and
 * runs the plain kernel: measured 5-6x faster for those products. Batched products (attention:
 * [B*H, T, hd] x [B*H, hd, T]) run at ~1 GFLOP/s in the batched kernel but ~17 GFLOP/s as separate
 * 2-D products of the same size, so equal-batch products are split into per-matrix calls.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type KernelFuncArgs = Parameters<tf.KernelFunc>[0];

/** out[segmentIds[i], ...] += x[i, ...]; rows with an id outside [0, numSegments) are dropped (as TF does). */
function unsortedSegmentSum({ inputs, backend, attrs }: KernelFuncArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  if (segmentIds.shape.length !== 1 || segmentIds.shape[0] !== x.shape[0]) {
    throw new Error(`UnsortedSegmentSum (wasm): segmentIds must be 1-D with length x.shape[0]=${x.shape[0]}, got [${segmentIds.shape}]`);
  }
  const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
  const o = wasm.typedArrayFromHeap(out);
  o.fill(0);
  const xv = wasm.typedArrayFromHeap(x);
  const ids = wasm.typedArrayFromHeap(segmentIds);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) o[dst + j]! += xv[src + j]!;
  }
  return out;
}

/** perm swapping the last two axes of a rank-r tensor. */
function swapLast2(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return perm;
}

/** Wraps the wasm BatchMatMul so that transposed operands are materialised before the product. */
function explicitTransposeMatMul(original: tf.KernelConfig): tf.KernelConfig {
  const transpose = tf.getKernel(tf.Transpose, 'wasm')!.kernelFunc;
  const kernelFunc = ((args: KernelFuncArgs) => {
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const wasm = args.backend as BackendWasm;
    if (!transposeA && !transposeB) return plainProduct(a, b, wasm, args);
    const temps: tf.TensorInfo[] = [];
    const t = (x: tf.TensorInfo) => {
      const y = transpose({ inputs: { x }, backend: wasm, attrs: { perm: swapLast2(x.shape.length) } }) as tf.TensorInfo;
      temps.push(y);
      return y;
    };
    try {
      const plainA = transposeA ? t(a) : a;
      const plainB = transposeB ? t(b) : b;
      return plainProduct(plainA, plainB, wasm, args);
    } finally {
      for (const x of temps) wasm.disposeData(x.dataId);
    }
  }) as tf.KernelFunc;
  /** a [..., M, K] x b [..., K, N] without transposes; equal batches run as 2-D products. */
  const plainProduct = (a: tf.TensorInfo, b: tf.TensorInfo, wasm: BackendWasm, args: KernelFuncArgs): tf.TensorInfo => {
    const attrs = { ...args.attrs, transposeA: false, transposeB: false };
    const batchA = a.shape.slice(0, -2);
    const batchB = b.shape.slice(0, -2);
    const batch = batchA.reduce((x, y) => x * y, 1);
    const sameBatch = batchA.length === batchB.length && batchA.every((d, i) => d === batchB[i]);
    if (batch <= 1 || !sameBatch) return original.kernelFunc({ ...args, inputs: { a, b }, attrs }) as tf.TensorInfo;
    const [M, K] = a.shape.slice(-2) as [number, number];
    const N = b.shape[b.shape.length - 1]!;
    const out = wasm.makeOutput([...batchA, M, N], 'float32');
    for (let i = 0; i < batch; i++) {
      // Fresh operands every iteration: XNNPACK caches the packed right-hand matrix by tensor id, so
      // reusing one buffer would silently reuse the first matrix. Views are re-read after every
      // allocation because the wasm heap may grow (and move).
      const ai = wasm.makeOutput([M, K], 'float32');
      const bi = wasm.makeOutput([K, N], 'float32');
      try {
        wasm.typedArrayFromHeap(ai).set(wasm.typedArrayFromHeap(a).subarray(i * M * K, (i + 1) * M * K));
        wasm.typedArrayFromHeap(bi).set(wasm.typedArrayFromHeap(b).subarray(i * K * N, (i + 1) * K * N));
        const oi = original.kernelFunc({ ...args, inputs: { a: ai, b: bi }, attrs }) as tf.TensorInfo;
        wasm.typedArrayFromHeap(out).set(wasm.typedArrayFromHeap(oi), i * M * N);
        wasm.disposeData(oi.dataId);
      } finally {
        wasm.disposeData(ai.dataId);
        wasm.disposeData(bi.dataId);
      }
    }
    return out;
  };
  return { ...original, kernelFunc };
}

const MISSING: tf.KernelConfig[] = [
  { kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: unsortedSegmentSum as tf.KernelFunc },
];

/** Registers the kernels tfjs-backend-wasm lacks. Called once by startWasm. */
export function registerWasmKernels(): void {
  for (const k of MISSING) {
    if (!tf.getKernel(k.kernelName, k.backendName)) tf.registerKernel(k);
  }
  const matmul = tf.getKernel(tf.BatchMatMul, 'wasm');
  if (matmul) {
    tf.unregisterKernel(tf.BatchMatMul, 'wasm');
    tf.registerKernel(explicitTransposeMatMul(matmul));
  }
}
