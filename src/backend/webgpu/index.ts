/**
 * WebGPU through Dawn (the `webgpu` npm package). tfjs-backend-webgpu registers itself only if
 * `navigator.gpu` exists when its module is evaluated, so Dawn's globals are installed first and the
 * backend is imported dynamically afterwards. Dawn keeps the process alive until `navigator.gpu` is
 * dropped again: stopWebGPU does that.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../../errors.ts';
import type { BackendInfo } from '../index.ts';

interface GpuProbe {
  available: boolean;
  softwareAdapter: boolean;
  detail: string;
}

type NavigatorHolder = { navigator?: { gpu?: GPU } };

let gpu: GPU | undefined;

/** Installs Dawn's WebGPU globals once and returns its GPU object. */
async function dawn(): Promise<GPU> {
  if (gpu) return gpu;
  // Lavapipe (and Dawn's Vulkan loader) want a runtime dir; headless CI machines often lack one.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let mod: typeof import('webgpu');
  try {
    mod = await import('webgpu');
  } catch (e) {
    throw new BackendUnavailableError('webgpu', `the 'webgpu' package (Dawn) failed to load: ${(e as Error).message}`);
  }
  Object.assign(globalThis, mod.globals);
  gpu = mod.create([]);
  return gpu;
}

function describeAdapter(adapter: GPUAdapter): { detail: string; software: boolean } {
  const info = adapter.info;
  const software =
    (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    info.architecture === 'software' ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.device} ${info.description}`);
  const detail = [info.vendor, info.architecture, info.description || info.device].filter((s) => s).join(' / ');
  return { detail: detail || 'unknown adapter', software };
}

const NO_ADAPTER_HELP =
  'no WebGPU adapter found. On a machine without a GPU install Mesa >= 25 (lavapipe): on Debian 12, ' +
  "add the bookworm-backports suite and run 'apt-get install -t bookworm-backports mesa-vulkan-drivers'";

/** Asks Dawn for an adapter without starting tfjs on it. */
export async function probeWebGPU(): Promise<GpuProbe> {
  try {
    const adapter = await (await dawn()).requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { available: false, softwareAdapter: false, detail: NO_ADAPTER_HELP };
    const { detail, software } = describeAdapter(adapter);
    return { available: true, softwareAdapter: software, detail };
  } catch (e) {
    return { available: false, softwareAdapter: false, detail: (e as Error).message };
  }
}

/** Starts tfjs-backend-webgpu on Dawn's best adapter. */
export async function startWebGPU(): Promise<BackendInfo> {
  const g = await dawn();
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new BackendUnavailableError('webgpu', NO_ADAPTER_HELP);
  const { detail, software } = describeAdapter(adapter);
  (globalThis as NavigatorHolder).navigator ??= {};
  (globalThis as NavigatorHolder).navigator!.gpu = g;
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) {
    throw new BackendUnavailableError('webgpu', `tfjs-backend-webgpu failed to initialise on ${detail}`);
  }
  await tf.ready();
  return { name: 'webgpu', requested: 'webgpu', detail, gpu: !software, softwareAdapter: software };
}

/** Drops the reference to Dawn so that Node can exit. */
export async function stopWebGPU(): Promise<void> {
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  const nav = (globalThis as NavigatorHolder).navigator;
  if (nav) delete nav.gpu;
  gpu = undefined;
}
