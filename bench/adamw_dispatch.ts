/**
 * How much of the AdamW update is dispatch overhead on webgpu, what a multi-tensor update could save,
 * and what the multi-tensor kernel (OspAdamWUpdateMulti) does save.
 *
 * 1. Per-call time of `adamwUpdate` (OspAdamWUpdate: three programs per parameter) and of its plain-tfjs
 *    reference (about a dozen elementwise programs) over sizes from 1 element to 1M, with
 *    bench/kernels_webgpu.ts's method: a run queues `inner` calls and awaits the last call's outputs with
 *    `await t.data()`; the median of `reps` runs after `warmup` runs, per call. Here `inner` is sized
 *    from the fastest warm-up run so that one run lasts about `runMs` (the wait for the last outputs,
 *    three readbacks and a queue round trip, is then spread over enough calls to vanish), and the runs
 *    of the things compared alternate (fused, reference, fused, ...) so that a change of the shared
 *    machine's load hits both alike. [258, 128] is also timed with kernels_webgpu's own inner count (3
 *    quick, 5 full) to show what that fixed wait does to its small rows. With --repeats K (default 1
 *    quick, 3 full) the table is measured K times: the median of the K medians and their range.
 * 2. The pure per-dispatch cost: one trivial osp program on one element (runWebGPUProgram directly),
 *    `tf.add` on [1] (the same plus tfjs's engine), and the fixed cost of one synchronisation. Also one
 *    bench-only program computing all three results into one packed [3 n] output (4 reads, 3 writes, one
 *    dispatch; checked equal to the kernel's results): what a single-dispatch update of one parameter
 *    would cost at best; and that program with 4 and 16 elements per lane (lavapipe pays per invocation).
 * 3. A line ms = intercept + slope * elements through each path's rows (weighted by 1 / ms^2, i.e. least
 *    relative error, so the 1-element rows count as much as the 1M-element ones).
 * 4. The bench model's optimizer step (kernels_webgpu.ts's model and Muon + AdamW optimizer, and an
 *    all-AdamW optimizer) on the three AdamW paths: the multi-tensor kernel (OspAdamWUpdateMulti, in
 *    place, the default), the per-parameter kernel (OspAdamWUpdate) and the reference. Per path: the
 *    dispatches of one AdamW group step (tfjs programs counted by wrapping runWebGPUProgram, plus the
 *    multi-tensor kernel's own) and its time (fixed gradients, same timing method, the last parameter
 *    read back); one fused update of a flat tensor with as many elements and the packed program once per
 *    AdamW parameter ("1 program per param", no optimizer bookkeeping), the bounds measured before the
 *    multi-tensor kernel existed; the whole training step (trainStep) on each path, alternating.
 *    "per-param bounds" = (per-param group step - flat update) / step and (per-param group step - 1
 *    program per param) / step.
 *
 *   npx tsx bench/adamw_dispatch.ts [--quick] [--repeats K]
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { currentBackend, startBackend, stopBackend } from '../src/backend/index.ts';
import { f32, FLAT_LANES, i32, program, type Backend, type Program, type Uniform } from '../src/backend/webgpu/program.ts';
import { createModel } from '../src/model/transformer.ts';
import { adamwUpdate } from '../src/ops/adamw_update.ts';
import { KERNELS, setKernelsEnabled } from '../src/ops/dispatch.ts';
import { adamwMultiDispatchCount } from '../src/backend/webgpu/adamw.ts';
import { createOptimizer } from '../src/optim/routing.ts';
import { trainStep } from '../src/train/step.ts';
import { Rng } from '../src/utils/rng.ts';
import { queuedRun } from './kernels_webgpu.ts';

/** kernels_webgpu.ts's bench model and batch. */
const MODEL = { hiddenSize: 128, numLayers: 4, numHeads: 4, maxSeqLen: 128, norm: 'ssnorm', embedding: 'embproj', vocabSize: 258 } as const;
const B = 16;
const T = 128;
const ATTRS = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1 - 3e-5, bc1: 0.5, bc2Sqrt: 0.3 };

export interface Range {
  /** Median over repeats of each repeat's median. */
  ms: number;
  min: number;
  max: number;
}

