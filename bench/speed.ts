/**
 * CPU speed sections of `npm run bench` (issue 8): training throughput per backend, GEMM rates at the
 * model's shapes against OpenBLAS's own peak, Newton-Schulz cost against its FLOP count, a per-op
 * breakdown of one step, and the PyTorch peer (bench/torch_reference.py) on the identical model.
 *
 * Every time is the median of several runs after a warm-up; every ratio compares two numbers measured
 * in this process (or, for the peer, in the same invocation, back to back).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type ConcreteBackend } from '../src/backend/index.ts';
import { loadNativeAddon } from '../src/backend/native/addon.ts';
import { resolveModelConfig } from '../src/model/config.ts';
import { createModel } from '../src/model/transformer.ts';
import { newtonSchulz, newtonSchulzFlops } from '../src/ops/newton_schulz.ts';
import { createOptimizer } from '../src/optim/routing.ts';
import { trainStep } from '../src/train/step.ts';

export type Row = [string, string, string];

/** Median wall time (ms) of n runs of f after `warm` warm-up runs. */
export async function median(f: () => Promise<unknown> | unknown, n: number, warm = 1): Promise<number> {
  for (let i = 0; i < warm; i++) await f();
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)]!;
}

/**
 * Median ms of f under each setting, timed in alternating rounds (every setting once per round, in
 * turn) so that a change of the machine's load hits all of them alike. `apply` switches to a setting.
 */
export async function alternating<K extends string>(
  settings: readonly K[],
  apply: (setting: K) => void,
  f: () => Promise<unknown> | unknown,
  n: number,
  warm = 1,
): Promise<Record<K, number>> {
  const times = new Map<K, number[]>(settings.map((k) => [k, []]));
  for (let i = 0; i < warm + n; i++) {
    for (const k of settings) {
      apply(k);
      const t0 = performance.now();
      await f();
      if (i >= warm) times.get(k)!.push(performance.now() - t0);
    }
  }
  const out = {} as Record<K, number>;
  for (const [k, ms] of times) out[k] = ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
  return out;
}

/** The benchmark model: issue 8's shapes (4 layers, T=128, B=16, byte vocabulary), OSP norm and embedding. */
export interface SpeedCase {
  hidden: number;
  optimizer: 'adamw' | 'muon';
  /** Attention heads (default 4: the d=128 and d=256 models above; scripts/gpu-bench.ts sets d / 64). */
  heads?: number;
}
export const CASES: SpeedCase[] = [
  { hidden: 128, optimizer: 'adamw' },
  { hidden: 128, optimizer: 'muon' },
  { hidden: 256, optimizer: 'adamw' },
  { hidden: 256, optimizer: 'muon' },
];
export const B = 16;
export const T = 128;
const LAYERS = 4;
const HEADS = 4;
const V = 256;

function modelConfig(hidden: number, heads = HEADS) {
  return resolveModelConfig({
    vocabSize: V,
    hiddenSize: hidden,
    numLayers: LAYERS,
    numHeads: heads,
    maxSeqLen: T,
    norm: 'ssnorm',
    embedding: 'embproj',
  });
}

/**
 * OSP routing (Muon on the blocks' matrices and EmbProj, AdamW on the rest) or AdamW everywhere (a
 * routing rule that sends every parameter to adamw). Same hyper-parameters as bench/torch_reference.py.
 */
function optimizerConfig(kind: 'adamw' | 'muon') {
  return kind === 'muon'
    ? { muon: { lr: 0.01, weightDecay: 0.01 }, adamw: { lr: 0.003, weightDecay: 0.01 } }
    : { adamw: { lr: 0.003, weightDecay: 0.1 }, routing: [{ match: '*', optimizer: 'adamw' }] };
}

/** Random token batches (a step's cost does not depend on the data). */
function batch(seed: number): [tf.Tensor2D, tf.Tensor2D] {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % V;
  const x = Int32Array.from({ length: B * T }, next);
  const y = Int32Array.from({ length: B * T }, next);
  return [tf.tensor2d(x, [B, T], 'int32'), tf.tensor2d(y, [B, T], 'int32')];
}

