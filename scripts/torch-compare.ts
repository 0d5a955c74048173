/**
 * osp-lab against PyTorch on the same run: the same model, the same initial weights, the same token
 * batches and the same hyper-parameters, trained for N steps by osp-lab's own `train` (src/train/run.ts)
 * and by bench/torch_reference.py's training mode; then the two loss curves and the OSP kurtosis of
 * the hidden states at the end, side by side.
 *
 *   npx tsx scripts/torch-compare.ts [--config adam|osp|both] [--steps N] [--seed S]
 *        [--out DIR] [--backend native|cpu|...] [--python /usr/bin/python3] [--torch-threads 1]
 *        [--no-control] [--save-hf DIR]
 *
 * Defaults: both configurations, 300 steps, seed 0, out dir runs/torch-compare/ (<config>.json with
 * both curves and the summary, <config>-loss.svg, <config>-diff.svg; the exchanged files and osp-lab's
 * run directory under work/<config>/), the native backend when its addon loads, else cpu.
 *
 * Configurations (d=128, 4 layers, 4 heads, batch 8 x 128, Brown corpus, configs/tiny*.json's lrs):
 *   adam  RMSNorm, plain embedding, AdamW on every parameter
 *   osp   Single-Scale RMSNorm, EmbProj, Muon on the block matrices and EmbProj, AdamW on the rest
 *
 * What is shared, and how:
 *   - Initial weights: drawn here exactly as the Transformer constructor draws them (paramSpecs order,
 *     one Rng(seed)), written as a Hugging Face-style directory (config.json + model.safetensors) and
 *     checked bit for bit against the model osp-lab trains (at train start). For `adam` it is a real
 *     HF Llama checkpoint (writeHfCheckpoint) and osp-lab starts from it with `initFrom`, as
 *     `osp train --init-from` does. For `osp` it cannot be: the HF export folds EmbProj into the
 *     embedding and head (E' = E P1^T, W' = W P2) and widens SSNorm's scalar into a vector, which is
 *     the same function but a different set of trainable parameters (Muon would then train neither P1
 *     nor P2, and AdamW would train d gains per norm instead of one); and `--init-from` refuses a model
 *     that is not a plain Llama. So the `osp` directory holds the raw, unfolded parameters under
 *     osp-lab's names (config.json is HF's with an `osp_lab` note), and osp-lab starts from the seed,
 *     which gives the same values.
 *   - Batches: the run's Batcher (data seed = data.seed ?? seed), the first steps * accum batches, and
 *     the outlier monitor's batch (the first monitor.batchSize validation windows).
 *   - Hyper-parameters: PyTorch reads the run directory's config.json (the resolved config osp-lab ran):
 *     schedule, betas, eps, weight decay and its exemptions, Muon settings, routing, clipping.
 *
 * Why the curves can still differ, and how much they should:
 *   - Step 1 is one forward pass from identical weights on identical tokens: the losses agree to float32
 *     rounding (measured: bit-identical on the native backend). What can differ is only the order of
 *     float32 additions: tfjs's kernels and the native pack (double accumulators in RMSNorm,
 *     cross-entropy, Newton-Schulz's norm) against torch's OpenBLAS / MKL-DNN GEMMs and its own
 *     reduction trees. Each product or sum carries a relative error ~1e-7.
 *   - The first steps then agree to about one float32 ulp of the loss (measured: |difference| <= 4.8e-7
 *     over steps 1-10 for both configurations): the gradients differ by the same rounding, and AdamW's
 *     first steps (m / sqrt(v) ~ sign(g)) and Muon's orthogonalisation (which normalises the update)
 *     pass a small relative error on as a small relative error.
 *   - After that the trajectories separate: training a network is a chaotic map, and a rounding-level
 *     perturbation of the weights grows roughly exponentially with the steps (a straight rising band in
 *     the |difference| plot on its log axis; measured: past 1e-4 after ~70 steps with AdamW, ~130 with
 *     the OSP recipe) until the two runs differ like two runs from different reduction orders do. From
 *     then on only statistics can agree: the mean loss of the last 100 steps and the final kurtosis
 *     match to within the run-to-run noise of such a perturbation (a few 1e-3 in loss at this size, a
 *     few percent in kurtosis), not digit for digit.
 *   A difference larger than that at step 1, or a steady drift from the first steps, is not rounding:
 *   it is an arithmetic difference (a bug in one of the two implementations).
 *
 * The control (skip with --no-control) measures that noise instead of arguing it: PyTorch trains a
 * second time with every initial weight moved one float32 ulp up or down, and its gap to the first
 * PyTorch run is reported and plotted next to the osp-lab/PyTorch gap. When the two gaps open at about
 * the same step and grow alike, the osp-lab/PyTorch difference is rounding amplified by training.
 *
 * --save-hf DIR keeps the model PyTorch trained (the first PyTorch run, not the control): its final
 * weights as a Hugging Face Llama directory (config.json + model.safetensors, bench/torch_reference.py's
 * --save-hf), which every osp command that reads a model opens, e.g.
 *   npx tsx scripts/torch-compare.ts --config adam --steps 30 --save-hf /tmp/torch-adam
 *   npx osp analyze /tmp/torch-adam --text README.md --batch 4 --seq 128
 * Only the `adam` configuration is a plain Llama: `--config osp` with --save-hf is refused before anything
 * runs (its SSNorm scalars and EmbProj matrices are not a Llama's parameters until folded), and with
 * `--config both` the adam run is saved and the osp run is not (the script says so). DIR must be new or
 * empty; that is checked before training. At the end the script reads DIR back with osp-lab's reader and
 * checks that every tensor holds, bit for bit, the final weights PyTorch hashed (SHA-256 per tensor).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { probeNative } from '../src/backend/native/index.ts';
import { resolveRunConfig, type RunConfig } from '../src/train/config.ts';
import { Batcher, evalBatches, rowBos } from '../src/data/batcher.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { hfConfig, writeHfCheckpoint } from '../src/export/hf.ts';
import { openModelSource } from '../src/export/checkpoint.ts';
import type { Weights } from '../src/model/fold.ts';
import type { AdamW } from '../src/optim/adamw.ts';
import { encodeSafetensors, f32Entry, i32Entry } from '../src/io/safetensors.ts';
import { initialValues } from '../src/model/init.ts';
import { gaussianFloor } from '../src/metrics/outliers.ts';
import { paramSpecs } from '../src/model/transformer.ts';
import { lineChart } from '../src/sweep/svg.ts';
import type { Callback, TrainContext } from '../src/train/callback.ts';
import { train } from '../src/train/run.ts';
import { Rng } from '../src/utils/rng.ts';

type ConfigName = 'adam' | 'osp';

interface KurtosisPoint {
  aggregate: number;
  perTap: Record<string, number>;
}

/** One side's run: per-step curves (index i = step i + 1) and the kurtosis by completed step. */
interface Side {
  loss: number[];
  gradNorm: number[];
  lrFactor: number[];
  kurtosis: Record<string, KurtosisPoint>;
  wallSeconds: number;
}

