/**
 * Shared by the native kernel tests: NaN poisoning of the native backend's output pool.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeCpuBackend } from '../../src/backend/native/backend.ts';

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
