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
