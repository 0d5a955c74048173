/**
 * WebGPU through Dawn (the `webgpu` npm package). tfjs-backend-webgpu registers itself only if
 * `navigator.gpu` exists when its module is evaluated, so Dawn's globals are installed first and the
 * backend is imported dynamically afterwards. Dawn keeps the process alive until `navigator.gpu` is
 * dropped again: stopWebGPU does that.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError } from '../../errors.ts';
import type { BackendInfo } from '../index.ts';
import { registerWebGPUKernels } from './kernels.ts';
import { SUBGROUPS_MARKER } from './program.ts';

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

let device: GPUDevice | undefined;

/**
 * tfjs assembles a shader as its own declarations followed by a program's code, so a program cannot
 * put the `enable` directive WGSL wants before every declaration. The device's createShaderModule
 * does it for code that carries SUBGROUPS_MARKER, with `diagnostic(off, subgroup_uniformity)`: those
 * shaders run one subgroup per workgroup, where every lane takes the same trip counts, which the
 * uniformity analysis cannot prove through tfjs's flat invocation index.
 */
function enableSubgroupsByMarker(d: GPUDevice): void {
  if (!d.features.has('subgroups')) return;
  const create = d.createShaderModule.bind(d);
  d.createShaderModule = (desc: GPUShaderModuleDescriptor) =>
    create(
      desc.code.includes(SUBGROUPS_MARKER)
        ? { ...desc, code: `enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n${desc.code}` }
        : desc,
    );
}

/** The adapter's subgroup size where it is one fixed size and the device has subgroups (lavapipe: the SIMD width). */
function fixedSubgroupSize(adapter: GPUAdapter): number | undefined {
  if (!device?.features.has('subgroups')) return undefined;
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  return info.subgroupMinSize !== undefined && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : undefined;
}

/**
 * Starts tfjs-backend-webgpu on Dawn's best adapter. osp-lab registers the backend factory itself
 * (the package's own registration runs only at import time, so it could not be restarted after
 * stopWebGPU) and asks for the adapter's full limits, as the package does.
 */
export async function startWebGPU(): Promise<BackendInfo> {
  const g = await dawn();
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new BackendUnavailableError('webgpu', NO_ADAPTER_HELP);
  const { detail, software } = describeAdapter(adapter);
  // Imported while navigator.gpu is unset, the package registers its kernels but not its factory.
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  (globalThis as NavigatorHolder).navigator ??= {};
  (globalThis as NavigatorHolder).navigator!.gpu = g;
  if (!tf.findBackendFactory('webgpu')) {
    // Priority 0: never tfjs's implicit default; osp-lab always selects a backend by name.
    tf.registerBackend(
      'webgpu',
      async () => {
        const l = adapter.limits;
        const features: GPUFeatureName[] = (['timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
        device = await adapter.requestDevice({
          requiredFeatures: features,
          requiredLimits: {
            maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
            // OspAdamWUpdateMulti binds four buffers per parameter: the more, the fewer dispatches.
            maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
            maxBufferSize: l.maxBufferSize,
            maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
          },
        });
        enableSubgroupsByMarker(device);
        return new WebGPUBackend(device, adapter.info);
      },
      0,
    );
  }
  if (!(await tf.setBackend('webgpu'))) {
    throw new BackendUnavailableError('webgpu', `tfjs-backend-webgpu failed to initialise on ${detail}`);
  }
  // osp-lab's fused WGSL kernels (kernels/wgsl), under the names of src/ops/dispatch.ts; on a
  // software adapter also the WGSL BatchMatMul in place of tfjs's.
  registerWebGPUKernels({ softwareAdapter: software, subgroupSize: fixedSubgroupSize(adapter) });
  await tf.ready();
  return { name: 'webgpu', requested: 'webgpu', detail, gpu: !software, softwareAdapter: software };
}

/** Disposes the tfjs backend and Dawn's device so that Node can exit; startWebGPU works again after. */
export async function stopWebGPU(): Promise<void> {
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  device?.destroy();
  device = undefined;
  const nav = (globalThis as NavigatorHolder).navigator;
  if (nav) delete nav.gpu;
  gpu = undefined;
}