/** One side's curves as recorded, with the wall time since `t0` (performance.now()). */
function sideOf(r: Omit<Side, 'wallSeconds'>, t0: number): Side {
  return { loss: r.loss, gradNorm: r.gradNorm, lrFactor: r.lrFactor, kurtosis: r.kurtosis, wallSeconds: (performance.now() - t0) / 1000 };
}

/** The run config of one configuration (small, and quiet: no checkpoints but the last, no TensorBoard). */
function runConfig(name: ConfigName, steps: number, seed: number, backend: string, out: string): Record<string, unknown> {
  const osp = name === 'osp';
  return {
    name: 'osp-lab-run',
    seed,
    backend,
    steps,
    model: {
      hiddenSize: 128,
      numLayers: 4,
      numHeads: 4,
      maxSeqLen: 128,
      norm: osp ? 'ssnorm' : 'rmsnorm',
      embedding: osp ? 'embproj' : 'plain',
    },
    // configs/tiny.json and configs/tiny-adam.json.
    optimizer: osp
      ? { muon: { lr: 0.01, weightDecay: 0.01 }, adamw: { lr: 0.003, weightDecay: 0.01 } }
      : { adamw: { lr: 0.003, weightDecay: 0.01 }, routing: [{ match: '*', optimizer: 'adamw' }] },
    schedule: { kind: 'cosine', warmupSteps: Math.min(20, Math.floor(steps / 10)), minLrRatio: 0.1 },
    data: { source: 'brown' },
    batch: { size: 8, seqLen: 128, accum: 1 },
    eval: { every: 0, batches: 1 },
    checkpoint: { every: 0, keep: 1 },
    // logging.every = steps: the update-RMS monitor copies every parameter on logging steps only.
    logging: { every: steps, tensorboard: false, histogramsEvery: 0, console: 'quiet' },
    // Measured after step 1 and after the last step (the monitor's schedule with every = steps).
    monitor: { every: steps, batchSize: 4, images: false },
    out,
  };
}

