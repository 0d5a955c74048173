/**
 * The fused AdamW updates for webgpu: adamwUpdate (OspAdamWUpdate: new param, exp_avg and exp_avg_sq
 * of one parameter) and adamwUpdateMulti (OspAdamWUpdateMulti: many parameters in place, a few per
 * dispatch).
 */
import type * as tf from '@tensorflow/tfjs';
import { OspError, ShapeError } from '../../errors.ts';
import type { AdamWUpdateAttrs } from '../../ops/adamw_update.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import {
  checkFloat,
  f32,
  FLAT_LANES,
  gpuBuffer,
  numel,
  program,
  rawBackend,
  recordDispatch,
  show,
  type Backend,
  type KernelFuncArgs,
  type Program,
} from './program.ts';

/**
 * Three programs, one per output (tfjs programs have one output). Measured alternatives: one
 * program writing a packed [3, ...] buffer needs three Slice copies afterwards (tfjs-webgpu has no
 * shallow slice), i.e. 4 reads + 3 writes + 3 copies; the three programs read 2 + 2 + 4 tensors and
 * write 3, with the parameter program recomputing m' and v' in registers.
 */
export function adamwUpdate({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = b as unknown as Backend;
  const { param, grad, expAvg, expAvgSq } = inputs as Record<'param' | 'grad' | 'expAvg' | 'expAvgSq', tf.TensorInfo>;
  const a = attrs as unknown as AdamWUpdateAttrs;
  for (const [name, t] of [
    ['param', param],
    ['grad', grad],
    ['expAvg', expAvg],
    ['expAvgSq', expAvgSq],
  ] as const) {
    checkFloat(KERNELS.adamwUpdate, name, t);
    if (t.shape.length !== param.shape.length || t.shape.some((s, i) => s !== param.shape[i])) {
      throw new ShapeError(`${KERNELS.adamwUpdate} (webgpu): ${name} has shape ${show(t.shape)}, param ${show(param.shape)}`);
    }
  }
  const size = numel(param.shape);
  const flat = (file: string, names: string[], uniforms: string): Program =>
    program({
      file,
      outputShape: [...param.shape],
      inputs: names,
      workgroups: Math.ceil(size / FLAT_LANES),
      workgroupSize: FLAT_LANES,
      uniforms,
      size: true,
    });
  const m = backend.runWebGPUProgram(
    flat('adamw_exp_avg', ['grad', 'expAvg'], 'beta1 : f32, oneMinusBeta1 : f32,'),
    [grad, expAvg],
    'float32',
    [f32(a.beta1), f32(1 - a.beta1)],
  );
  const v = backend.runWebGPUProgram(
    flat('adamw_exp_avg_sq', ['grad', 'expAvgSq'], 'beta2 : f32, oneMinusBeta2 : f32,'),
    [grad, expAvgSq],
    'float32',
    [f32(a.beta2), f32(1 - a.beta2)],
  );
  const p = backend.runWebGPUProgram(
    flat(
      'adamw_param',
      ['param', 'grad', 'expAvg', 'expAvgSq'],
      'beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, eps : f32, decay : f32, stepSize : f32, bc2Sqrt : f32,',
    ),
    [param, grad, expAvg, expAvgSq],
    'float32',
    [f32(a.beta1), f32(1 - a.beta1), f32(a.beta2), f32(1 - a.beta2), f32(a.eps), f32(a.decay), f32(a.lr / a.bc1), f32(a.bc2Sqrt)],
  );
  return [p, m, v];
}

const FIELDS = ['param', 'grad', 'expAvg', 'expAvgSq'] as const;
/**
 * Elements per lane of OspAdamWUpdateMulti (strided by the workgroup's lanes): the segment lookup and
 * coefficient loads are paid once per lane. 4 was the fastest of 1 / 4 / 16 for the packed one-program
 * update on lavapipe (bench/RESULTS_webgpu.md, "AdamW: dispatch overhead").
 */
const MULTI_PER_LANE = 4;
/** Elements one OspAdamWUpdateMulti workgroup updates. */
export const MULTI_WORKGROUP_ELEMENTS = FLAT_LANES * MULTI_PER_LANE;
/** The fields OspAdamWUpdateMulti writes in place. */
const WRITTEN = new Set<string>(['param', 'expAvg', 'expAvgSq']);

/**
 * Parameters one OspAdamWUpdateMulti dispatch updates: four storage bindings each (param, grad, expAvg,
 * expAvgSq), within the device's storage-buffer, binding and uniform-size limits.
 */
export function paramsPerDispatch(device: GPUDevice): number {
  const l = device.limits;
  const byBindings = Math.min(l.maxStorageBuffersPerShaderStage, l.maxBindingsPerBindGroup - 1) / FIELDS.length;
  // The uniform: 16 bytes, then 48 per parameter.
  const byUniform = (l.maxUniformBufferBindingSize - 16) / 48;
  return Math.max(1, Math.floor(Math.min(byBindings, byUniform)));
}

/**
 * WGSL of the in-place update of k parameters. Workgroup w (FLAT_LANES lanes, MULTI_PER_LANE elements
 * each, strided by the lanes) belongs to the last parameter whose first workgroup is <= w; the switch
 * picks that parameter's bindings. The arithmetic is adamw_param.wgsl's, operation by operation.
 * Uniform `info`: workgroups in all, per parameter (first workgroup, elements) and its coefficients
 * (decay, lr / bc1, bc2Sqrt, eps) and (beta1, 1 - beta1, beta2, 1 - beta2).
 */
export function adamwMultiCode(k: number): string {
  const bindings: string[] = [];
  const cases: string[] = [];
  for (let i = 0; i < k; i++) {
    FIELDS.forEach((f, j) =>
      bindings.push(`@group(0) @binding(${1 + 4 * i + j}) var<storage, ${WRITTEN.has(f) ? 'read_write' : 'read'}> ${f}${i} : array<f32>;`),
    );
    cases.push(`    case ${i}u: {
      for (var r = 0u; r < PER_LANE; r++) {
        let e = base + r * LANES;
        if (e < n) {
          let x = adamw(param${i}[e], grad${i}[e], expAvg${i}[e], expAvgSq${i}[e], a, b);
          param${i}[e] = x.x;
          expAvg${i}[e] = x.y;
          expAvgSq${i}[e] = x.z;
        }
      }
    }`);
  }
  return `// OspAdamWUpdateMulti over ${k} parameters (generated by src/backend/webgpu/adamw.ts).
const K : u32 = ${k}u;
const LANES : u32 = ${FLAT_LANES}u;
const PER_LANE : u32 = ${MULTI_PER_LANE}u;
struct Info {
  workgroups : vec4<u32>,
  first : array<vec4<u32>, K>,
  coef : array<vec4<f32>, 2 * K>,
}
@group(0) @binding(0) var<uniform> info : Info;
${bindings.join('\n')}

// New (param, expAvg, expAvgSq) of one element, a = (decay, lr / bc1, bc2Sqrt, eps), b = (beta1, 1 - beta1, beta2, 1 - beta2).
fn adamw(p : f32, g : f32, m0 : f32, v0 : f32, a : vec4<f32>, b : vec4<f32>) -> vec3<f32> {
  let m = m0 * b.x + g * b.y;
  let v = v0 * b.z + (g * g) * b.w;
  let denom = sqrt(v) / a.z + a.w;
  return vec3<f32>(p * a.x - (m / denom) * a.y, m, v);
}

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>, @builtin(local_invocation_index) lane : u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= info.workgroups.x) {
    return;
  }
  var s = 0u;
  for (var j = 1u; j < K; j++) {
    if (w >= info.first[j].x) {
      s = j;
    }
  }
  let seg = info.first[s];
  let base = (w - seg.x) * LANES * PER_LANE + lane;
  let n = seg.y;
  let a = info.coef[2u * s];
  let b = info.coef[2u * s + 1u];
  switch s {
${cases.join('\n')}
    default: {}
  }
}
`;
}

const multiPipelines = new WeakMap<GPUDevice, Map<number, GPUComputePipeline>>();

function multiPipeline(device: GPUDevice, k: number): GPUComputePipeline {
  let byK = multiPipelines.get(device);
  if (!byK) multiPipelines.set(device, (byK = new Map()));
  let p = byK.get(k);
  if (!p) {
    const module = device.createShaderModule({ code: adamwMultiCode(k), label: `osp_adamw_multi_${k}` });
    p = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `osp_adamw_multi_${k}` });
    byK.set(k, p);
  }
  return p;
}