export interface SizeRow {
  shape: number[];
  elements: number;
  /** ms per call, fused (OspAdamWUpdate). */
  fused: Range;
  /** ms per call, reference (plain tfjs ops). */
  reference: Range;
  /** ms per call of one program computing all three results into one packed [3 n] output. */
  packed: Range;
  fusedDispatches: number;
  referenceDispatches: number;
  /** Queued calls per timed run (first repeat), fused and reference. */
  inner: [number, number];
}

export interface LineFit {
  /** ms per call at zero elements. */
  interceptMs: number;
  /** ms per element. */
  slopeMs: number;
}

/**
 * How AdamW's group step runs: the multi-tensor kernel (OspAdamWUpdateMulti, the default), the
 * per-parameter kernel (OspAdamWUpdate, three programs per parameter) or the plain-tfjs reference.
 */
export type AdamWPath = 'multi' | 'perParam' | 'reference';
const PATHS: AdamWPath[] = ['multi', 'perParam', 'reference'];

export interface StepRow {
  optimizer: string;
  adamwParams: number;
  adamwElements: number;
  /** Dispatches (programs and multi-tensor dispatches) of one AdamW group step, per path. */
  dispatches: Record<AdamWPath, number>;
  /** Programs run by one whole training step (kernels on). */
  stepDispatches: number;
  /** AdamW group step alone (fixed gradients), ms, per path. */
  adamwMs: Record<AdamWPath, number>;
  /** One fused update of a flat tensor with all the group's elements (3 programs), ms. */
  flatFusedMs: number;
  /** The packed one-program update once per AdamW parameter (its shape), ms. */
  packedPerParamMs: number;
  /** trainStep, ms, per path (the steps alternate). */
  stepMs: Record<AdamWPath, number>;
}

export interface AdamWDispatchReport {
  adapter: string;
  repeats: number;
  rows: SizeRow[];
  /** [258, 128] with kernels_webgpu.ts's inner count: ms per call, fused and reference. */
  shortRuns: { inner: number; fused: Range; reference: Range };
  /** The packed program with several elements per lane: per shape, ms per call for each count of `lanes`. */
  perLane: { lanes: number[]; shapes: number[][]; ms: Range[][] };
  /** One trivial 1-element program, ms per call (runWebGPUProgram). */
  program: Range;
  /** tf.add on [1], ms per call. */
  add: Range;
  /** `await t.data()` of a [1] result whose trivial program was just queued, ms. */
  sync: Range;
  fused: LineFit;
  reference: LineFit;
  packed: LineFit;
  steps: StepRow[];
}

interface Timing {
  warmup: number;
  reps: number;
  /** Minimum wall time of one run, ms (inner is sized from the fastest warm-up run). */
  runMs: number;
  maxInner: number;
}

type Call = () => tf.Tensor[];

function randn(shape: number[], seed: number, std = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from(new Rng(seed).normals(n, std)), shape);
}