/** The initial weights osp-lab's Transformer draws for this config and seed (same specs, same Rng order). */
function initialWeights(config: RunConfig): Weights {
  const rng = new Rng(config.seed);
  const out: Weights = new Map();
  for (const spec of paramSpecs(config.model)) out.set(spec.name, { shape: spec.shape, data: initialValues(spec, rng) });
  return out;
}

/**
 * Writes the initial weights as a Hugging Face-style directory. A plain Llama is a real HF checkpoint
 * (osp-lab can start from it with initFrom); an OSP model keeps its unfolded parameters (see the file
 * comment) and says so in config.json.
 */
function writeInit(dir: string, config: RunConfig, weights: Weights): { hf: boolean } {
  const m = config.model;
  if (m.norm === 'rmsnorm' && m.embedding === 'plain') {
    writeHfCheckpoint(dir, m, weights, 'f32');
    return { hf: true };
  }
  mkdirSync(dir, { recursive: true });
  const hf = {
    ...hfConfig({ ...m, norm: 'rmsnorm', embedding: 'plain' }, 'f32'),
    osp_lab: {
      norm: m.norm,
      embedding: m.embedding,
      note: 'unfolded osp-lab parameters: norm scales of shape [1] (ssnorm) and model.embed_proj / model.head_proj (embproj); not loadable by transformers',
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hf, null, 2) + '\n');
  const entries = [...weights].map(([name, w]) => [name, f32Entry(w.shape, w.data)] as [string, ReturnType<typeof f32Entry>]);
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(entries, { source: 'scripts/torch-compare.ts' }));
  return { hf: false };
}

/** Writes the training batches and the monitor batch as int32 safetensors files. */
function writeBatches(dir: string, config: RunConfig): { batches: string; monitor: string } {
  const data = loadDataset(config.data, { vocabSize: config.model.vocabSize });
  const { size: B, seqLen: T, accum } = config.batch;
  const bos = rowBos(config);
  const batcher = new Batcher(data.train, { batchSize: B, seqLen: T, seed: config.data.seed ?? config.seed, bos });
  const n = config.steps * accum;
  const inputs = new Int32Array(n * B * T);
  const targets = new Int32Array(n * B * T);
  for (let i = 0; i < n; i++) {
    const b = batcher.next();
    inputs.set(b.inputs, i * B * T);
    targets.set(b.targets, i * B * T);
  }
  const held = evalBatches(data.val, { batchSize: config.monitor.batchSize, seqLen: T, maxBatches: 1, bos })[0]!;
  const batches = join(dir, 'batches.safetensors');
  const monitor = join(dir, 'monitor.safetensors');
  writeFileSync(
    batches,
    encodeSafetensors([
      ['inputs', i32Entry([n, B, T], inputs)],
      ['targets', i32Entry([n, B, T], targets)],
    ]),
  );
  writeFileSync(monitor, encodeSafetensors([['inputs', i32Entry([config.monitor.batchSize, T], held.inputs)]]));
  return { batches, monitor };
}