/** One full training step (forward, backward, clip, update) of a case's model on the active backend. */
export function stepRunner(c: SpeedCase): { step: () => Promise<unknown>; dispose: () => void } {
  const model = createModel(modelConfig(c.hidden, c.heads), { seed: 0 });
  const opt = createOptimizer(optimizerConfig(c.optimizer), model);
  const [x, y] = batch(1);
  return {
    step: () => trainStep(model, opt, x, y),
    dispose: () => {
      tf.dispose([x, y]);
      opt.dispose();
      model.dispose();
    },
  };
}

/**
 * Median ms of one full training step for one case on the active backend, over `reps` steps after
 * `warm` warm-up steps.
 */
export async function stepTime(c: SpeedCase, reps: number, warm = 2): Promise<number> {
  const r = stepRunner(c);
  try {
    // Two warm-up steps by default: the first one fills the native backend's output pool.
    return await median(r.step, reps, warm);
  } finally {
    r.dispose();
  }
}

/** Training tokens/s for every case on every given backend. */
export async function throughput(backends: ConcreteBackend[], reps: number, rows: Row[]): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  rows.push(['training throughput (B=16, T=128, 4 layers, V=256)', 'tokens/s', 'ms/step']);
  for (const backend of backends) {
    try {
      await startBackend(backend);
    } catch (e) {
      rows.push([`  ${backend}`, 'unavailable', (e as Error).message.slice(0, 80)]);
      continue;
    }
    out[backend] = {};
    // native's label names its GEMM (OSP_NATIVE_GEMM picks it).
    const label = backend === 'native' ? `native (${loadNativeAddon().gemmKind()})` : backend;
    for (const c of CASES) {
      const ms = await stepTime(c, reps);
      const key = `d${c.hidden}-${c.optimizer}`;
      out[backend]![key] = (B * T) / (ms / 1000);
      rows.push([`  ${label}, d=${c.hidden}, ${c.optimizer}`, out[backend]![key]!.toFixed(0), ms.toFixed(1)]);
    }
    await stopBackend();
  }
  return out;
}

/** One PyTorch result for one case. */
export interface PeerResult {
  tokensPerSec: number;
  stepMs: number;
  torch: string;
  threads: number;
  /** The thread setting that gave this (the fastest of those tried). */
  setting: string;
}

/** Debian's python3-torch installs for Debian's own python3, not a pyenv one that may come first on PATH. */
function torchPython(): { python?: string; error?: string } {
  const python = ['/usr/bin/python3', 'python3'].find((p) => p === 'python3' || existsSync(p))!;
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    return { error: `PyTorch is not importable by ${python}: install it (Debian: apt-get install python3-torch libopenblas0-pthread)` };
  }
  return { python };
}

