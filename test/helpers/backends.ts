/**
 * The backends every cross-backend test runs on. None is skipped silently: webgpu needs an adapter
 * (Mesa lavapipe without a GPU) and native needs the built kernel pack (npm run build:native); a
 * machine without one sets OSP_SKIP_WEBGPU=1 or OSP_SKIP_NATIVE=1 and the tests say so by their absence.
 */
import type { ConcreteBackend } from '../../src/backend/index.ts';

export const skipWebGPU = process.env.OSP_SKIP_WEBGPU === '1';
export const skipNative = process.env.OSP_SKIP_NATIVE === '1';

export const testBackends: ConcreteBackend[] = [
  'cpu',
  'wasm',
  ...(skipNative ? [] : (['native'] as const)),
  ...(skipWebGPU ? [] : (['webgpu'] as const)),
];