function randInts(rows: number, cols: number, max: number, seed: number): tf.Tensor2D {
  const r = new Rng(seed);
  return tf.tensor2d(
    Int32Array.from({ length: rows * cols }, () => r.int(max)),
    [rows, cols],
    'int32',
  );
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: readonly number[]): Range => ({ ms: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

/** One run: `inner` queued calls of f, then the last call's outputs read back; ms per call. */
const run = (f: Call, inner: number): Promise<number> => queuedRun(f, inner);

/**
 * Median ms per call of each f (each returns the tensors it created; all are disposed), their runs
 * alternating so that a change of the machine's load hits all of them alike. Without fixedInner, each
 * f's inner is sized so that a run lasts about t.runMs.
 */
async function timeCalls(fs: readonly Call[], t: Timing, fixedInner?: number): Promise<{ ms: number; inner: number }[]> {
  const inner = fs.map(() => fixedInner ?? 1);
  const fastest = fs.map(() => Infinity);
  for (let w = 0; w < t.warmup; w++) {
    for (const [i, f] of fs.entries()) fastest[i] = Math.min(fastest[i]!, await run(f, inner[i]!));
  }
  if (fixedInner === undefined) {
    for (const i of fs.keys()) inner[i] = Math.min(t.maxInner, Math.max(1, Math.ceil(t.runMs / fastest[i]!)));
  }
  const ms = fs.map((): number[] => []);
  for (let r = 0; r < t.reps; r++) {
    for (const [i, f] of fs.entries()) ms[i]!.push(await run(f, inner[i]!));
  }
  return fs.map((_, i) => ({ ms: median(ms[i]!), inner: inner[i]! }));
}

/** Counts the programs run by f on the webgpu backend (runWebGPUProgram calls). */
function countDispatches<T>(f: () => T): { result: T; dispatches: number } {
  const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  let dispatches = 0;
  backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
    dispatches++;
    return original.apply(this, args);
  };
  const multi = adamwMultiDispatchCount();
  try {
    const result = f();
    return { result, dispatches: dispatches + adamwMultiDispatchCount() - multi };
  } finally {
    backend.runWebGPUProgram = original;
  }
}

/** Runs f with the AdamW kernels of one path switched on and the others off. */
function onPath<T>(path: AdamWPath, f: () => T): () => T {
  return () => {
    setKernelsEnabled([KERNELS.adamwUpdateMulti], path === 'multi');
    setKernelsEnabled([KERNELS.adamwUpdate], path !== 'reference');
    try {
      return f();
    } finally {
      setKernelsEnabled([KERNELS.adamwUpdate, KERNELS.adamwUpdateMulti], true);
    }
  };
}

/** Runs f with OspAdamWUpdate (and the multi-tensor kernel) off: adamwUpdate takes its reference path. */
const referenceOnly = <T>(f: () => T) => onPath('reference', f);

/** Weighted least squares ms = a + b n with weights 1 / ms^2 (least relative error). */
export function fitLine(points: readonly { n: number; ms: number }[]): LineFit {
  let sw = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const { n, ms } of points) {
    const w = 1 / (ms * ms);
    sw += w;
    sx += w * n;
    sy += w * ms;
    sxx += w * n * n;
    sxy += w * n * ms;
  }
  const slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx);
  return { interceptMs: (sy - slope * sx) / sw, slopeMs: slope };
}

/** A trivial program: one lane copies x * k into the output (adamw_exp_avg's shader, on one element). */
function trivialProgram(): Program {
  return program({
    file: 'adamw_exp_avg',
    outputShape: [1],
    inputs: ['grad', 'expAvg'],
    workgroups: 1,
    workgroupSize: FLAT_LANES,
    uniforms: 'beta1 : f32, oneMinusBeta1 : f32,',
    size: true,
  });
}

/**
 * What a single-dispatch update of one parameter would cost: adamw_param.wgsl's arithmetic writing p', m'
 * and v' into one packed [3 n] output (one program, 4 reads and 3 writes per element, the traffic of a
 * program that wrote three buffers). Not a usable kernel (the three results would still have to be
 * copied out: tfjs-webgpu has no views); a bound for one.
 */
const packedWgsl = (perLane: number) => `
fn main(index : i32) {
  let n = uniforms.n;
  for (var k = 0; k < ${perLane}; k++) {
    let i = index * ${perLane} + k;
    if (i < n) {
      let g = grad[i];
      let m = expAvg[i] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
      let v = expAvgSq[i] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
      let denom = sqrt(v) / uniforms.bc2Sqrt + uniforms.eps;
      result[i] = param[i] * uniforms.decay - (m / denom) * uniforms.stepSize;
      result[n + i] = m;
      result[2 * n + i] = v;
    }
  }
}
`;

/** The packed program; each lane updates `perLane` consecutive elements (1 like adamw_*.wgsl). */
function packedProgram(n: number, perLane = 1): Program {
  return {
    outputShape: [3 * n],
    shaderKey: `osp_bench_adamw_packed_${perLane}`,
    dispatchLayout: { x: [0] },
    dispatch: [Math.ceil(n / (FLAT_LANES * perLane)), 1, 1],
    variableNames: ['param', 'grad', 'expAvg', 'expAvgSq'],
    workgroupSize: [FLAT_LANES, 1, 1],
    uniforms:
      'n : i32, beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, eps : f32, decay : f32, stepSize : f32, bc2Sqrt : f32,',
    getUserCode: () => packedWgsl(perLane),
  };
}