/** Records osp-lab's per-step metrics, and checks at train start that the model holds the dumped weights. */
class Recorder implements Callback {
  readonly name = 'torch_compare';
  loss: number[] = [];
  gradNorm: number[] = [];
  lrFactor: number[] = [];
  kurtosis: Record<string, KurtosisPoint> = {};
  assignment: Record<string, string> = {};
  decays: Record<string, boolean> = {};
  initMaxAbsDiff = NaN;

  constructor(private readonly init: Weights) {}

  async onTrainStart(ctx: TrainContext): Promise<void> {
    const names = [...ctx.model.params.keys()];
    if (names.join() !== [...this.init.keys()].join())
      throw new Error(`parameter names differ: ${names.join()} vs ${[...this.init.keys()].join()}`);
    let max = 0;
    for (const [name, p] of ctx.model.params) {
      const v = (await p.data()) as Float32Array;
      const w = this.init.get(name)!.data;
      for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]! - w[i]!));
    }
    this.initMaxAbsDiff = max;
    for (const [name, which] of ctx.optimizer.assignment) {
      this.assignment[name] = which;
      if (which === 'adamw') this.decays[name] = (ctx.optimizer.group('adamw') as AdamW).decays(name);
    }
  }

  onStepEnd(ctx: TrainContext): void {
    const m = ctx.metrics;
    this.loss.push(m.get('train/loss') ?? NaN);
    this.gradNorm.push(m.get('train/grad_norm') ?? NaN);
    this.lrFactor.push(m.get('train/lr_factor') ?? NaN);
    const k = m.get('outliers/osp_kurtosis');
    if (k !== undefined) {
      const perTap: Record<string, number> = {};
      for (const [key, v] of m.entries()) {
        const tap = /^outliers\/(.+)\/osp_kurtosis$/.exec(key)?.[1];
        if (tap) perTap[tap] = v;
      }
      this.kurtosis[String(ctx.step)] = { aggregate: k, perTap };
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------

const fmt = (v: number, digits = 6) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));
const sci = (v: number) => (Number.isFinite(v) ? (v >= 0 ? '+' : '') + v.toExponential(2) : String(v));
const pad = (s: string, w: number) => s.padStart(w);

/** Steps shown in the table: 1..10, then every 10 up to 50, every 25 after, and the last. */
function tableSteps(n: number): number[] {
  const s = new Set<number>();
  for (let i = 1; i <= Math.min(10, n); i++) s.add(i);
  for (let i = 20; i <= Math.min(50, n); i += 10) s.add(i);
  for (let i = 75; i <= n; i += 25) s.add(i);
  s.add(n);
  return [...s].sort((a, b) => a - b);
}

function maxAbsDiff(a: number[], b: number[], from: number, to: number): { value: number; step: number } {
  let best = { value: -1, step: 0 };
  for (let i = from; i < to; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= best.value)) best = { value: d, step: i + 1 };
  }
  return best;
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const kurtosisAt = (s: Side, step: number) => s.kurtosis[String(step)]?.aggregate ?? NaN;

/** How two loss curves compare: the early and overall gaps, when they open, and the end statistics. */
interface PairStats {
  maxDiffFirst10: { value: number; step: number };
  maxDiffAll: { value: number; step: number };
  /** First step whose |difference| exceeds each threshold (null: never). */
  firstStepAbove: Record<string, number | null>;
  finalWindow: number;
  finalMean: [number, number];
  finalMeanDiff: number;
  kurtosisFinal: [number, number];
}

function pairStats(a: Side, b: Side, steps: number): PairStats {
  const window = Math.min(100, steps);
  const ma = mean(a.loss.slice(steps - window));
  const mb = mean(b.loss.slice(steps - window));
  const firstStepAbove: Record<string, number | null> = {};
  for (const th of [1e-4, 1e-3, 1e-2, 1e-1]) {
    const i = a.loss.findIndex((v, j) => !(Math.abs(v - b.loss[j]!) <= th));
    firstStepAbove[th.toExponential(0)] = i < 0 ? null : i + 1;
  }
  return {
    maxDiffFirst10: maxAbsDiff(a.loss, b.loss, 0, Math.min(10, steps)),
    maxDiffAll: maxAbsDiff(a.loss, b.loss, 0, steps),
    firstStepAbove,
    finalWindow: window,
    finalMean: [ma, mb],
    finalMeanDiff: ma - mb,
    kurtosisFinal: [kurtosisAt(a, steps), kurtosisAt(b, steps)],
  };
}