/** One bench/torch_reference.py run (median step of `reps`) for one case and thread setting. */
function torchRun(python: string, c: SpeedCase, reps: number, setting: [string, string, Record<string, string>]): PeerResult {
  const [name, threads, env] = setting;
  const args = [
    'bench/torch_reference.py',
    '--hidden',
    String(c.hidden),
    '--optimizer',
    c.optimizer,
    '--steps',
    String(reps),
    '--batch',
    String(B),
    '--seq',
    String(T),
    '--threads',
    threads,
  ];
  const r = spawnSync(python, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`bench/torch_reference.py failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return { ...JSON.parse(r.stdout.trim().split('\n').pop()!), setting: name } as PeerResult;
}

export interface PeerComparison {
  case: string;
  /** PyTorch's fastest thread setting for this case (chosen in the first round). */
  setting: string;
  torch: string;
  rounds: { nativeTokensPerSec: number; torchTokensPerSec: number; ratio: number }[];
  /** Median over rounds of native / torch tokens per second. */
  ratio: number;
}

/**
 * native against bench/torch_reference.py, case by case, in alternating rounds (native, then PyTorch,
 * `rounds` times), so that both see the same machine: on shared machines a single back-to-back pair
 * varies by tens of percent. PyTorch runs at its best thread setting on this machine, chosen in the
 * first round among one thread, every core, and every core with OMP_WAIT_POLICY=PASSIVE (which stops
 * OpenMP's spinning threads from fighting OpenBLAS's own): the peer is PyTorch at its fastest.
 */
export async function peerRounds(reps: number, rounds: number, rows: Row[]): Promise<{ results?: PeerComparison[]; error?: string }> {
  const { python, error } = torchPython();
  if (!python) return { error };
  const cores = String(availableParallelism());
  const settings: [string, string, Record<string, string>][] = [
    ['1 thread', '1', {}],
    [`${cores} threads`, cores, {}],
    [`${cores} threads, OMP_WAIT_POLICY=PASSIVE`, cores, { OMP_WAIT_POLICY: 'PASSIVE' }],
  ];
  const out: PeerComparison[] = [];
  for (const c of CASES) {
    let best: [string, string, Record<string, string>] | undefined;
    let torch = '';
    const rs: PeerComparison['rounds'] = [];
    for (let round = 0; round < rounds; round++) {
      await startBackend('native');
      const nativeTps = (B * T) / ((await stepTime(c, reps)) / 1000);
      await stopBackend();
      let t: PeerResult;
      if (!best) {
        const tried = settings.map((st) => [st, torchRun(python, c, reps, st)] as const);
        const fastest = tried.reduce((a, b) => (b[1].tokensPerSec > a[1].tokensPerSec ? b : a));
        best = fastest[0];
        t = fastest[1];
      } else t = torchRun(python, c, reps, best);
      torch = t.torch;
      rs.push({ nativeTokensPerSec: nativeTps, torchTokensPerSec: t.tokensPerSec, ratio: nativeTps / t.tokensPerSec });
    }
    const ratios = rs.map((r) => r.ratio).sort((a, b) => a - b);
    out.push({ case: `d${c.hidden}-${c.optimizer}`, setting: best![0], torch, rounds: rs, ratio: ratios[Math.floor(ratios.length / 2)]! });
  }
  rows.push([
    `native vs PyTorch ${out[0]?.torch ?? ''} CPU (bench/torch_reference.py), ${rounds} alternating rounds`,
    'tokens/s native / torch',
    'median ratio [range]',
  ]);
  for (const p of out) {
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const nat = med(p.rounds.map((r) => r.nativeTokensPerSec));
    const tor = med(p.rounds.map((r) => r.torchTokensPerSec));
    const lo = Math.min(...p.rounds.map((r) => r.ratio));
    const hi = Math.max(...p.rounds.map((r) => r.ratio));
    rows.push([
      `  ${p.case} (torch: ${p.setting})`,
      `${nat.toFixed(0)} / ${tor.toFixed(0)}`,
      `${p.ratio.toFixed(2)}x [${lo.toFixed(2)}-${hi.toFixed(2)}] (goal >= 1.0x)`,
    ]);
  }
  return { results: out };
}

/** GFLOP/s of tf.matMul on the native backend at the model's shapes, and of its GEMM (OpenBLAS or the portable one) called directly. */
export async function gemmRates(reps: number, rows: Row[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const addon = loadNativeAddon();
  const gemm = addon.gemmKind() === 'openblas' ? 'OpenBLAS' : `portable ${addon.gemmIsa()}`;
  // The GEMM's own rate on a large square product, called directly (no tfjs, no allocation).
  const n = 1024;
  const a = new Float32Array(n * n).map(() => Math.random());
  const b = new Float32Array(n * n).map(() => Math.random());
  const c = new Float32Array(n * n);
  const zero = new Int32Array(1);
  const peakMs = await median(() => addon.gemm(a, b, c, 1, n, n, n, 0, 0, zero, zero), reps * 2, 2);
  const peak = (2 * n * n * n) / (peakMs * 1e6);
  out.openblasPeak = peak;
  rows.push([`${gemm} sgemm ${n}^3, direct (the peak)`, `${peak.toFixed(1)} GFLOP/s`, '1.00x']);
  await startBackend('native');
  const shapes: [string, number[], number[], boolean, boolean][] = [
    [`tf.matMul ${n}^3`, [n, n], [n, n], false, false],
    ['x W^T, d=128: [2048,128] x [128,128]^T', [2048, 128], [128, 128], false, true],
    ['x W^T, d=128 MLP: [2048,128] x [352,128]^T', [2048, 128], [352, 128], false, true],
    ['dW = dy^T x, d=128: [2048,128]^T x [2048,352]', [2048, 128], [2048, 352], true, false],
    ['x W^T, d=256: [2048,256] x [704,256]^T', [2048, 256], [704, 256], false, true],
    ['attention q k^T: [64,128,32] x [64,128,32]^T', [64, 128, 32], [64, 128, 32], false, true],
    ['attention p v: [64,128,128] x [64,128,32]', [64, 128, 128], [64, 128, 32], false, false],
  ];
  for (const [label, sa, sb, ta, tb] of shapes) {
    const x = tf.randomNormal(sa);
    const y = tf.randomNormal(sb);
    const M = ta ? sa[sa.length - 1]! : sa[sa.length - 2]!;
    const K = ta ? sa[sa.length - 2]! : sa[sa.length - 1]!;
    const N = tb ? sb[sb.length - 2]! : sb[sb.length - 1]!;
    const batch = sa.length === 3 ? sa[0]! : 1;
    // native runs kernels synchronously, so the product is done when matMul returns. Reading the
    // output would take it out of the output pool, and every call would then pay for fresh pages.
    const ms = await median(() => tf.matMul(x, y, ta, tb).dispose(), reps * 2, 2);
    const rate = (2 * batch * M * N * K) / (ms * 1e6);
    // The same product called on OpenBLAS directly (same operands, an output reused): what tfjs,
    // the kernel wrapper and output allocation cost on top of the BLAS itself.
    const [xa, ya] = [(await x.data()) as Float32Array, (await y.data()) as Float32Array];
    const o = new Float32Array(batch * M * N);
    const aOff = Int32Array.from({ length: batch }, (_, i) => i * M * K);
    const bOff = Int32Array.from({ length: batch }, (_, i) => (sb.length === 3 ? i * K * N : 0));
    const directMs = await median(() => addon.gemm(xa, ya, o, batch, M, N, K, ta ? 1 : 0, tb ? 1 : 0, aOff, bOff), reps * 2, 2);
    // (the output array is reused: a fresh one per call costs page faults, 6x at [2048,128] x [128,128]^T here)
    const direct = (2 * batch * M * N * K) / (directMs * 1e6);
    out[label] = rate;
    out[`${label} (direct)`] = direct;
    rows.push([
      `  ${label}`,
      `${rate.toFixed(1)} GFLOP/s`,
      `${(rate / peak).toFixed(2)}x of peak; direct sgemm here ${direct.toFixed(1)} (tf.matMul ${(rate / direct).toFixed(2)}x of it)`,
    ]);
    tf.dispose([x, y]);
  }
  await stopBackend();
  return out;
}

/** Newton-Schulz (5 quintic steps) per matrix shape on native: time and the rate its FLOP count implies. */
export async function nsCost(reps: number, rows: Row[]): Promise<Record<string, { ms: number; gflops: number }>> {
  await startBackend('native');
  const out: Record<string, { ms: number; gflops: number }> = {};
  rows.push(['Newton-Schulz, 5 quintic steps (native)', 'ms / matrix', 'GFLOP/s']);
  for (const [m, n] of [
    [128, 128],
    [352, 128],
    [128, 352],
    [256, 256],
    [704, 256],
    [256, 704],
  ] as const) {
    const g = tf.randomNormal([m, n]) as tf.Tensor2D;
    const ms = await median(
      async () => {
        const o = newtonSchulz(g, { steps: 5, coefficients: 'quintic' });
        await o.data();
        o.dispose();
      },
      reps * 2,
      2,
    );
    const gflops = newtonSchulzFlops(m, n, 5) / (ms * 1e6);
    out[`${m}x${n}`] = { ms, gflops };
    rows.push([`  ${m} x ${n}`, ms.toFixed(2), gflops.toFixed(1)]);
    g.dispose();
  }
  await stopBackend();
  return out;
}

/**
 * Muon's overhead per step over AdamW on native, against what its Newton-Schulz FLOPs predict at the
 * measured per-shape times (goal: overhead <= prediction + 10%). The two step times are measured in
 * alternating rounds (median of each), so that machine noise does not land on one side only.
 */
export async function muonOverhead(
  ns: Record<string, { ms: number }>,
  reps: number,
  rounds: number,
  rows: Row[],
): Promise<Record<string, { adamwMs: number; muonMs: number; overheadMs: number; predictedMs: number; ratio: number }>> {
  const out: Record<string, { adamwMs: number; muonMs: number; overheadMs: number; predictedMs: number; ratio: number }> = {};
  await startBackend('native');
  for (const hidden of [128, 256]) {
    const a: number[] = [];
    const m: number[] = [];
    for (let r = 0; r < rounds; r++) {
      a.push(await stepTime({ hidden, optimizer: 'adamw' }, reps));
      m.push(await stepTime({ hidden, optimizer: 'muon' }, reps));
    }
    const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const [adamwMs, muonMs] = [med(a), med(m)];
    const overheadMs = muonMs - adamwMs;
    const inter = Math.ceil((8 * hidden) / 3 / 32) * 32;
    // Per layer: q, k, v, o (d x d), gate and up (inter x d), down (d x inter); plus EmbProj's two d x d.
    const t = (s: string) => ns[s]?.ms ?? NaN;
    const predictedMs =
      LAYERS * (4 * t(`${hidden}x${hidden}`) + 2 * t(`${inter}x${hidden}`) + t(`${hidden}x${inter}`)) + 2 * t(`${hidden}x${hidden}`);
    out[`d${hidden}`] = { adamwMs, muonMs, overheadMs, predictedMs, ratio: overheadMs / predictedMs };
    rows.push([
      `  Muon over AdamW per step, d=${hidden} (${adamwMs.toFixed(0)} -> ${muonMs.toFixed(0)} ms)`,
      `${overheadMs.toFixed(1)} ms`,
      `${(overheadMs / predictedMs).toFixed(2)}x of the ${predictedMs.toFixed(1)} ms NS predicts (goal <= 1.10x)`,
    ]);
  }
  await stopBackend();
  return out;
}

/** Share of one training step's kernel time per tfjs kernel (tf.profile), top entries. */
export async function opBreakdown(
  backend: ConcreteBackend,
  c: SpeedCase,
  rows: Row[],
  top = 12,
): Promise<{ name: string; calls: number; ms: number }[]> {
  await startBackend(backend);
  const model = createModel(modelConfig(c.hidden, c.heads), { seed: 0 });
  const opt = createOptimizer(optimizerConfig(c.optimizer), model);
  const [x, y] = batch(2);
  await trainStep(model, opt, x, y);
  const prof = await tf.profile(async () => {
    await trainStep(model, opt, x, y);
  });
  tf.dispose([x, y]);
  opt.dispose();
  model.dispose();
  await stopBackend();
  const agg = new Map<string, { calls: number; ms: number }>();
  for (const k of prof.kernels) {
    // Composite scopes (customGrad's forward, named ops) contain kernels that are listed on their own.
    if (k.name === 'unnamed scope' || k.name.endsWith('__op')) continue;
    const e = agg.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += Number(await k.kernelTimeMs);
    agg.set(k.name, e);
  }
  const list = [...agg].map(([name, e]) => ({ name, ...e })).sort((a, b) => b.ms - a.ms);
  const total = list.reduce((s, e) => s + e.ms, 0);
  rows.push([`per-op breakdown of one step (${backend}, d=${c.hidden}, ${c.optimizer})`, `${total.toFixed(0)} ms in kernels`, 'share']);
  for (const e of list.slice(0, top))
    rows.push([`  ${e.name} (${e.calls} calls)`, `${e.ms.toFixed(1)} ms`, `${((100 * e.ms) / total).toFixed(1)} %`]);
  return list;
}

/** The GEMM shapes of the benchmark models (B=16, T=128 -> 2048 tokens, 4 heads): [label, batch, M, N, K, transA, transB]. */
export function modelGemmShapes(hidden: number): [string, number, number, number, number, boolean, boolean][] {
  const d = hidden;
  const inter = Math.ceil((8 * d) / 3 / 32) * 32;
  const tokens = B * T;
  const head = d / HEADS;
  const batchHeads = B * HEADS;
  return [
    [`x W^T [${tokens},${d}] x [${d},${d}]^T`, 1, tokens, d, d, false, true],
    [`MLP up x W^T [${tokens},${d}] x [${inter},${d}]^T`, 1, tokens, inter, d, false, true],
    [`MLP down [${tokens},${inter}] x [${d},${inter}]^T`, 1, tokens, d, inter, false, true],
    [`dW = dy^T x [${tokens},${inter}]^T x [${tokens},${d}]`, 1, inter, d, tokens, true, false],
    [`attention q k^T [${batchHeads},${T},${head}] x [${batchHeads},${T},${head}]^T`, batchHeads, T, T, head, false, true],
    [`attention p v [${batchHeads},${T},${T}] x [${batchHeads},${T},${head}]`, batchHeads, T, head, T, false, false],
  ];
}

export interface PortableGemmRow {
  shape: string;
  portableGflops: number;
  openblasGflops?: number;
  /** Median over rounds of portable / OpenBLAS time ratio, inverted (portable speed relative to OpenBLAS). */
  ratio?: number;
}

/**
 * The portable GEMM (kernels/native/gemm.cc) against OpenBLAS at the model's shapes, both called directly
 * through the addon (same operands, output reused), in `rounds` alternating rounds of `reps` timed calls
 * each; per shape the median of the per-round ratios. Without OpenBLAS in the build: the portable rates.
 */
export async function portableGemm(
  reps: number,
  rounds: number,
  rows: Row[],
): Promise<{ isa: string; hasOpenBLAS: boolean; shapes: PortableGemmRow[]; geomean: Record<string, number> }> {
  const addon = loadNativeAddon();
  const kind0 = addon.gemmKind();
  const hasOpenBLAS = addon.gemmKinds().includes('openblas');
  const kinds = hasOpenBLAS ? (['openblas', 'portable'] as const) : (['portable'] as const);
  const isa = addon.gemmIsa();
  rows.push([
    `portable ${isa} GEMM vs OpenBLAS, direct, ${addon.threads()} threads, ${rounds} alternating rounds`,
    hasOpenBLAS ? 'GFLOP/s portable / OpenBLAS' : 'GFLOP/s portable',
    hasOpenBLAS ? 'median ratio [range]' : '(no OpenBLAS in this build)',
  ]);
  const shapes: PortableGemmRow[] = [];
  const geomean: Record<string, number> = {};
  const cases: [string, number, number, number, number, boolean, boolean][] = [
    ['1024^3', 1, 1024, 1024, 1024, false, false],
    ...modelGemmShapes(128).map((s) => [`d=128 ${s[0]}`, ...s.slice(1)] as typeof s),
    ...modelGemmShapes(256).map((s) => [`d=256 ${s[0]}`, ...s.slice(1)] as typeof s),
  ];
  for (const [label, batch, M, N, K, ta, tb] of cases) {
    const a = Float32Array.from({ length: batch * M * K }, () => Math.random() - 0.5);
    const b = Float32Array.from({ length: batch * K * N }, () => Math.random() - 0.5);
    const o = new Float32Array(batch * M * N);
    const aOff = Int32Array.from({ length: batch }, (_, i) => i * M * K);
    const bOff = Int32Array.from({ length: batch }, (_, i) => i * K * N);
    const flops = 2 * batch * M * N * K;
    // About 0.1 s of calls per kind and round.
    const n = Math.max(3, Math.min(reps * 4, Math.round(2e10 / flops)));
    const ms: Record<string, number[]> = { openblas: [], portable: [] };
    for (let r = 0; r < rounds; r++) {
      for (const kind of kinds) {
        addon.setGemm(kind);
        ms[kind]!.push(await median(() => addon.gemm(a, b, o, batch, M, N, K, ta ? 1 : 0, tb ? 1 : 0, aOff, bOff), n, 2));
      }
    }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const row: PortableGemmRow = { shape: label, portableGflops: flops / (med(ms.portable!) * 1e6) };
    if (hasOpenBLAS) {
      const ratios = ms.openblas!.map((t, i) => t / ms.portable![i]!);
      row.openblasGflops = flops / (med(ms.openblas!) * 1e6);
      row.ratio = med(ratios);
      rows.push([
        `  ${label}`,
        `${row.portableGflops.toFixed(1)} / ${row.openblasGflops.toFixed(1)}`,
        `${row.ratio.toFixed(2)}x [${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}]`,
      ]);
    } else {
      rows.push([`  ${label}`, row.portableGflops.toFixed(1), '']);
    }
    shapes.push(row);
  }
  if (hasOpenBLAS) {
    for (const d of [128, 256]) {
      const rs = shapes.filter((s) => s.shape.startsWith(`d=${d} `)).map((s) => s.ratio!);
      geomean[`d${d}`] = Math.exp(rs.reduce((s, r) => s + Math.log(r), 0) / rs.length);
      rows.push([`  d=${d} shapes, geometric mean`, '', `${geomean[`d${d}`]!.toFixed(2)}x${d === 256 ? ' (goal >= 0.7x)' : ''}`]);
    }
  }
  addon.setGemm(kind0);
  return { isa, hasOpenBLAS, shapes, geomean };
}

/**
 * Training tokens/s on native with the portable GEMM against wasm (and against native on OpenBLAS where
 * built in), every case of CASES, in `rounds` alternating rounds; per case the median of the per-round
 * ratios (goal: portable native >= 3x wasm).
 */
export async function portableStep(
  reps: number,
  rounds: number,
  rows: Row[],
): Promise<Record<string, { portable: number; wasm: number; openblas?: number; vsWasm: number; vsOpenBLAS?: number }>> {
  const addon = loadNativeAddon();
  const kind0 = addon.gemmKind();
  const hasOpenBLAS = addon.gemmKinds().includes('openblas');
  const out: Record<string, { portable: number; wasm: number; openblas?: number; vsWasm: number; vsOpenBLAS?: number }> = {};
  rows.push([
    `training step, native on the portable ${addon.gemmIsa()} GEMM vs wasm${hasOpenBLAS ? ' and native on OpenBLAS' : ''}, ${rounds} alternating rounds`,
    `tokens/s portable / wasm${hasOpenBLAS ? ' / OpenBLAS' : ''}`,
    'median ratio vs wasm (goal >= 3x)' + (hasOpenBLAS ? ', vs OpenBLAS' : ''),
  ]);
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  for (const c of CASES) {
    const tps: Record<string, number[]> = { portable: [], wasm: [], openblas: [] };
    for (let r = 0; r < rounds; r++) {
      const runs: [string, ConcreteBackend, 'portable' | 'openblas' | undefined][] = [
        ['portable', 'native', 'portable'],
        ['wasm', 'wasm', undefined],
        ...(hasOpenBLAS ? [['openblas', 'native', 'openblas'] as [string, ConcreteBackend, 'openblas']] : []),
      ];
      for (const [key, backend, gemm] of runs) {
        await startBackend(backend);
        if (gemm) addon.setGemm(gemm);
        tps[key]!.push((B * T) / ((await stepTime(c, reps)) / 1000));
        await stopBackend();
      }
    }
    const vsWasm = med(tps.portable!.map((p, i) => p / tps.wasm![i]!));
    const key = `d${c.hidden}-${c.optimizer}`;
    out[key] = { portable: med(tps.portable!), wasm: med(tps.wasm!), vsWasm };
    let tail = '';
    if (hasOpenBLAS) {
      out[key]!.openblas = med(tps.openblas!);
      out[key]!.vsOpenBLAS = med(tps.portable!.map((p, i) => p / tps.openblas![i]!));
      tail = `, ${out[key]!.vsOpenBLAS!.toFixed(2)}x of OpenBLAS`;
    }
    rows.push([
      `  d=${c.hidden}, ${c.optimizer}`,
      `${out[key]!.portable.toFixed(0)} / ${out[key]!.wasm.toFixed(0)}${hasOpenBLAS ? ` / ${out[key]!.openblas!.toFixed(0)}` : ''}`,
      `${vsWasm.toFixed(2)}x${tail}`,
    ]);
  }
  addon.setGemm(kind0);
  return out;
}
