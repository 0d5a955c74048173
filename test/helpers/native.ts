/**
 * Shared by the native kernel tests: NaN poisoning of the native backend's output pool, and the check that
 * an op runs its fused kernels (and its reference ops once they are switched off).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import type { NativeCpuBackend } from '../../src/backend/native/backend.ts';
import { hasKernel, setKernelsEnabled, type KernelName } from '../../src/ops/dispatch.ts';

/**
 * Leaves NaN-filled arrays of each size (in elements) in the native backend's output pool, which hands
 * them to the next kernel outputs of that size: a kernel that does not write every element shows NaN.
 */
export function poisonNative(...sizes: number[]): void {
  const be = tf.backend() as NativeCpuBackend;
  // All taken first, then all returned: a returned array is the next one f32Out hands out.
  const infos = sizes.map((n) => be.makeTensorInfo([n], 'float32', be.f32Out(n).fill(NaN)));
  for (const info of infos) be.disposeData(info.dataId);
}

/**
 * Profiles f twice: with the op's kernels (forward and backward: both must run, `referenceOp` must not) and
 * with the forward kernel switched off (neither kernel runs, `referenceOp` does).
 */
export async function expectKernelsThenReference(
  f: () => Promise<unknown>,
  [forward, backward]: [KernelName, KernelName],
  referenceOp: string,
) {
  expect(hasKernel(forward) && hasKernel(backward)).toBe(true);
  const names = async () => new Set((await tf.profile(async () => void (await f()))).kernels.map((k) => k.name));
  const fused = await names();
  expect(fused.has(forward) && fused.has(backward)).toBe(true);
  expect(fused.has(referenceOp)).toBe(false);
  setKernelsEnabled([forward], false);
  try {
    const reference = await names();
    expect(reference.has(forward) || reference.has(backward)).toBe(false);
    expect(reference.has(referenceOp)).toBe(true);
  } finally {
    setKernelsEnabled([forward], true);
  }
}
