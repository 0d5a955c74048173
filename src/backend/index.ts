/**
 * Starting a tfjs backend by name. One entry point, `startBackend`, for every backend osp-lab runs on:
 *
 * - `cpu`        tfjs's pure-JS backend (always available, slow, the numerical reference).
 * - `native`     the cpu backend with its hot kernels in C++ (kernels/native; built at install with a C++
 *                compiler): matrix products on OpenBLAS when its headers were found, else on the pack's
 *                portable GEMM (OSP_NATIVE_GEMM=openblas|portable picks one; the detail line names it).
 * - `wasm`       tfjs-backend-wasm (XNNPACK, SIMD; single-threaded in Node), plus the kernels it lacks.
 * - `webgpu`     tfjs-backend-webgpu on Dawn (the `webgpu` npm package): a real GPU through
 *                Vulkan/Metal/D3D12, or Mesa's lavapipe software adapter on machines without one.
 * - `tensorflow` tfjs-node-gpu, else tfjs-node, when the user installed one (optional: their install
 *                downloads libtensorflow, which machines without internet cannot do).
 * - `auto`       tensorflow on a GPU, else webgpu on a hardware adapter, else native, else wasm,
 *                else cpu.
 */
import { readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError, checkChoice } from '../errors.ts';
import { probeNative, startNative } from './native/index.ts';
import { startWasm } from './wasm/index.ts';
import { startWebGPU, stopWebGPU, probeWebGPU } from './webgpu/index.ts';
import { startTensorflow, probeTensorflow } from './tensorflow.ts';

export const BACKEND_NAMES = ['auto', 'cpu', 'native', 'wasm', 'webgpu', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
/** A backend that actually runs tensors (everything but `auto`). */
export type ConcreteBackend = Exclude<BackendName, 'auto'>;

export interface BackendInfo {
  /** The backend that is running now. */
  name: ConcreteBackend;
  /** What was asked for (`auto` or the same as `name`). */
  requested: BackendName;
  /** One line for logs: the device, adapter or library behind the backend. */
  detail: string;
  /** True when the backend computes on a GPU (webgpu on a hardware adapter, tfjs-node-gpu). */
  gpu: boolean;
  /** webgpu only: true on a software adapter such as Mesa lavapipe. */
  softwareAdapter?: boolean;
  /** For `auto`: why this backend was chosen (and why the ones before it were not). */
  reason?: string;
}

let current: BackendInfo | undefined;

/**
 * Starts the named backend and makes it tfjs's active backend.
 *
 * @example
 *   const info = await startBackend('auto');
 *   console.log(`backend: ${info.name} (${info.detail})`);
 */
export async function startBackend(name: string = 'auto'): Promise<BackendInfo> {
  const requested = checkChoice('backend', name, BACKEND_NAMES);
  let info: BackendInfo;
  switch (requested) {
    case 'auto':
      info = await startAuto();
      break;
    case 'cpu':
      info = await startCpu();
      break;
    case 'native':
      info = await startNative();
      break;
    case 'wasm':
      info = await startWasm();
      break;
    case 'webgpu':
      info = await startWebGPU();
      break;
    case 'tensorflow':
      info = await startTensorflow();
      break;
  }
  current = { ...info, requested };
  return current;
}

/** The backend started last by startBackend, if any. */
export function currentBackend(): BackendInfo | undefined {
  return current;
}

/**
 * Releases what a backend holds outside the JS heap (Dawn's device), so the process can exit.
 * Safe to call when nothing was started.
 */
export async function stopBackend(): Promise<void> {
  if (current?.name === 'webgpu') {
    // Leave tfjs on a backend that holds nothing native; webgpu tensors die with their backend.
    await tf.setBackend('cpu');
    await stopWebGPU();
  }
  current = undefined;
}

async function startCpu(): Promise<BackendInfo> {
  await tf.setBackend('cpu');
  await tf.ready();
  // tfjs-backend-cpu prints a banner recommending tfjs-node on first use in Node; osp-lab's own
  // backend line already says which backend runs, so mark the banner as shown.
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  return { name: 'cpu', requested: 'cpu', detail: 'tfjs cpu (pure JavaScript)', gpu: false };
}

/**
 * Whether this machine may have a hardware GPU adapter: on Linux a DRM render node or an NVIDIA
 * device file; elsewhere (macOS: Metal, Windows: D3D12) there always may be one.
 */
export function gpuDevicePresent(): boolean {
  if (process.platform !== 'linux') return true;
  const has = (dir: string, re: RegExp) => {
    try {
      return readdirSync(dir).some((n) => re.test(n));
    } catch {
      return false;
    }
  };
  return has('/dev/dri', /^renderD\d+$/) || has('/dev', /^nvidia\d+$/);
}

async function startAuto(): Promise<BackendInfo> {
  const skipped: string[] = [];
  const tfnode = await probeTensorflow();
  if (tfnode.available && tfnode.gpu) {
    const info = await startTensorflow();
    return { ...info, reason: `tensorflow: ${tfnode.detail} has a GPU` };
  }
  skipped.push(tfnode.available ? `tensorflow: ${tfnode.detail} has no GPU` : 'tensorflow: not installed');
  // auto takes webgpu only on a hardware adapter: without a GPU device Dawn is not even loaded (it
  // would print its Vulkan warnings on every command for nothing).
  const device = gpuDevicePresent();
  if (device) {
    const gpu = await probeWebGPU();
    if (gpu.available && !gpu.softwareAdapter) {
      const info = await startWebGPU();
      return { ...info, reason: `webgpu: hardware adapter (${skipped.join('; ')})` };
    }
    skipped.push(gpu.available ? 'webgpu: software adapter only' : 'webgpu: no adapter');
  } else skipped.push('webgpu: no GPU device');
  const native = probeNative();
  if (native.available) {
    const info = await startNative();
    return { ...info, reason: `native (${skipped.join('; ')})` };
  }
  skipped.push(`native: ${native.detail}`);
  try {
    const info = await startWasm();
    return { ...info, reason: `wasm (${skipped.join('; ')})` };
  } catch (e) {
    skipped.push(`wasm: ${(e as Error).message}`);
  }
  const info = await startCpu();
  return { ...info, reason: `cpu (${skipped.join('; ')})` };
}

export { BackendUnavailableError };
