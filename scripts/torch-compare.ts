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
 *
 * Layout: this file is the command line and the run of one configuration (compare); next to it,
 *   scripts/torch-compare/inputs.ts   the run configs, the initial weights and the batches both sides get
 *   scripts/torch-compare/sides.ts    osp-lab's recorder, the PyTorch child process, the --save-hf check
 *   scripts/torch-compare/report.ts   the comparison statistics, the printed table and the SVG plots
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { probeNative } from '../src/backend/native/index.ts';
import { resolveRunConfig } from '../src/train/config.ts';
import { gaussianFloor } from '../src/metrics/outliers.ts';
import { train } from '../src/train/run.ts';
import { initialWeights, runConfig, writeBatches, writeInit, type ConfigName } from './torch-compare/inputs.ts';
import { kurtosisAt, pairStats, plots, report, type Summary } from './torch-compare/report.ts';
import { checkSavedHf, Recorder, runTorch, sideOf, type Side } from './torch-compare/sides.ts';

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
