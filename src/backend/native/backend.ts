/**
 * The native backend's tensor storage: tfjs's MathBackendCPU plus a pool of the float32 arrays that native
 * kernels write their outputs into.
 *
 * Why: a training step allocates hundreds of megabytes of short-lived outputs. As fresh Float32Arrays they
 * are external memory to V8, which answers with a mark-compact every few dozen milliseconds (measured with
 * --trace-gc: about 30% of a d=128 step). Recycling them by length removes nearly all of it.
 *
 * Safety: an array returns to the pool only if a native kernel allocated it here (`owned`) and nothing else
 * can still see it. Anything that may hand the array out marks it escaped, permanently: reads
 * (`dataSync`/`data` return the backend's own array on this backend), and every tfjs cpu kernel, which may
 * keep a view of its input (slice's subarray) or reuse it for its output. Arrays written by users
 * (`tf.tensor(array)`) or moved in from another backend are never owned.
 */
import type { DataId } from '@tensorflow/tfjs';
import { totalmem } from 'node:os';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { BackendUnavailableError } from '../../errors.ts';

/**
 * Pooled bytes kept at most; beyond this, disposed arrays are left to the garbage collector. The pool
 * holds what one training step allocates (about 0.5 GB at d=128 and 0.9 GB at d=256 with B=16, T=128),
 * so the default is a quarter of the machine's memory; OSP_NATIVE_POOL_MB sets it.
 */
export function poolLimitBytes(): number {
  const env = process.env.OSP_NATIVE_POOL_MB;
  if (env === undefined) return Math.floor(totalmem() / 4);
  const mb = Number(env);
  if (!Number.isFinite(mb) || mb < 0)
    throw new BackendUnavailableError('native', `OSP_NATIVE_POOL_MB must be a number of megabytes >= 0, got '${env}'`);
  return mb * 1024 * 1024;
}

export class NativeCpuBackend extends MathBackendCPU {
  private readonly pool = new Map<number, Float32Array[]>();
  private readonly owned = new WeakSet<Float32Array>();
  private pooledBytes = 0;
  private readonly limit = poolLimitBytes();

  constructor() {
    super();
    // The cpu backend prints a tfjs-node banner on first use; osp-lab's backend line says what runs.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** An output array of n floats for a native kernel, recycled when possible; its contents are garbage. */
  f32Out(n: number): Float32Array {
    const list = this.pool.get(n);
    const a = list?.pop();
    if (a) {
      this.pooledBytes -= a.byteLength;
      return a;
    }
    const fresh = new Float32Array(n);
    if (n > 0) this.owned.add(fresh);
    return fresh;
  }

  /** Marks the storage of a tensor as visible outside the native kernels: never recycled. */
  escape(dataId: DataId): void {
    const values = this.data.get(dataId)?.values;
    if (values instanceof Float32Array) this.owned.delete(values);
  }

  override readSync(dataId: DataId) {
    this.escape(dataId);
    return super.readSync(dataId);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const released = super.disposeData(dataId, force);
    if (released && values instanceof Float32Array && this.owned.has(values) && this.pooledBytes + values.byteLength <= this.limit) {
      let list = this.pool.get(values.length);
      if (!list) this.pool.set(values.length, (list = []));
      list.push(values);
      this.pooledBytes += values.byteLength;
    }
    return released;
  }

  override dispose(): void {
    this.pool.clear();
    this.pooledBytes = 0;
    super.dispose();
  }
}