interface Summary extends PairStats {
  gradNormStep1: [number, number];
  kurtosisStep1: [number, number];
  routingAgrees: boolean;
  routingDiffs: string[];
  /** PyTorch against PyTorch from initial weights moved by one ulp: the spread rounding alone causes. */
  control?: PairStats;
}

function gapLines(p: PairStats, steps: number, indent = ''): string[] {
  const above = Object.entries(p.firstStepAbove)
    .map(([th, st]) => `>${th}: ${st ?? 'never'}`)
    .join(', ');
  return [
    `${indent}max |difference|, steps 1-${Math.min(10, steps)}: ${p.maxDiffFirst10.value.toExponential(2)} ` +
      `(step ${p.maxDiffFirst10.step})`,
    `${indent}max |difference|, all ${steps} steps: ${p.maxDiffAll.value.toExponential(2)} (step ${p.maxDiffAll.step})`,
    `${indent}first step |diff| ${above}`,
  ];
}

function report(head: string[], o: Side, t: Side, s: Summary, steps: number, floor: number, controlSeconds = NaN): string {
  const lines = [...head, '-'.repeat(78)];
  lines.push(
    `${pad('step', 5)}  ${pad('osp-lab loss', 12)}  ${pad('PyTorch loss', 12)}  ${pad('difference', 10)}` +
      `  ${pad('gnorm osp', 10)}  ${pad('gnorm torch', 11)}`,
  );
  for (const step of tableSteps(steps)) {
    const i = step - 1;
    lines.push(
      `${pad(String(step), 5)}  ${pad(fmt(o.loss[i]!), 12)}  ${pad(fmt(t.loss[i]!), 12)}  ` +
        `${pad(sci(o.loss[i]! - t.loss[i]!), 10)}  ${pad(fmt(o.gradNorm[i]!, 5), 10)}  ${pad(fmt(t.gradNorm[i]!, 5), 11)}`,
    );
  }
  lines.push(
    '-'.repeat(78),
    ...gapLines(s, steps),
    `mean loss, last ${s.finalWindow} steps: osp-lab ${fmt(s.finalMean[0])}  PyTorch ${fmt(s.finalMean[1])}  ` +
      `diff ${sci(s.finalMeanDiff)}`,
    `grad norm, step 1: osp-lab ${fmt(s.gradNormStep1[0], 7)}  PyTorch ${fmt(s.gradNormStep1[1], 7)}  ` +
      `rel. diff ${sci((s.gradNormStep1[0] - s.gradNormStep1[1]) / s.gradNormStep1[1])}`,
    `OSP kurtosis, step 1: osp-lab ${fmt(s.kurtosisStep1[0], 5)}  PyTorch ${fmt(s.kurtosisStep1[1], 5)}`,
    `OSP kurtosis, step ${steps} (final): osp-lab ${fmt(s.kurtosisFinal[0], 5)}  PyTorch ${fmt(s.kurtosisFinal[1], 5)}` +
      `  (floor ${floor.toFixed(3)})`,
    `routing, weight-decay exemptions, lr schedule: ${s.routingAgrees ? 'identical' : `DIFFER: ${s.routingDiffs[0]}`}`,
  );
  if (s.control) {
    const c = s.control;
    lines.push(
      `control: PyTorch vs PyTorch with every initial weight moved by 1 ulp (${controlSeconds.toFixed(1)} s):`,
      ...gapLines(c, steps, '  '),
      `  mean loss, last ${c.finalWindow} steps: PyTorch ${fmt(c.finalMean[0])}  control ${fmt(c.finalMean[1])}  ` +
        `diff ${sci(c.finalMeanDiff)}`,
      `  OSP kurtosis, step ${steps}: PyTorch ${fmt(c.kurtosisFinal[0], 5)}  control ${fmt(c.kurtosisFinal[1], 5)}`,
    );
  }
  // Wall times are printed by the caller. Every line fits 80 columns; cut one that would not.
  return lines.map((l) => (l.length > 80 ? l.slice(0, 79) + '~' : l)).join('\n');
}

