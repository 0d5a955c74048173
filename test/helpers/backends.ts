/**
 * The backends every cross-backend test runs on. webgpu needs an adapter (Mesa lavapipe without a
 * GPU) and native the built kernel pack; where one is missing its tests skip, the run ends with a
 * line saying how to enable them, and CI (OSP_REQUIRE_ALL=1) fails instead (test/setup/capabilities.ts).
 */
import type { ConcreteBackend } from '../../src/backend/index.ts';
import { has } from './capabilities.ts';

export const skipWebGPU = !has.webgpu;
export const skipNative = !has.native;

export const testBackends: ConcreteBackend[] = [
  'cpu',
  'wasm',
  ...(skipNative ? [] : (['native'] as const)),
  ...(skipWebGPU ? [] : (['webgpu'] as const)),
];