/** The fused, reference and packed calls of one AdamW update on random tensors of `shape` (dispose with `free`). */
function updateCalls(
  shape: number[],
  seed: number,
): { fused: Call; reference: Call; packed: Call; packedLanes: (perLane: number) => Call; elements: number; free: () => void } {
  const p = randn(shape, seed);
  const g = randn(shape, seed + 1);
  const m = randn(shape, seed + 2, 0.1);
  const v = tf.tidy(() => tf.square(randn(shape, seed + 3, 0.1)));
  const fused: Call = () => {
    const u = adamwUpdate(p, g, m, v, ATTRS);
    return [u.param, u.expAvg, u.expAvgSq];
  };
  // Upload the inputs (a fresh tensor's values live on the host until a program reads them).
  tf.dispose(fused());
  const a = ATTRS;
  const uniforms: Uniform[] = [
    i32(p.size),
    ...[a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.eps, a.decay, a.lr / a.bc1, a.bc2Sqrt].map(f32),
  ];
  const backend = tf.backend() as unknown as Backend;
  const packedLanes =
    (perLane: number): Call =>
    () => [
      tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(packedProgram(p.size, perLane), [p, g, m, v], 'float32', uniforms)),
    ];
  const packed = packedLanes(1);
  return { fused, reference: referenceOnly(fused), packed, packedLanes, elements: p.size, free: () => tf.dispose([p, g, m, v]) };
}

interface SizeTimes {
  fused: number;
  reference: number;
  packed: number;
  inner: [number, number];
}

/** One repeat of the size table: per shape, fused and reference ms per call (alternating runs). */
async function sizeTimes(shapes: readonly number[][], t: Timing): Promise<SizeTimes[]> {
  const out: SizeTimes[] = [];
  for (const [i, shape] of shapes.entries()) {
    const c = updateCalls(shape, 100 + 10 * i);
    try {
      const [f, r, k] = await timeCalls([c.fused, c.reference, c.packed], t);
      out.push({ fused: f!.ms, reference: r!.ms, packed: k!.ms, inner: [f!.inner, r!.inner] });
    } finally {
      c.free();
    }
  }
  return out;
}

/** Dispatches of the fused and reference calls; checks that the packed program computes the fused results. */
async function dispatchCounts(shape: number[]): Promise<[number, number]> {
  const c = updateCalls(shape, 90);
  try {
    const fused = countDispatches(c.fused);
    const reference = countDispatches(c.reference);
    const [packed] = c.packed();
    const want = await Promise.all(fused.result.map((x) => x.data()));
    const got = await packed!.data();
    tf.dispose([...fused.result, ...reference.result, packed!]);
    const n = c.elements;
    want.forEach((w, k) => {
      for (let i = 0; i < n; i++) {
        if (got[k * n + i] !== w[i]) throw new Error(`packed AdamW program differs from OspAdamWUpdate at output ${k}, element ${i}`);
      }
    });
    return [fused.dispatches, reference.dispatches];
  } finally {
    c.free();
  }
}

/** Elements per lane of the packed program (per size: ms per call for each count); results checked against 1 per lane. */
async function laneTimes(shapes: readonly number[][], lanes: readonly number[], t: Timing): Promise<number[][]> {
  const out: number[][] = [];
  for (const [i, shape] of shapes.entries()) {
    const c = updateCalls(shape, 60 + 10 * i);
    try {
      const calls = lanes.map(c.packedLanes);
      const outs = calls.map((f) => f()[0]!);
      const vals = await Promise.all(outs.map((x) => x.data()));
      tf.dispose(outs);
      vals.forEach((v, k) => {
        if (v.some((x, j) => x !== vals[0]![j]))
          throw new Error(`packed program with ${lanes[k]} elements per lane differs from 1 per lane`);
      });
      out.push((await timeCalls(calls, t)).map((r) => r.ms));
    } finally {
      c.free();
    }
  }
  return out;
}

/** [258, 128] timed with kernels_webgpu.ts's fixed inner count (3 quick, 5 full). */
async function shortRun(t: Timing, inner: number): Promise<[number, number]> {
  const c = updateCalls([MODEL.vocabSize, MODEL.hiddenSize], 6);
  try {
    const [f, r] = await timeCalls([c.fused, c.reference], t, inner);
    return [f!.ms, r!.ms];
  } finally {
    c.free();
  }
}

