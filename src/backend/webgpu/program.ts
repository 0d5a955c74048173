/**
 * What every WGSL kernel of kernels.ts is built with: the parts of tfjs-backend-webgpu's program and
 * backend types osp-lab uses, wgslSource (kernels/wgsl, read once), program (a tfjs WebGPU program from
 * a WGSL file, its constants and uniforms), the row and column layouts, uniform and shape helpers, the
 * float32 check and sumAll.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { OspError, ShapeError } from '../../errors.ts';

export type KernelFuncArgs = Parameters<tf.KernelFunc>[0];
export type Uniform = { type: 'float32' | 'int32'; data: number[] };

/** The parts of tfjs's WebGPUProgram that osp-lab's programs set. */
export interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}

/** The parts of tfjs-backend-webgpu's WebGPUBackend the kernels use. */
export interface Backend {
  /** The WebGPU device (its limits bound the workgroup memory a program may declare). */
  device: GPUDevice;
  runWebGPUProgram(program: Program, inputs: tf.TensorInfo[], outputDtype: tf.DataType, uniforms?: Uniform[]): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

/**
 * tfjs-backend-webgpu 4.22's internals a kernel needs to record its own dispatch (its own pipeline and
 * bind group, e.g. writing its inputs in place) into the backend's command stream: recordDispatch.
 */
export interface RawBackend extends Backend {
  queue: GPUQueue;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  /** Data used by commands not yet submitted: their disposal waits for the submit. */
  commandQueueOwnedIds: WeakSet<object>;
  uniformPendingDisposal: GPUBuffer[];
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer };
  tensorMap: { get(dataId: object): { resource: unknown; values: unknown; refCount: number } };
  uploadToGPU(dataId: object): void;
  read(dataId: object): Promise<unknown>;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

const RAW_METHODS = ['uploadToGPU', 'read', 'ensureCommandEncoderReady', 'endComputePassEncoder', 'submitQueue'] as const;
const RAW_FIELDS = ['queue', 'commandQueueOwnedIds', 'uniformPendingDisposal', 'bufferManager', 'tensorMap'] as const;

/**
 * The backend as a RawBackend, after checking that the internals recordDispatch and gpuBuffer use are
 * there (the package is pinned; an upgrade that moved them fails here, by name, not mid-dispatch).
 */
export function rawBackend(backend: unknown): RawBackend {
  const b = backend as Record<string, unknown>;
  const missing = [...RAW_METHODS.filter((m) => typeof b[m] !== 'function'), ...RAW_FIELDS.filter((f) => b[f] == null)];
  if (missing.length > 0) {
    throw new OspError(
      `webgpu: tfjs-backend-webgpu lacks the internals osp-lab's own dispatches use (written against 4.22.0): ${missing.join(', ')}`,
    );
  }
  return backend as RawBackend;
}

/** The GPU buffer of a tensor's data (uploaded first if it is still on the CPU). */
export function gpuBuffer(backend: RawBackend, t: tf.TensorInfo): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const resource = backend.tensorMap.get(t.dataId).resource;
  if (!(resource instanceof GPUBuffer)) throw new ShapeError('webgpu: a tensor held as a texture cannot be bound as a storage buffer');
  return resource;
}

/** Per tensor data written in place: how many times (reads started before a write must not cache). */
const writeCounts = new WeakMap<object, number>();
const tracked = new WeakSet<object>();

/**
 * Data about to be written in place: tfjs's CPU copy of values read back earlier is dropped, and a read
 * still in flight (started before the write, so it rightly returns the old values) does not cache them
 * when it lands: the backend's `read` is wrapped once to check that no write happened meanwhile.
 */
function markWritten(backend: RawBackend, dataIds: readonly object[]): void {
  if (dataIds.length === 0) return;
  if (!tracked.has(backend)) {
    tracked.add(backend);
    const read = backend.read.bind(backend);
    backend.read = async (dataId: object) => {
      const before = writeCounts.get(dataId) ?? 0;
      const values = await read(dataId);
      if ((writeCounts.get(dataId) ?? 0) !== before) {
        const data = backend.tensorMap.get(dataId);
        if (data) data.values = null;
      }
      return values;
    };
  }
  for (const id of dataIds) {
    writeCounts.set(id, (writeCounts.get(id) ?? 0) + 1);
    backend.tensorMap.get(id).values = null;
  }
}

/**
 * Records one dispatch of `pipeline` into the backend's open compute pass, as runWebGPUProgram does:
 * `uniform` (bytes) becomes binding 0, `buffers` bindings 1.., `dataIds` are kept alive until the
 * submit, and the queue is submitted every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches. `written`: the
 * data the dispatch writes in place (markWritten). Not seen by tf.time / tf.profile's kernel timings.
 */
export function recordDispatch(
  backend: RawBackend,
  pipeline: GPUComputePipeline,
  uniform: ArrayBuffer,
  buffers: GPUBuffer[],
  dataIds: object[],
  workgroups: number,
  written: object[] = [],
): void {
  markWritten(backend, written);
  const u = backend.bufferManager.acquireBuffer(uniform.byteLength, GPUBufferUsage.COPY_DST | GPUBufferUsage.UNIFORM);
  backend.queue.writeBuffer(u, 0, uniform);
  backend.uniformPendingDisposal.push(u);
  const bindGroup = backend.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: u } }, ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))],
  });
  for (const id of dataIds) backend.commandQueueOwnedIds.add(id);
  backend.ensureCommandEncoderReady();
  backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({});
  // Past the per-dimension limit the workgroups fold into y; the shader skips the excess.
  const maxX = backend.device.limits.maxComputeWorkgroupsPerDimension;
  const y = Math.ceil(workgroups / maxX);
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, bindGroup);
  backend.computePassEncoder.dispatchWorkgroups(Math.ceil(workgroups / y), y, 1);
  backend.dispatchCountInPass++;
  if ((tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number) <= backend.dispatchCountInPass) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/** First line of a program's user code that needs WGSL's subgroup builtins (see enableSubgroupsByMarker in index.ts). */