function plots(name: string, o: Side, t: Side, control?: Side): { loss: string; diff: string } {
  const pts = (ys: number[]) => ys.map((y, i) => [i + 1, y] as const);
  const loss = lineChart({
    title: `${name}: training loss, osp-lab vs PyTorch (same init, same batches)`,
    xLabel: 'step',
    yLabel: 'loss (nats)',
    series: [
      { name: 'osp-lab', points: pts(o.loss) },
      { name: 'PyTorch', points: pts(t.loss) },
    ],
    xFromZero: true,
  });
  const gap = (a: Side, b: Side) => pts(a.loss.map((v, i) => Math.abs(v - b.loss[i]!)));
  const diff = lineChart({
    title: `${name}: |loss difference| per step`,
    xLabel: 'step',
    yLabel: '|difference| (nats)',
    series: [
      { name: 'osp-lab vs PyTorch', points: gap(o, t) },
      ...(control ? [{ name: 'PyTorch vs PyTorch, init moved 1 ulp', points: gap(t, control) }] : []),
    ],
    yScale: 'log',
    xFromZero: true,
    caption: 'rounding-level at first, then growing roughly exponentially: two trajectories of a chaotic map',
  });
  return { loss, diff };
}

interface TorchResult {
  loss: number[];
  gradNorm: number[];
  lrFactor: number[];
  kurtosis: Record<string, KurtosisPoint>;
  assignment: Record<string, string>;
  decays: Record<string, boolean>;
  wallSeconds: number;
  stepMsMedian: number;
  threads: number;
  torch: string;
  /** With --save-hf: the directory, and each tensor's shape and SHA-256 of its float32 bytes. */
  savedHf?: { dir: string; tensors: Record<string, { shape: number[]; sha256: string }> };
}

/**
 * Reads a --save-hf directory back as osp commands do (openModelSource) and checks that it holds exactly
 * the tensors PyTorch hashed, bit for bit; returns a one-line description.
 */
function checkSavedHf(saved: NonNullable<TorchResult['savedHf']>): string {
  const source = openModelSource(saved.dir);
  const names = [...source.weights.keys()];
  if (names.join() !== Object.keys(saved.tensors).join()) {
    throw new Error(`${saved.dir}: osp-lab reads tensors ${names.join()}, PyTorch saved ${Object.keys(saved.tensors).join()}`);
  }
  let values = 0;
  for (const [name, w] of source.weights) {
    const want = saved.tensors[name]!;
    const got = createHash('sha256')
      .update(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength))
      .digest('hex');
    if (w.shape.join() !== want.shape.join() || got !== want.sha256) {
      throw new Error(`${saved.dir}: tensor '${name}' as osp-lab reads it [${w.shape}] differs from PyTorch's final one [${want.shape}]`);
    }
    values += w.data.length;
  }
  return `${saved.dir}: ${names.length} tensors (${values} values), read back by osp-lab bit-identical to PyTorch's final weights`;
}

/** Runs bench/torch_reference.py's training mode; returns its result and its wall time (process start included). */
function runTorch(python: string, threads: number, args: string[], out: string): { result: TorchResult; side: Side } {
  const t0 = performance.now();
  const res = spawnSync(python, ['bench/torch_reference.py', ...args, '--threads', String(threads), '--out', out], {
    stdio: ['ignore', 'inherit', 'inherit'],
    // One BLAS thread per torch thread: OpenBLAS's own pool on top of torch's oversubscribes the cores.
    env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
  });
  if (res.status !== 0) {
    throw new Error(`${python} bench/torch_reference.py failed (status ${res.status}${res.error ? `, ${res.error.message}` : ''})`);
  }
  const result = JSON.parse(readFileSync(out, 'utf8')) as TorchResult;
  const side = sideOf(result, t0);
  return { result, side };
}

