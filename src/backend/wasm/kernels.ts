/**
 * Kernels tfjs-backend-wasm does not have, written in JS over the wasm heap. Each one is registered
 * only if the backend lacks it, so an upgrade of tfjs that adds a native one wins automatically.
 *
 * - UnsortedSegmentSum: the gradient of tf.gather (the token embedding's backward pass).
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
    throw new Error(
      `UnsortedSegmentSum (wasm): segmentIds must be 1-D with length x.shape[0]=${x.shape[0]}, got [${segmentIds.shape}]`,
    );
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

const MISSING: tf.KernelConfig[] = [
  { kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: unsortedSegmentSum as tf.KernelFunc },
];

/** Registers the kernels tfjs-backend-wasm lacks. Called once by startWasm. */
export function registerWasmKernels(): void {
  for (const k of MISSING) {
    if (!tf.getKernel(k.kernelName, k.backendName)) tf.registerKernel(k);
  }
}