let multiDispatches = 0;
/** Dispatches recorded by OspAdamWUpdateMulti since start-up (tests and benchmarks count them). */
export function adamwMultiDispatchCount(): number {
  return multiDispatches;
}

/**
 * OspAdamWUpdateMulti: every parameter's update in place, paramsPerDispatch(device) parameters per
 * dispatch (one program pass reading param, grad, expAvg and expAvgSq once and writing three, where
 * OspAdamWUpdate runs three programs per parameter). The op (adamwUpdateMulti) has made each written
 * tensor the sole owner of its buffer; a shared one is refused here rather than written through.
 */
export function adamwUpdateMulti({ inputs, backend: b, attrs }: KernelFuncArgs): tf.TensorInfo[] {
  const backend = rawBackend(b);
  const { slots } = attrs as unknown as { slots: AdamWUpdateAttrs[] };
  const ins = inputs as Record<string, tf.TensorInfo | undefined>;
  const name = `${KERNELS.adamwUpdateMulti} (webgpu)`;
  if (Object.keys(ins).length !== FIELDS.length * slots.length) {
    throw new ShapeError(`${name}: ${Object.keys(ins).length} inputs for ${slots.length} slots (expected 4 per slot)`);
  }
  const params: { ts: tf.TensorInfo[]; a: AdamWUpdateAttrs }[] = [];
  for (let i = 0; i < slots.length; i++) {
    const ts = FIELDS.map((f) => {
      const t = ins[`${f}${i}`];
      if (!t) throw new ShapeError(`${name}: input '${f}${i}' is missing`);
      checkFloat(KERNELS.adamwUpdateMulti, `${f}${i}`, t);
      return t;
    });
    const shape = ts[0]!.shape;
    ts.forEach((t, j) => {
      if (t.shape.length !== shape.length || t.shape.some((s, d) => s !== shape[d])) {
        throw new ShapeError(`${name}: ${FIELDS[j]}${i} has shape ${show(t.shape)}, param${i} ${show(shape)}`);
      }
    });
    if (numel(shape) > 0) params.push({ ts, a: slots[i]! });
  }
  const written = new Set<object>();
  for (const { ts } of params) {
    ts.forEach((t, j) => {
      if (!WRITTEN.has(FIELDS[j]!)) return;
      if (backend.tensorMap.get(t.dataId).refCount !== 1 || written.has(t.dataId)) {
        throw new OspError(`${name}: ${FIELDS[j]} of a slot shares its buffer; an in-place update would change another tensor`);
      }
      written.add(t.dataId);
    });
  }
  for (const { ts } of params) {
    if (written.has(ts[1]!.dataId)) throw new OspError(`${name}: a gradient shares its buffer with a tensor the update writes`);
  }
  // Every buffer first (a tensor held as a texture fails here), so that an error leaves no parameter updated.
  const buffers = params.map(({ ts }) => ts.map((t) => gpuBuffer(backend, t)));
  const per = paramsPerDispatch(backend.device);
  for (let start = 0; start < params.length; start += per) {
    const chunk = params.slice(start, start + per);
    const k = chunk.length;
    const bytes = new ArrayBuffer(16 + 48 * k);
    const u32 = new Uint32Array(bytes);
    const f32s = new Float32Array(bytes);
    let workgroups = 0;
    chunk.forEach(({ ts, a }, j) => {
      const n = numel(ts[0]!.shape);
      u32[4 + 4 * j] = workgroups;
      u32[4 + 4 * j + 1] = n;
      workgroups += Math.ceil(n / MULTI_WORKGROUP_ELEMENTS);
      f32s.set([a.decay, a.lr / a.bc1, a.bc2Sqrt, a.eps, a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2], 4 + 4 * k + 8 * j);
    });
    u32[0] = workgroups;
    recordDispatch(
      backend,
      multiPipeline(backend.device, k),
      bytes,
      buffers.slice(start, start + k).flat(),
      chunk.flatMap(({ ts }) => ts.map((t) => t.dataId)),
      workgroups,
      chunk.flatMap(({ ts }) => ts.filter((_, j) => WRITTEN.has(FIELDS[j]!)).map((t) => t.dataId)),
    );
    multiDispatches++;
  }
  return [];
}
