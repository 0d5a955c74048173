/**
 * tfjs-backend-wasm (XNNPACK with SIMD). In Node it runs single-threaded. It lacks some kernels the
 * model's backward pass needs; kernels.ts supplies them, registered once when the backend starts.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../../errors.ts';
import type { BackendInfo } from '../index.ts';
import { registerWasmKernels } from './kernels.ts';

let registered = false;

export async function startWasm(): Promise<BackendInfo> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    throw new BackendUnavailableError('wasm', `@tensorflow/tfjs-backend-wasm failed to load: ${(e as Error).message}`);
  }
  if (!(await tf.setBackend('wasm'))) {
    throw new BackendUnavailableError('wasm', 'the WebAssembly module failed to initialise');
  }
  await tf.ready();
  if (!registered) {
    registerWasmKernels();
    registered = true;
  }
  return { name: 'wasm', requested: 'wasm', detail: 'tfjs wasm (XNNPACK, SIMD, 1 thread)', gpu: false };
}