/** ms per call of a trivial 1-element program and of tf.add on [1]; ms of one [1] readback. */
async function overheads(t: Timing): Promise<[number, number, number]> {
  const a = tf.tensor1d([1.5]);
  const b = tf.tensor1d([0.25]);
  try {
    const backend = tf.backend() as unknown as Backend;
    const uniforms: Uniform[] = [f32(0.9), f32(0.1)];
    const prog: Call = () => [
      tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(trivialProgram(), [a, b], 'float32', uniforms)),
    ];
    const add: Call = () => [tf.add(a, b)];
    tf.dispose(prog());
    tf.dispose(add());
    const [p, s] = await timeCalls([prog, add], t);
    // One synchronisation: a [1] result read back right after its (trivial) program was queued: the
    // submit, the copy to a staging buffer and its mapAsync.
    const syncs: number[] = [];
    for (let i = 0; i < Math.max(5, t.reps); i++) {
      const c = tf.add(a, b);
      const t0 = performance.now();
      await c.data();
      syncs.push(performance.now() - t0);
      c.dispose();
    }
    return [p!.ms, s!.ms, median(syncs)];
  } finally {
    tf.dispose([a, b]);
  }
}

async function stepRow(label: string, optimizerConfig: unknown, t: Timing, stepReps: { warmup: number; reps: number }): Promise<StepRow> {
  const model = createModel(MODEL, { seed: 0 });
  const optimizer = createOptimizer(optimizerConfig, model);
  const x = randInts(B, T, MODEL.vocabSize, 11);
  const y = randInts(B, T, MODEL.vocabSize, 12);
  const grads = new Map<string, tf.Tensor>();
  try {
    const adamw = optimizer.group('adamw');
    const names = [...model.params.keys()].filter((n) => optimizer.assignment.get(n) === 'adamw');
    const { value, grads: byVar } = tf.variableGrads(() => model.loss(x, y));
    value.dispose();
    for (const name of names) grads.set(name, byVar[model.params.get(name)!.name]!);
    tf.dispose(Object.values(byVar).filter((g) => ![...grads.values()].includes(g)));
    const elements = names.reduce((s, n) => s + model.params.get(n)!.size, 0);
    const lastParam = model.params.get(names[names.length - 1]!)!;

    // One AdamW group step with fixed gradients; the last parameter it updates is read back.
    const groupStep: Call = () => {
      adamw.step(model.params, grads, 1);
      return [tf.clone(lastParam)];
    };
    const counts = PATHS.map((path) => {
      const c = countDispatches(onPath(path, groupStep));
      tf.dispose(c.result);
      return c.dispatches;
    });
    // The same number of elements as one flat tensor: a multi-tensor update over flat storage.
    const flat = updateCalls([elements], 21);
    // One program per parameter (the packed program at each parameter's shape): a single-dispatch update.
    const perParam = names.map((n, i) => updateCalls([...model.params.get(n)!.shape], 40 + 10 * i));
    const packedPerParam: Call = () => {
      const outs = perParam.map((c) => c.packed()[0]!);
      // Reading the last output waits for all (one queue); tfjs defers the release of the others.
      tf.dispose(outs.slice(0, -1));
      return outs.slice(-1);
    };
    let group: { ms: number }[];
    try {
      group = await timeCalls([...PATHS.map((path) => onPath(path, groupStep)), flat.fused, packedPerParam], t);
    } finally {
      flat.free();
      for (const c of perParam) c.free();
    }

    const stepCount = countDispatches(() => trainStep(model, optimizer, x, y));
    await stepCount.result;
    // Whole steps, the three paths alternating.
    const ms: number[][] = PATHS.map(() => []);
    for (let i = 0; i < stepReps.warmup + stepReps.reps; i++) {
      for (const [j, path] of PATHS.entries()) {
        const t0 = performance.now();
        await onPath(path, () => trainStep(model, optimizer, x, y))();
        if (i >= stepReps.warmup) ms[j]!.push(performance.now() - t0);
      }
    }
    const byPath = (xs: number[]) => Object.fromEntries(PATHS.map((p, j) => [p, xs[j]!])) as Record<AdamWPath, number>;
    return {
      optimizer: label,
      adamwParams: names.length,
      adamwElements: elements,
      dispatches: byPath(counts),
      stepDispatches: stepCount.dispatches,
      adamwMs: byPath(group.slice(0, 3).map((g) => g.ms)),
      flatFusedMs: group[3]!.ms,
      packedPerParamMs: group[4]!.ms,
      stepMs: byPath(ms.map(median)),
    };
  } finally {
    tf.dispose([...grads.values(), x, y]);
    optimizer.dispose();
    model.dispose();
  }
}