// ---------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------

async function compare(
  name: ConfigName,
  opts: {
    steps: number;
    seed: number;
    backend: string;
    out: string;
    python: string;
    threads: number;
    control: boolean;
    /** Where PyTorch's final weights go as a Hugging Face Llama directory (adam only). */
    saveHf?: string;
  },
): Promise<void> {
  const work = resolve(opts.out, 'work', name);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const raw = runConfig(name, opts.steps, opts.seed, opts.backend, work);
  const config = resolveRunConfig(raw);

  const weights = initialWeights(config);
  const initDir = join(work, 'init');
  const { hf } = writeInit(initDir, config, weights);
  const { batches, monitor } = writeBatches(work, config);

  // osp-lab.
  const recorder = new Recorder(weights);
  const t0 = performance.now();
  const summary = await train({
    config: raw,
    initFrom: hf ? initDir : undefined,
    callbacks: [recorder],
    log: (line) => process.stderr.write(`[osp-lab] ${line}\n`),
  });
  const ospLab = sideOf(recorder, t0);
  if (recorder.initMaxAbsDiff !== 0) throw new Error(`osp-lab's initial weights differ from the dumped ones by ${recorder.initMaxAbsDiff}`);
  if (summary.skippedSteps.nonfinite + summary.skippedSteps.vetoed > 0) {
    process.stderr.write(`[osp-lab] warning: ${JSON.stringify(summary.skippedSteps)} steps skipped\n`);
  }

  // PyTorch, on the resolved config osp-lab recorded in its run directory.
  const torchArgs = [
    '--train-batches',
    batches,
    '--init',
    initDir,
    '--run-config',
    join(summary.runDir, 'config.json'),
    '--monitor-batch',
    monitor,
    '--log-every',
    String(Math.max(1, Math.round(opts.steps / 6))),
  ];
  const saveArgs = opts.saveHf ? ['--save-hf', opts.saveHf] : [];
  const { result: tj, side: torch } = runTorch(opts.python, opts.threads, [...torchArgs, ...saveArgs], join(work, 'torch.json'));
  const control = opts.control
    ? runTorch(opts.python, opts.threads, [...torchArgs, '--perturb-init'], join(work, 'torch-control.json')).side
    : undefined;

  // Same routing and decay flags on both sides; same schedule.
  const routingDiffs: string[] = [];
  for (const [n, w] of Object.entries(recorder.assignment))
    if (tj.assignment[n] !== w) routingDiffs.push(`${n}: ${w} vs ${tj.assignment[n]}`);
  for (const [n, d] of Object.entries(recorder.decays)) if (tj.decays[n] !== d) routingDiffs.push(`${n} decay: ${d} vs ${tj.decays[n]}`);
  const lrMismatch = ospLab.lrFactor.findIndex((f, i) => Math.abs(f - torch.lrFactor[i]!) > 1e-12);
  if (lrMismatch >= 0) routingDiffs.push(`lr factor differs from step ${lrMismatch + 1}`);

  const steps = opts.steps;
  const s: Summary = {
    ...pairStats(ospLab, torch, steps),
    gradNormStep1: [ospLab.gradNorm[0]!, torch.gradNorm[0]!],
    kurtosisStep1: [kurtosisAt(ospLab, 1), kurtosisAt(torch, 1)],
    routingAgrees: routingDiffs.length === 0,
    routingDiffs,
    control: control ? pairStats(torch, control, steps) : undefined,
  };
  const head = [
    name === 'osp'
      ? `osp: SSNorm + EmbProj, Muon (block matrices, EmbProj) + AdamW, ${steps} steps, seed ${opts.seed}`
      : `adam: RMSNorm, plain embedding, AdamW everywhere, ${steps} steps, seed ${opts.seed}`,
    `osp-lab on ${summary.backend.name}, PyTorch ${tj.torch} on ${tj.threads} thread(s); same init, same batches`,
  ];
  const floor = gaussianFloor(config.model.hiddenSize);
  const ms = (side: Side, perStep: number) => `${side.wallSeconds.toFixed(1)} s (${perStep.toFixed(0)} ms/step)`;
  process.stdout.write(
    '\n' +
      report(head, ospLab, torch, s, steps, floor, control?.wallSeconds) +
      `\nwall time: osp-lab ${ms(ospLab, (summary.trainSeconds * 1000) / steps)}, PyTorch ${ms(torch, tj.stepMsMedian)}\n`,
  );

  mkdirSync(opts.out, { recursive: true });
  const jsonPath = join(opts.out, `${name}.json`);
  writeFileSync(
    jsonPath,
    JSON.stringify(
      {
        config: name,
        steps,
        seed: opts.seed,
        backend: summary.backend,
        torch: { version: tj.torch, threads: tj.threads },
        runConfig: config,
        summary: s,
        ospLab,
        pytorch: torch,
        pytorchControl: control,
      },
      null,
      1,
    ) + '\n',
  );
  const svg = plots(name, ospLab, torch, control);
  writeFileSync(join(opts.out, `${name}-loss.svg`), svg.loss);
  writeFileSync(join(opts.out, `${name}-diff.svg`), svg.diff);
  process.stdout.write(`curves: ${jsonPath}\nplots: ${name}-loss.svg, ${name}-diff.svg next to it\n`);
  if (opts.saveHf) {
    if (!tj.savedHf) throw new Error(`${opts.python} bench/torch_reference.py did not report the --save-hf directory`);
    process.stdout.write(`PyTorch's final weights (Hugging Face Llama): ${checkSavedHf(tj.savedHf)}\n`);
  }
}

