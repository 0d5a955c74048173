/**
 * `osp train` as a library function: validate the config, prepare the run directory, start the
 * backend, build data, model, optimizer and callbacks, resume if asked, train, and write summary.json.
 */
import { existsSync, mkdirSync, readFileSync, accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type BackendInfo } from '../backend/index.ts';
import { applyOverrides, resolveRunConfig, type RunConfig } from '../config/run.ts';
import { Batcher, evalBatches, rowBos } from '../data/batcher.ts';
import { loadDataset } from '../data/dataset.ts';
import { ConfigError, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { createModel } from '../model/transformer.ts';
import { checkInitFrom, readHfCheckpoint } from '../model/hf.ts';
import { createOptimizer } from '../optim/routing.ts';
import { unigramCrossEntropy } from './baseline.ts';
import type { Callback, TrainContext } from './callback.ts';
import {
  removeCheckpointLeftovers,
  findLatestCheckpoint,
  loadModelWeights,
  optimizerTensors,
  saveCheckpoint,
  type CheckpointState,
} from './checkpoint.ts';
import { CheckpointCallback } from './callbacks/checkpoint.ts';
import { EvalCallback, type EvalResult } from './callbacks/eval.ts';
import { ZScoreGuard } from './callbacks/guard.ts';
import { ConsoleSink, JsonlSink } from './callbacks/logging.ts';
import { TensorBoardSink } from './callbacks/tensorboard.ts';
import { UpdateRmsMonitor } from './callbacks/update_rms.ts';
import { OutlierMonitor } from './callbacks/outliers.ts';
import { HessianProbe } from './callbacks/hessian.ts';
import { QuantEvalCallback } from './callbacks/quant.ts';
import { checkQuantSetting } from '../quant/eval.ts';
import { Trainer, type TrainerState } from './trainer.ts';
import { acquireLock, type DirLock } from '../io/lock.ts';
import { checkResume } from './resume_check.ts';

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

export interface RunSummary {
  name: string;
  runDir: string;
  backend: { name: string; detail: string };
  /** Steps completed (below config.steps when the run was stopped). */
  steps: number;
  /** Stopped by a stop request (Ctrl-C) before config.steps; its last checkpoint is at `steps`. */
  stopped: boolean;
  params: number;
  tokensSeen: number;
  /** Seconds from the first step to the end, evaluations, monitors and checkpoints included. */
  wallSeconds: number;
  /** Seconds spent in training steps alone. */
  trainSeconds: number;
  /** Training throughput: tokens of this session's steps over trainSeconds. */
  tokensPerSecond: number;
  finalTrainLoss: number;
  eval?: EvalResult;
  unigramBaseline: { loss: number; bitsPerByte: number };
  skippedSteps: { nonfinite: number; vetoed: number };
  lastCheckpoint?: string;
  resumedFrom?: string;
  /** What each monitor measured last (outliers, hessian, ...), by callback name. */
  monitors: Record<string, unknown>;
}

/** Tracks the tail of the training loss and throughput for summary.json. */
class SummaryTracker implements Callback {
  readonly name = 'summary';
  losses: number[] = [];
  /** Milliseconds spent in training steps (forward, backward, update), summed. */
  stepMs = 0;
  onStepEnd(ctx: TrainContext): void {
    const l = ctx.metrics.get('train/loss');
    if (l !== undefined && Number.isFinite(l)) this.losses.push(l);
    if (this.losses.length > 20) this.losses.shift();
    this.stepMs += ctx.metrics.get('throughput/step_ms') ?? 0;
  }
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
 * Refuses a run directory that already holds a run. A directory left without any complete checkpoint
 * (a run that stopped before its first one) is named as such: there is nothing to resume in it.
 */
function checkRunDirFree(runDir: string): void {
  if (!existsSync(join(runDir, 'config.json')) && !existsSync(join(runDir, 'checkpoints'))) return;
  if (!findLatestCheckpoint(runDir).found) {
    throw new ConfigError(
      'name',
      `run directory ${runDir} holds a run that stopped before its first checkpoint, so there is nothing to resume; ` +
        `remove it (rm -r ${runDir}) to train under this name again, or choose another name (--set name=...)`,
    );
  }
  throw new ConfigError(
    'name',
    `run directory ${runDir} already holds a run; continue it with 'osp train --resume ${runDir}' ` +
      `or choose another name (--set name=...)`,
  );
}

/** Creates the run directory (checked free again: another run may have taken the name meanwhile). */
function createRunDir(runDir: string): void {
  checkRunDirFree(runDir);
  try {
    mkdirSync(runDir, { recursive: true });
    accessSync(runDir, constants.W_OK);
  } catch (e) {
    throw new OspError(`cannot create or write the run directory ${runDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * A validated run, before anything is written: the config, where it goes, and what it starts from.
 * A resume already holds the run directory's lock (it reads the checkpoints); a fresh run takes it
 * when it creates the directory, after data and backend have been checked.
 */
interface PlannedRun {
  config: RunConfig;
  runDir: string;
  /** The raw config written to config.json (`input`), and config.json's other fields on resume. */
  input: Record<string, unknown>;
  saved?: Record<string, unknown>;
  lock?: DirLock;
  resumeFrom?: { dir: string; state: CheckpointState; checkpoint: NonNullable<ReturnType<typeof findLatestCheckpoint>['found']> };
  /** Lines to print once the run is resumed (an accepted schedule change). */
  notices: string[];
  /** A plain resume of a finished run: its summary, and nothing to do. */
  complete?: RunSummary;
  initWeights?: ReturnType<typeof readHfCheckpoint>;
}

/**
 * Validates everything that can be validated without data or a backend. On resume it takes the run
 * directory's lock (so a second `osp train` on it is refused) and checks the overrides against the
 * checkpoint; nothing is written until the run is committed.
 */
/** A `quant` section the model cannot be measured with fails before training, not at its first measurement. */
function checkQuantSection(config: RunConfig): void {
  const { every, batches: _batches, ...quant } = config.quant;
  if (every > 0) checkQuantSetting(config.model, quant);
}

function planRun(opts: TrainOptions, log: (line: string) => void): PlannedRun {
  if (opts.resume && opts.initFrom)
    throw new ConfigError('--init-from', 'cannot be combined with --resume (a resumed run continues from its own checkpoint)');
  if (!opts.resume) {
    const input = applyOverrides(opts.config ?? {}, opts.overrides ?? []);
    const config = resolveRunConfig(input);
    checkQuantSection(config);
    let initWeights: PlannedRun['initWeights'];
    if (opts.initFrom) {
      initWeights = readHfCheckpoint(opts.initFrom);
      checkInitFrom(config.model, initWeights.config, opts.initFrom);
    }
    const runDir = resolve(config.out, config.name);
    checkRunDirFree(runDir);
    return { config, runDir, input, notices: [], initWeights };
  }
  const runDir = resolve(opts.resume);
  const configPath = join(runDir, 'config.json');
  if (!existsSync(configPath)) throw new ConfigError('--resume', `${runDir} is not a run directory (no config.json)`);
  const lock = acquireLock(runDir, `osp train --resume ${runDir}`, (msg) => log(`warning: ${msg}`));
  try {
    // Holding the lock, any half-written checkpoint directory is a killed writer's leftover.
    removeCheckpointLeftovers(runDir, log);
    const saved = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown> & { input: unknown };
    const input = applyOverrides(saved.input, opts.overrides ?? []);
    const config = resolveRunConfig(input);
    checkQuantSection(config);
    const { found, skipped } = findLatestCheckpoint(runDir);
    for (const s of skipped) log(`warning: skipping checkpoint ${s.dir}: ${s.reason}`);
    if (!found) {
      throw new OspError(
        `--resume ${runDir}: no complete checkpoint to resume from (the run stopped before its first one); ` +
          `remove it (rm -r ${runDir}) and train again`,
      );
    }
    if (skipped.length > 0) log(`resuming from the previous good checkpoint ${found.dir}`);
    const state = found.checkpoint.state;
    const summaryPath = join(runDir, 'summary.json');
    if (state.step >= config.steps && !opts.overrides?.length && existsSync(summaryPath)) {
      // A finished run resumed as it is (a requeued scheduler task): nothing to train, nothing written.
      const complete = JSON.parse(readFileSync(summaryPath, 'utf8')) as RunSummary;
      return { config, runDir, input, saved, lock, notices: [], complete };
    }
    const notices = checkResume(state.config as RunConfig, config, state.step, opts.extendSchedule ?? false, !opts.overrides?.length);
    return { config, runDir, input, saved, lock, resumeFrom: { dir: found.dir, state, checkpoint: found }, notices };
  } catch (e) {
    lock.release();
    throw e;
  }
}

/**
 * Writes the run's config: a fresh run creates its directory and takes its lock first; a resume
 * records its overrides (e.g. more steps) for readers and later resumes. Called only once data,
 * backend, model and checkpoint have all loaded, so a refused or failed start writes nothing.
 */
function commitRun(plan: PlannedRun, opts: TrainOptions, log: (line: string) => void): void {
  const configPath = join(plan.runDir, 'config.json');
  if (!plan.resumeFrom) {
    createRunDir(plan.runDir);
    plan.lock = acquireLock(plan.runDir, `osp train ${plan.config.name}`, (msg) => log(`warning: ${msg}`));
    const initFrom = opts.initFrom ? resolve(opts.initFrom) : undefined;
    writeFileAtomicSync(configPath, JSON.stringify({ input: plan.input, resolved: plan.config, initFrom }, null, 2) + '\n');
  } else if (opts.overrides?.length) {
    writeFileAtomicSync(configPath, JSON.stringify({ ...plan.saved, input: plan.input, resolved: plan.config }, null, 2) + '\n');
  }
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
  const { config, runDir, resumeFrom, initWeights } = plan;
  // Data first: a missing or short data file fails before any backend (or GPU) is started, and
  // before the run directory exists.
  const data = loadDataset(config.data, { vocabSize: config.model.vocabSize });
  const { size, seqLen } = config.batch;
  const bos = rowBos(config);
  const batcher = new Batcher(data.train, { batchSize: size, seqLen, seed: config.data.seed ?? config.seed, bos });
  const valBatches = evalBatches(data.val, {
    batchSize: size,
    seqLen,
    maxBatches: config.eval.batches,
    purpose: 'evaluation (batch.size)',
    bos,
  });
  // The monitors' fixed batches are checked here too, before any backend starts.
  const held =
    config.monitor.every > 0
      ? evalBatches(data.val, {
          batchSize: config.monitor.batchSize,
          seqLen,
          maxBatches: 1,
          purpose: 'the outlier monitor (monitor.batchSize)',
          bos,
        })[0]!
      : undefined;
  const hessianBatch =
    config.hessian.every > 0
      ? evalBatches(data.train, {
          batchSize: config.hessian.batchSize,
          seqLen,
          maxBatches: 1,
          purpose: 'the Hessian probe (hessian.batchSize)',
          bos,
        })[0]!
      : undefined;
  // GPTQ's calibration windows: the first training windows, unshuffled (never the validation text).
  const gptqCalibration =
    config.quant.every > 0 && config.quant.w !== 16 && config.quant.method.includes('gptq')
      ? evalBatches(data.train, {
          batchSize: size,
          seqLen,
          maxBatches: Math.ceil(config.quant.gptq.calibrationWindows / size),
          purpose: 'GPTQ calibration (quant.gptq.calibrationWindows)',
          bos,
        })
      : [];
  const baselineLoss = unigramCrossEntropy(
    data.train.tokens,
    valBatches.map((b) => b.targets),
    config.model.vocabSize,
  );
  let baselineBytes = 0;
  let baselineTokens = 0;
  for (const b of valBatches) {
    for (const t of b.targets) {
      baselineTokens++;
      if (t < 256) baselineBytes++;
    }
  }

  const backend: BackendInfo = await startBackend(config.backend);
  log(backendLine(backend));
  const model = createModel(config.model, { seed: config.seed });
  const optimizer = createOptimizer(config.optimizer, model);
  // Everything created from here holds tensors (and maybe a GPU): release it on any failure.
  const release = async () => {
    optimizer.dispose();
    model.dispose();
    await stopBackend();
  };
  const assemble = () => {
    const evalCb = new EvalCallback(valBatches);
    const monitors: Callback[] = [];
    if (config.monitor.every > 0) {
      // The first validation windows: the same tokens at every measurement, never trained on.
      monitors.push(new OutlierMonitor(held!.inputs, config.monitor.batchSize, seqLen));
    }
    if (config.quant.every > 0) monitors.push(new QuantEvalCallback(valBatches, gptqCalibration));
    if (config.hessian.every > 0) {
      // The first training windows, unshuffled: the Hessian of the training objective on a fixed batch.
      monitors.push(new HessianProbe(hessianBatch!));
    }
    const checkpointCb = new CheckpointCallback();
    const tracker = new SummaryTracker();
    const callbacks: Callback[] = [
      new ZScoreGuard(),
      new UpdateRmsMonitor(),
      evalCb,
      ...monitors,
      checkpointCb,
      tracker,
      ...(opts.callbacks ?? []),
      new ConsoleSink(),
      new JsonlSink(),
      ...(config.logging.tensorboard ? [new TensorBoardSink()] : []),
    ];

    if (initWeights) {
      for (const [name, p] of model.params) {
        const w = initWeights.weights.get(name)!;
        tf.tidy(() => p.assign(tf.tensor(w.data, p.shape)));
      }
      log(`initialised from ${resolve(opts.initFrom!)}`);
    }

    let trainerState: TrainerState | undefined;
    if (resumeFrom) {
      const { state, checkpoint } = resumeFrom;
      const { model: weights, optimizer: optState } = checkpoint!.checkpoint;
      loadModelWeights(model, weights, join(resumeFrom.dir, 'model.safetensors'));
      const tensors = optimizerTensors(optState);
      try {
        optimizer.loadStateDict(tensors);
      } finally {
        tf.dispose([...tensors.values()]);
      }
      batcher.setState(state.data as ReturnType<Batcher['state']>);
      for (const cb of callbacks) {
        const s = state.callbacks[cb.name];
        if (s !== undefined && cb.loadStateDict) cb.loadStateDict(s);
      }
      trainerState = state.trainer as TrainerState;
      log(`resumed ${runDir} at step ${state.step}`);
      for (const notice of plan.notices) log(notice);
    }

    const trainer = new Trainer({
      config,
      runDir,
      model,
      optimizer,
      train: batcher,
      callbacks,
      state: trainerState,
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
    return { trainer, evalCb, checkpointCb, tracker, callbacks };
  };
  let assembled: ReturnType<typeof assemble>;
  try {
    assembled = assemble();
  } catch (e) {
    await release();
    throw e;
  }
  const { trainer, evalCb, checkpointCb, tracker, callbacks } = assembled;
  try {
    // A stop requested during start-up (data, backend, model) ends here, before anything is written.
    if (opts.stop?.aborted) throw new OspError('stopped before training started; nothing was written');
    commitRun(plan, opts, log);
  } catch (e) {
    await release();
    throw e;
  }
  const startStep = trainer.state.step;
  const params = model.numParams();
  log(
    `training ${config.name}: ${params.toLocaleString('en-US')} parameters, ` +
      `${config.steps} steps of ${size}x${seqLen}x${config.batch.accum} tokens, run directory ${runDir}`,
  );
  const t0 = performance.now();
  try {
    await trainer.fit();
  } finally {
    await release();
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  const steps = trainer.state.step;
  const tokensSeen = (steps - startStep) * size * seqLen * config.batch.accum;
  // Training throughput: the steps' own time, without evaluations, monitors and checkpoints.
  const trainSeconds = tracker.stepMs / 1000;
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
    finalTrainLoss: tracker.losses.reduce((a, b) => a + b, 0) / Math.max(tracker.losses.length, 1),
    eval: evalCb.last,
    unigramBaseline: {
      loss: baselineLoss,
      bitsPerByte: (baselineLoss * baselineTokens) / Math.LN2 / Math.max(baselineBytes, 1),
    },
    skippedSteps: trainer.state.skipped,
    lastCheckpoint: checkpointCb.lastSaved,
    resumedFrom: resumeFrom?.dir,
    monitors: Object.fromEntries(callbacks.filter((cb) => cb.summary).map((cb) => [cb.name, cb.summary!()])),
  };
  // A stopped run is not finished: without summary.json, sweeps resume it rather than skip it.
  if (!summary.stopped) writeFileAtomicSync(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
