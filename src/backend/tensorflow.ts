/**
 * The `tensorflow` backend: @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node (CPU), used when
 * the user has installed one. They are not dependencies of osp-lab because their install step
 * downloads libtensorflow from outside the npm registry, which fails on machines without internet.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../errors.ts';
import type { BackendInfo } from './index.ts';

const PACKAGES = [
  { name: '@tensorflow/tfjs-node-gpu', gpu: true },
  { name: '@tensorflow/tfjs-node', gpu: false },
] as const;

interface TfNodeProbe {
  available: boolean;
  gpu: boolean;
  detail: string;
}

let loaded: { name: string; gpu: boolean } | undefined;
const failures: string[] = [];

async function load(): Promise<{ name: string; gpu: boolean } | undefined> {
  if (loaded) return loaded;
  failures.length = 0;
  for (const pkg of PACKAGES) {
    try {
      // A variable specifier keeps bundlers and the type-checker from requiring the package.
      const specifier: string = pkg.name;
      await import(specifier);
      loaded = { name: pkg.name, gpu: pkg.gpu };
      return loaded;
    } catch (e) {
      failures.push(`${pkg.name}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return undefined;
}

/** Whether tfjs-node(-gpu) can be loaded, without switching backends. */
export async function probeTensorflow(): Promise<TfNodeProbe> {
  const pkg = await load();
  return pkg ? { available: true, gpu: pkg.gpu, detail: pkg.name } : { available: false, gpu: false, detail: failures.join('; ') };
}

export async function startTensorflow(): Promise<BackendInfo> {
  const pkg = await load();
  if (!pkg) {
    throw new BackendUnavailableError(
      'tensorflow',
      'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed. Install one on a machine with ' +
        "internet access ('npm install @tensorflow/tfjs-node-gpu@4.22.0' for CUDA GPUs, or " +
        "'npm install @tensorflow/tfjs-node@4.22.0'), or choose --backend wasm|webgpu|cpu. " +
        `(${failures.join('; ')})`,
    );
  }
  if (!(await tf.setBackend('tensorflow'))) {
    throw new BackendUnavailableError('tensorflow', `${pkg.name} loaded but the 'tensorflow' backend failed to start`);
  }
  await tf.ready();
  return { name: 'tensorflow', requested: 'tensorflow', detail: pkg.name, gpu: pkg.gpu };
}