/**
 * The measurements above on the webgpu backend (started here; the backend that was running before,
 * if any, is restarted afterwards). The size table, the fixed costs and the short runs are measured
 * `repeats` times (default 1 quick, 3 full): medians of the repeats' medians, with their range.
 */
export async function benchAdamWDispatch(opts: { quick?: boolean; repeats?: number } = {}): Promise<AdamWDispatchReport> {
  const previous = currentBackend();
  const info = await startBackend('webgpu');
  const quick = opts.quick ?? false;
  const repeats = opts.repeats ?? (quick ? 1 : 3);
  const t: Timing = quick ? { warmup: 2, reps: 3, runMs: 30, maxInner: 300 } : { warmup: 3, reps: 7, runMs: 60, maxInner: 600 };
  const shortTiming: Timing = { ...t, warmup: quick ? 1 : 2, reps: quick ? 3 : 7 };
  const shortInner = quick ? 3 : 5;
  const stepReps = quick ? { warmup: 1, reps: 3 } : { warmup: 2, reps: 5 };
  try {
    setKernelsEnabled('all', true);
    const d = MODEL.hiddenSize;
    const shapes = [[1], [128], [1024], [d, d], [MODEL.vocabSize, d], [4 * d, d], [2048, d], [1024, 1024]];
    const counts: [number, number][] = [];
    for (const shape of shapes) counts.push(await dispatchCounts(shape));
    const times: SizeTimes[][] = [];
    const shorts: [number, number][] = [];
    const fixed: [number, number, number][] = [];
    const lanes = [1, 4, 16];
    const laneShapes = [
      [MODEL.vocabSize, d],
      [1024, 1024],
    ];
    const laneRuns: number[][][] = [];
    for (let k = 0; k < repeats; k++) {
      times.push(await sizeTimes(shapes, t));
      shorts.push(await shortRun(shortTiming, shortInner));
      laneRuns.push(await laneTimes(laneShapes, lanes, t));
      fixed.push(await overheads(t));
    }
    const rows: SizeRow[] = shapes.map((shape, i) => ({
      shape,
      elements: shape.reduce((a, b) => a * b, 1),
      fused: range(times.map((r) => r[i]!.fused)),
      reference: range(times.map((r) => r[i]!.reference)),
      packed: range(times.map((r) => r[i]!.packed)),
      fusedDispatches: counts[i]![0],
      referenceDispatches: counts[i]![1],
      inner: times[0]![i]!.inner,
    }));
    const steps = [
      await stepRow('Muon + AdamW', { muon: { lr: 0.01, weightDecay: 0.01 }, adamw: { lr: 0.003, weightDecay: 0.01 } }, t, stepReps),
      await stepRow('all AdamW', { adamw: { lr: 0.003, weightDecay: 0.01 }, routing: [{ match: '*', optimizer: 'adamw' }] }, t, stepReps),
    ];
    return {
      adapter: `${info.detail}${info.softwareAdapter ? ' (software)' : ''}`,
      repeats,
      rows,
      shortRuns: { inner: shortInner, fused: range(shorts.map((s) => s[0])), reference: range(shorts.map((s) => s[1])) },
      perLane: { lanes, shapes: laneShapes, ms: laneShapes.map((_, i) => lanes.map((_, k) => range(laneRuns.map((r) => r[i]![k]!)))) },
      program: range(fixed.map((f) => f[0])),
      add: range(fixed.map((f) => f[1])),
      sync: range(fixed.map((f) => f[2])),
      fused: fitLine(rows.map((r) => ({ n: r.elements, ms: r.fused.ms }))),
      reference: fitLine(rows.map((r) => ({ n: r.elements, ms: r.reference.ms }))),
      packed: fitLine(rows.map((r) => ({ n: r.elements, ms: r.packed.ms }))),
      steps,
    };
  } finally {
    setKernelsEnabled('all', true);
    await stopBackend();
    if (previous && previous.name !== 'webgpu') await startBackend(previous.name);
  }
}

