/**
 * `osp train` as a library function: validate the config (plan.ts), load the data and build its fixed
 * batches (parts.ts), start the backend, build model and optimizer, restore a resume (resume.ts),
 * commit the run directory, train, and write summary.json (summary.ts).
 */
import { join, resolve } from 'node:path';
import { startBackend, stopBackend, type BackendInfo } from '../backend/index.ts';
import { openDataset } from '../data/dataset.ts';
import { loadTokenizer } from '../data/tokenizer.ts';
import { OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { Transformer } from '../model/transformer.ts';
import { buildOptimizer } from '../optim/routing.ts';
import { Rng } from '../utils/rng.ts';
import type { Callback } from './callback.ts';
import { saveCheckpoint } from './checkpoint.ts';
import { buildCallbacks, buildRunData } from './parts.ts';
import { commitRun, planRun, type PlannedRun } from './plan.ts';
import { restoreRun } from './resume.ts';
import type { RunSummary } from './summary.ts';
import { Trainer } from './trainer.ts';

export type { RunSummary } from './summary.ts';

export interface TrainOptions {
  /** Raw config (a parsed JSON file); ignored on resume, where the run's config.json is used. */
  config?: unknown;
  /** `--set key=value` overrides, applied on top of the config (also on resume). */
  overrides?: string[];
  /** Continue the run in this directory from its latest good checkpoint. */
  resume?: string;
  /** Where progress and notices go (default: stdout). */
  log?: (line: string) => void;
  /** Start from the weights of a Hugging Face Llama checkpoint directory (fresh runs only). */
  initFrom?: string;
  /** Resume only: accept an lr schedule that jumps at the resume step (`--extend-schedule`). */
  extendSchedule?: boolean;
  /**
   * Stop request (the CLI wires Ctrl-C and SIGTERM to it): the current step finishes, a checkpoint
   * is saved, and train() returns a summary with `stopped: true`.
   */
  stop?: AbortSignal;
  /**
   * Extra callbacks (monitors of your own). They run after the built-in monitors and before the
   * sinks, so the metrics they record reach the console, metrics.jsonl and TensorBoard.
   */
  callbacks?: Callback[];
}

/**
 * One short line: the backend, what runs under it (OpenBLAS's build flags left out) and, for `auto`,
 * why the ones before it were passed over.
 */
export function backendLine(b: BackendInfo): string {
  const detail = b.detail.replace(/\s+(NO_[A-Z_]+|DYNAMIC_ARCH|NO_AFFINITY|MAX_THREADS=\d+|USE_OPENMP=\d+)(?=[\s);]|$)/g, '');
  const why = b.reason ? /\((.*)\)$/.exec(b.reason)?.[1] : undefined;
  return `backend: ${b.name}: ${detail}${why ? ` [auto; ${why}]` : ''}`;
}

/**
 * Trains a run end to end (or resumes one) and returns its summary.
 * @example await train({ config: readConfigFile('configs/tiny.json'), overrides: ['steps=100'] })
 */
export async function train(opts: TrainOptions): Promise<RunSummary> {
  const log = opts.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const plan = planRun(opts, log);
  try {
    if (plan.complete) {
      log(`${plan.runDir} is already complete at step ${plan.complete.steps}; nothing to train (to continue, resume with --set steps=N)`);
      return plan.complete;
    }
    return await trainPlanned(opts, plan, log);
  } finally {
    plan.lock?.release();
  }
}

async function trainPlanned(opts: TrainOptions, plan: PlannedRun, log: (line: string) => void): Promise<RunSummary> {
  const { config, runDir } = plan;
  // Data first: a missing or short data file fails before any backend (or GPU) is started, and
  // before the run directory exists.
  const tokenizer = loadTokenizer(config.tokenizer);
  const data = buildRunData(config, openDataset(config.data, { vocabSize: config.model.vocabSize, tokenizer }), tokenizer);
  const { batcher } = data;

  const backend: BackendInfo = await startBackend(config.backend);
  log(backendLine(backend));
  const model = new Transformer(config.model, new Rng(config.seed));
  const optimizer = buildOptimizer(config.optimizer, model);
  // Everything created from here holds tensors (and maybe a GPU): release it on any failure.
  const release = async () => {
    optimizer.dispose();
    model.dispose();
    await stopBackend();
  };
  let trainer: Trainer;
  let callbacks: ReturnType<typeof buildCallbacks>;
  try {
    callbacks = buildCallbacks(config, data, opts.callbacks);
    const state = restoreRun(plan, { model, optimizer, batcher, callbacks: callbacks.all }, log);
    if (plan.initWeights) log(`initialised from ${resolve(opts.initFrom!)}`);
    trainer = new Trainer({
      config,
      runDir,
      model,
      optimizer,
      train: batcher,
      callbacks: callbacks.all,
      state,
      stop: opts.stop,
      save: (t) =>
        saveCheckpoint(runDir, model, optimizer, {
          step: t.state.step,
          seed: config.seed,
          data: batcher.state(),
          trainer: t.state,
          callbacks: Object.fromEntries(t.callbacks.filter((cb) => cb.stateDict).map((cb) => [cb.name, cb.stateDict!()])),
          config,
        }),
    });
    // A stop requested during start-up (data, backend, model) ends here, before anything is written.
    if (opts.stop?.aborted) throw new OspError('stopped before training started; nothing was written');
    commitRun(plan, opts, tokenizer, log);
  } catch (e) {
    await release();
    throw e;
  }
  const startStep = trainer.state.step;
  const params = model.numParams();
  const { size, seqLen, accum } = config.batch;
  log(
    `training ${config.name}: ${params.toLocaleString('en-US')} parameters, ` +
      `${config.steps} steps of ${size}x${seqLen}x${accum} tokens, run directory ${runDir}`,
  );
  const t0 = performance.now();
  try {
    await trainer.fit();
  } finally {
    await release();
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  const steps = trainer.state.step;
  const tokensSeen = (steps - startStep) * size * seqLen * accum;
  // Training throughput: the steps' own time, without evaluations, monitors and checkpoints.
  const trainSeconds = callbacks.tracker.stepMs / 1000;
  const summary: RunSummary = {
    name: config.name,
    runDir,
    backend: { name: backend.name, detail: backend.detail },
    steps,
    stopped: steps < config.steps,
    params,
    tokensSeen,
    wallSeconds,
    trainSeconds,
    tokensPerSecond: trainSeconds > 0 ? tokensSeen / trainSeconds : 0,
    finalTrainLoss: callbacks.tracker.finalLoss(),
    eval: callbacks.evalCb.last,
    unigramBaseline: data.baseline,
    skippedSteps: trainer.state.skipped,
    lastCheckpoint: callbacks.checkpointCb.lastSaved,
    resumedFrom: plan.resumeFrom?.dir,
    monitors: Object.fromEntries(callbacks.all.filter((cb) => cb.summary).map((cb) => [cb.name, cb.summary!()])),
  };
  // A stopped run is not finished: without summary.json, sweeps resume it rather than skip it.
  if (!summary.stopped) writeFileAtomicSync(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