/** Refuses --save-hf DIR before any training when DIR is a file or a non-empty directory. */
function checkSaveDir(dir: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new Error(`--save-hf: ${dir} is a file; expected a new or empty directory`);
  if (readdirSync(dir).length > 0) throw new Error(`--save-hf: ${dir} exists and is not empty; choose a new directory (nothing was run)`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', default: 'both' },
      steps: { type: 'string', default: '300' },
      seed: { type: 'string', default: '0' },
      out: { type: 'string', default: 'runs/torch-compare' },
      backend: { type: 'string' },
      python: { type: 'string', default: '/usr/bin/python3' },
      'torch-threads': { type: 'string', default: '1' },
      'no-control': { type: 'boolean', default: false },
      'save-hf': { type: 'string' },
    },
  });
  const configs: ConfigName[] = values.config === 'both' ? ['adam', 'osp'] : [values.config as ConfigName];
  if (!configs.every((c) => c === 'adam' || c === 'osp')) throw new Error(`--config must be adam, osp or both, got '${values.config}'`);
  const int = (name: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
  const steps = int('steps', values.steps!, 1);
  const seed = int('seed', values.seed!, 0);
  const threads = int('torch-threads', values['torch-threads']!, 1);
  const saveHf = values['save-hf'] === undefined ? undefined : resolve(values['save-hf']);
  if (saveHf !== undefined) {
    if (!configs.includes('adam')) {
      throw new Error(
        '--save-hf saves the adam configuration only: the osp run (SSNorm, EmbProj) is not a plain Llama until folded; ' +
          'use --config adam (or both)',
      );
    }
    checkSaveDir(saveHf);
    if (configs.includes('osp'))
      process.stderr.write(`--save-hf: the adam run is saved to ${saveHf}; the osp run is not (not a plain Llama)\n`);
  }
  const backend = values.backend ?? (probeNative().available ? 'native' : 'cpu');
  for (const name of configs) {
    await compare(name, {
      steps,
      seed,
      backend,
      out: resolve(values.out!),
      python: values.python!,
      threads,
      control: !values['no-control'],
      saveHf: name === 'adam' ? saveHf : undefined,
    });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`torch-compare: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