const ms = (x: number) => x.toFixed(3);
/** "median (min-max)" when there were several repeats. */
const rng = (r: Range) => (r.min === r.max ? ms(r.ms) : `${ms(r.ms)} (${ms(r.min)}-${ms(r.max)})`);
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Markdown tables of a report. */
export function formatAdamWDispatch(r: AdamWDispatchReport): string {
  const out: string[] = [];
  const over = r.repeats > 1 ? ` (median of ${r.repeats} repeats, range in brackets)` : '';
  out.push(`Per call${over}:`, '');
  out.push('| shape | elements | fused ms | dispatches | reference ms | dispatches | ratio | inner | 1 program (packed) ms |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of r.rows) {
    out.push(
      `| [${row.shape}] | ${row.elements} | ${rng(row.fused)} | ${row.fusedDispatches} | ${rng(row.reference)} | ` +
        `${row.referenceDispatches} | ${(row.reference.ms / row.fused.ms).toFixed(2)}x | ${row.inner.join(' / ')} | ${rng(row.packed)} |`,
    );
  }
  const line = (name: string, f: LineFit, dispatches: number) =>
    `| ${name} | ${ms(f.interceptMs)} | ${ms(f.interceptMs / dispatches)} | ${(f.slopeMs * 1e6).toFixed(2)} |`;
  out.push('', '| fit ms = a + b n | a (ms per call) | a per dispatch (ms) | b (ns per element) |', '|---|---:|---:|---:|');
  out.push(line('fused', r.fused, r.rows[0]!.fusedDispatches));
  out.push(line('reference', r.reference, r.rows[0]!.referenceDispatches));
  out.push(line('1 program (packed)', r.packed, 1));
  const s = r.shortRuns;
  out.push(
    '',
    '| fixed cost | ms |',
    '|---|---:|',
    `| one trivial 1-element program (runWebGPUProgram) | ${rng(r.program)} |`,
    `| tf.add on [1] | ${rng(r.add)} |`,
    `| one sync (await data of a just-queued [1] result) | ${rng(r.sync)} |`,
    `| [258,128] fused, ${s.inner} queued calls per run (kernels_webgpu's count) | ${rng(s.fused)} |`,
    `| [258,128] reference, ${s.inner} queued calls per run (ratio ${(s.reference.ms / s.fused.ms).toFixed(2)}x) | ${rng(s.reference)} |`,
  );
  const pl = r.perLane;
  out.push('', `| 1 program (packed), elements per lane | ${pl.lanes.join(' | ')} |`, `|---|${pl.lanes.map(() => '---:|').join('')}`);
  for (const [i, shape] of pl.shapes.entries()) out.push(`| [${shape}] ms | ${pl.ms[i]!.map(rng).join(' | ')} |`);
  out.push(
    '',
    '| optimizer | AdamW params | elements | dispatches multi / per-param / ref | step dispatches | ' +
      'AdamW ms multi / per-param / ref | multi vs per-param | flat fused ms | 1 program per param ms | ' +
      'step ms multi / per-param / ref | AdamW share multi / per-param / ref | per-param bounds: multi-tensor / 1-program |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  const three = (x: Record<AdamWPath, number>, f: (v: number) => string) => PATHS.map((p) => f(x[p])).join(' / ');
  for (const x of r.steps) {
    const share = Object.fromEntries(PATHS.map((p) => [p, x.adamwMs[p] / x.stepMs[p]])) as Record<AdamWPath, number>;
    const per = x.adamwMs.perParam;
    out.push(
      `| ${x.optimizer} | ${x.adamwParams} | ${x.adamwElements} | ${three(x.dispatches, String)} | ${x.stepDispatches} | ` +
        `${three(x.adamwMs, ms)} | ${(per / x.adamwMs.multi).toFixed(2)}x | ${ms(x.flatFusedMs)} | ${ms(x.packedPerParamMs)} | ` +
        `${three(x.stepMs, (v) => v.toFixed(1))} | ${three(share, pct)} | ` +
        `${pct((per - x.flatFusedMs) / x.stepMs.perParam)} / ${pct((per - x.packedPerParamMs) / x.stepMs.perParam)} |`,
    );
  }
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, repeats: { type: 'string' } } });
  if (values.repeats !== undefined && !/^[1-9][0-9]*$/.test(values.repeats)) {
    throw new Error(`--repeats must be a positive integer, got '${values.repeats}'`);
  }
  const report = await benchAdamWDispatch({
    quick: values.quick,
    repeats: values.repeats === undefined ? undefined : Number(values.repeats),
  });
  console.log(`webgpu adapter: ${report.adapter}`);
  console.log(formatAdamWDispatch(report));
}
