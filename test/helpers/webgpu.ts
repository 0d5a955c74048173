/**
 * Shared by the WGSL kernel tests: the webgpu backend for a describe block, with WEBGPU_CPU_FORWARD
 * off (else tfjs runs tiny ops on the CPU and the NaN poisoning below would not reach the kernels),
 * and the poisoning itself.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';

/** Starts webgpu before the block's tests and stops it after them. Call inside a describe block. */
export function useWebGPU(): void {
  let cpuForward = true;
  beforeAll(async () => {
    await startBackend('webgpu');
    cpuForward = tf.env().getBool('WEBGPU_CPU_FORWARD');
    tf.env().set('WEBGPU_CPU_FORWARD', false);
  });
  afterAll(async () => {
    tf.env().set('WEBGPU_CPU_FORWARD', cpuForward);
    await stopBackend();
  });
}

/**
 * Leaves freed GPU buffers full of NaN for each size (in elements): tfjs's buffer manager hands
 * freed buffers of the same size to the next outputs, so a kernel that does not write every
 * element returns NaN there.
 */
export async function poison(...sizes: number[]): Promise<void> {
  const ts = sizes.map((n) => tf.tidy(() => tf.mul(tf.ones([n]), NaN)));
  await Promise.all(ts.map((t) => t.data()));
  tf.dispose(ts);
}

/**
 * The osp-lab programs tfjs has compiled on the current webgpu backend, by WGSL file (or generated
 * kernel) name, read from its pipeline cache (keys osp_<name>_<constants>_<tfjs's suffix>): proof
 * that a kernel ran, not only that it was registered.
 */
export function compiledPrograms(): Set<string> {
  const cache = (tf.backend() as unknown as { pipelineCache: Record<string, unknown> }).pipelineCache;
  const names = new Set<string>();
  for (const key of Object.keys(cache)) {
    const name = /^osp_([a-z_]+?)_(?:[A-Z]|_)/.exec(key)?.[1];
    if (name) names.add(name);
  }
  return names;
}
