/**
 * The `native` backend: tfjs's cpu backend (its tensor storage and every kernel) with the hot kernels
 * replaced by the C++ kernel pack in kernels/native, whose matrix products run on OpenBLAS or on its own
 * portable GEMM (OSP_NATIVE_GEMM, see addon.ts). It is registered under its own name, so `cpu` stays the
 * untouched pure-JS reference.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../../errors.ts';
import { registerSoftmaxGradient } from '../../ops/softmax_grad.ts';
import type { BackendInfo } from '../index.ts';
import { loadNativeAddon, type NativeAddon } from './addon.ts';
import { NativeCpuBackend, poolLimitBytes } from './backend.ts';
import { NATIVE, nativeKernels } from './kernels.ts';

let ready = false;

/** Whether the addon loads, without starting the backend (for `auto`). */
export function probeNative(): { available: boolean; detail: string } {
  try {
    return { available: true, detail: loadNativeAddon().info() };
  } catch (e) {
    return { available: false, detail: (e as Error).message };
  }
}

function register(addon: NativeAddon): void {
  tf.registerBackend(NATIVE, () => new NativeCpuBackend(), 0);
  // Every cpu kernel, then the native overrides (a fallback keeps tfjs's cpu kernel for cases the
  // addon does not cover: other dtypes, rare layouts). A cpu kernel may keep a view of an input or
  // reuse its array, so the inputs of every cpu kernel leave the output pool (see backend.ts).
  const cpu = new Map(tf.getKernelsForBackend('cpu').map((k) => [k.kernelName, k]));
  // These three only add a reference to their input's storage (same dataId): nothing escapes.
  const sharesByRefCount = new Set<string>([tf.Reshape, tf.Identity, tf.Cast]);
  const escaping = (k: tf.KernelConfig): tf.KernelFunc => {
    const f = k.kernelFunc;
    if (sharesByRefCount.has(k.kernelName)) return f;
    return (args) => {
      const be = args.backend as NativeCpuBackend;
      for (const t of Object.values(args.inputs)) if (t) be.escape(t.dataId);
      return f(args);
    };
  };
  for (const k of cpu.values()) tf.registerKernel({ ...k, backendName: NATIVE, kernelFunc: escaping(k) });
  const base = (name: string) => {
    const k = cpu.get(name);
    if (!k) throw new Error(`native backend: tfjs has no cpu kernel '${name}' to fall back to`);
    return escaping(k) as Parameters<typeof nativeKernels>[1] extends (n: string) => infer F ? F : never;
  };
  for (const [kernelName, kernelFunc] of nativeKernels(addon, base)) {
    if (tf.getKernel(kernelName, NATIVE)) tf.unregisterKernel(kernelName, NATIVE);
    tf.registerKernel({ kernelName, backendName: NATIVE, kernelFunc: kernelFunc as tf.KernelFunc });
  }
}

/**
 * Starts the native backend. Threads: OSP_NATIVE_THREADS, else one per core (OpenBLAS and the
 * addon's own pool share the number). Output pool: OSP_NATIVE_POOL_MB, else a quarter of the memory.
 * GEMM: OSP_NATIVE_GEMM (applied when the addon loads). The detail line names the GEMM in use, e.g.
 * "native kernels over OpenBLAS (...)" or "native kernels over portable AVX2 GEMM".
 */
export async function startNative(): Promise<BackendInfo> {
  const addon = loadNativeAddon();
  if (!ready) {
    const env = process.env.OSP_NATIVE_THREADS;
    if (env !== undefined) {
      const n = Number(env);
      if (!Number.isInteger(n) || n < 1)
        throw new BackendUnavailableError('native', `OSP_NATIVE_THREADS must be a positive integer, got '${env}'`);
      addon.setThreads(n);
    }
    poolLimitBytes(); // a bad OSP_NATIVE_POOL_MB fails here, with its message, not inside tfjs
    register(addon);
    registerSoftmaxGradient();
    ready = true;
  }
  if (!(await tf.setBackend(NATIVE))) throw new BackendUnavailableError('native', 'the tfjs cpu backend under it failed to initialise');
  await tf.ready();
  return { name: 'native', requested: 'native', detail: `native kernels over ${addon.info()}`, gpu: false };
}