export const SUBGROUPS_MARKER = '// osp:enable subgroups';

const sources = new Map<string, string>();

/** The text of kernels/wgsl/<name>.wgsl, read once. */
export function wgslSource(name: string): string {
  let src = sources.get(name);
  if (src === undefined) {
    src = readFileSync(new URL(`../../../kernels/wgsl/${name}.wgsl`, import.meta.url), 'utf8');
    sources.set(name, src);
  }
  return src;
}

type Const = number | boolean;

/** WGSL declarations for the host-provided constants, e.g. `const WG : i32 = 64;`. */
function constants(consts: Record<string, Const>): string {
  return Object.entries(consts)
    .map(([k, v]) => (typeof v === 'boolean' ? `const ${k} : bool = ${v};` : `const ${k} : i32 = ${v};`))
    .join('\n');
}

interface ProgramSpec {
  file: string;
  outputShape: number[];
  inputs: string[];
  /** Number of workgroups (a flat dispatch: tfjs folds it into y/z past the per-dimension limit). */
  workgroups: number;
  workgroupSize: number;
  consts?: Record<string, Const>;
  /** Extra uniform fields, WGSL syntax with trailing commas. */
  uniforms?: string;
  /** Adds tfjs's `size` uniform (the output's element count). */
  size?: boolean;
  /** Shared WGSL files (kernels/wgsl/<name>.wgsl) prepended after the constants, in order. */
  libs?: string[];
  /** Generated WGSL used in place of kernels/wgsl/<file>.wgsl (`file` still names the program in its key). */
  code?: string;
}

export function program(spec: ProgramSpec): Program {
  const consts = spec.consts ?? {};
  const key = Object.entries(consts)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const p: Program = {
    outputShape: spec.outputShape,
    shaderKey: `osp_${spec.file}_${key}`,
    dispatchLayout: { x: spec.outputShape.map((_, i) => i) },
    dispatch: [Math.max(1, spec.workgroups), 1, 1],
    variableNames: spec.inputs,
    workgroupSize: [spec.workgroupSize, 1, 1],
    getUserCode: () => [constants(consts), ...(spec.libs ?? []).map(wgslSource), spec.code ?? wgslSource(spec.file)].join('\n'),
  };
  if (spec.uniforms) p.uniforms = spec.uniforms;
  if (spec.size) p.size = true;
  return p;
}

export const i32 = (v: number): Uniform => ({ type: 'int32', data: [v] });
export const f32 = (v: number): Uniform => ({ type: 'float32', data: [v] });
export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
export const show = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Row programs: LPR lanes per row and RPW rows per workgroup (one barrier per workgroup; see
 * rms_norm.wgsl). About 16 elements per lane, at least 64 lanes per workgroup.
 */
export function rowLayout(d: number): { LPR: number; RPW: number; lanes: number } {
  let LPR = 1;
  while (LPR < 256 && LPR * 16 < d) LPR *= 2;
  const lanes = Math.max(64, LPR);
  return { LPR, RPW: lanes / LPR, lanes };
}

/**
 * A row program over `rows` rows of `d` elements (kernels/wgsl/rows.wgsl, then `libs`): the layout of
 * rowLayout, one workgroup per RPW rows.
 */
export function rowProgram(
  file: string,
  outputShape: number[],
  inputs: string[],
  rows: number,
  d: number,
  uniforms: string,
  libs: string[] = [],
): Program {
  const { LPR, RPW, lanes } = rowLayout(d);
  return program({
    file,
    outputShape,
    inputs,
    workgroups: Math.ceil(rows / RPW),
    workgroupSize: lanes,
    consts: { LPR, RPW },
    uniforms,
    libs: ['rows', ...libs],
  });
}

/** Column reductions: 32 adjacent columns per workgroup, 8 lanes splitting the rows of each. */
export const COLS = 32;
export const SLICES = 8;
/** Lanes of the single-workgroup sums and of the elementwise programs. */
const SUM_LANES = 256;
export const FLAT_LANES = 64;

export function checkFloat(kernel: string, field: string, t: tf.TensorInfo): void {
  if (t.dtype !== 'float32') throw new ShapeError(`${kernel} (webgpu): ${field} must be float32, got ${t.dtype}`);
}

/** Sum (or sum of squares) of all elements of x into a [1] tensor. */
export function sumAll(backend: Backend, x: tf.TensorInfo, square: boolean): tf.TensorInfo {
  const p = program({
    file: 'sum_all',
    outputShape: [1],
    inputs: ['x'],
    workgroups: 1,
    workgroupSize: SUM_LANES,
    consts: { WG: SUM_LANES, SQUARE: square },
    uniforms: 'count : i32,',
  });
  return backend.runWebGPUProgram(p, [x], 'float32', [i32(numel(x.shape))]);
}
