/**
 * `osp train` as a library function: validate the config, prepare the run directory, start the
 * backend, build data, model, optimizer and callbacks, resume if asked, train, and write summary.json.
 */
import { existsSync, mkdirSync, readFileSync, accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type BackendInfo } from '../backend/index.ts';
import { applyOverrides, resolveRunConfig, type RunConfig } from '../config/run.ts';
import { Batcher, evalBatches } from '../data/batcher.ts';
import { loadDataset } from '../data/dataset.ts';
import { ConfigError, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { createModel } from '../model/transformer.ts';
import { checkInitFrom, readHfCheckpoint } from '../export/hf.ts';
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
import { Trainer, type TrainerState } from './trainer.ts';
import { acquireLock, type DirLock } from '../sweep/lock.ts';

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
  steps: number;
  params: number;
  tokensSeen: number;
  wallSeconds: number;
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
  tokensPerSecond: number[] = [];
  onStepEnd(ctx: TrainContext): void {
    const l = ctx.metrics.get('train/loss');
    if (l !== undefined && Number.isFinite(l)) this.losses.push(l);
    if (this.losses.length > 20) this.losses.shift();
    const t = ctx.metrics.get('throughput/tokens_per_s');
    if (t !== undefined) this.tokensPerSecond.push(t);
  }
}

function prepareRunDir(config: RunConfig): string {
  const runDir = resolve(config.out, config.name);
  if (existsSync(join(runDir, 'config.json')) || existsSync(join(runDir, 'checkpoints'))) {
    throw new ConfigError(
      'name',
      `run directory ${runDir} already holds a run; continue it with 'osp train --resume ${runDir}' ` +
        `or choose another name (--set name=...)`,
    );
  }
  try {
    mkdirSync(runDir, { recursive: true });
    accessSync(runDir, constants.W_OK);
  } catch (e) {
    throw new OspError(`cannot create or write the run directory ${runDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return runDir;
}

/**
 * Trains a run end to end (or resumes one) and returns its summary.
 * @example await train({ config: readConfigFile('configs/tiny.json'), overrides: ['steps=100'] })
 */
interface OpenedRun {
  config: RunConfig;
  runDir: string;
  lock: DirLock;
  resumeFrom?: { dir: string; state: CheckpointState; checkpoint: ReturnType<typeof findLatestCheckpoint>['found'] };
  initWeights?: ReturnType<typeof readHfCheckpoint>;
}

/**
 * Validates everything, prepares (or reopens) the run directory and takes its lock, so that a second
 * `osp train` on the same directory is refused while this one runs.
 */
function openRun(opts: TrainOptions, log: (line: string) => void): OpenedRun {
  let config: RunConfig;
  let runDir: string;
  if (opts.resume && opts.initFrom) throw new ConfigError('--init-from', 'cannot be combined with --resume (a resumed run continues from its own checkpoint)');
  let initWeights: OpenedRun['initWeights'];
  let resumeFrom: OpenedRun['resumeFrom'];
  let lock: DirLock | undefined;
  try {
    if (opts.resume) {
      runDir = resolve(opts.resume);
      const configPath = join(runDir, 'config.json');
      if (!existsSync(configPath)) {
        throw new ConfigError('--resume', `${runDir} is not a run directory (no config.json)`);
      }
      lock = acquireLock(runDir, `osp train --resume ${runDir}`, (msg) => log(`warning: ${msg}`));
      // Holding the lock, any half-written checkpoint directory is a killed writer's leftover.
      removeCheckpointLeftovers(runDir, log);
      const saved = JSON.parse(readFileSync(configPath, 'utf8')) as { input: unknown; initFrom?: string };
      const input = applyOverrides(saved.input, opts.overrides ?? []);
      config = resolveRunConfig(input);
      if (opts.overrides?.length) {
        // The run's config is now the overridden one (e.g. more steps): record it for readers and later resumes.
        writeFileAtomicSync(configPath, JSON.stringify({ ...saved, input, resolved: config }, null, 2) + '\n');
      }
      const { found, skipped } = findLatestCheckpoint(runDir);
      for (const s of skipped) log(`warning: skipping checkpoint ${s.dir}: ${s.reason}`);
      if (!found) throw new OspError(`--resume ${runDir}: no complete checkpoint to resume from`);
      if (skipped.length > 0) log(`resuming from the previous good checkpoint ${found.dir}`);
      resumeFrom = { dir: found.dir, state: found.checkpoint.state, checkpoint: found };
    } else {
      const input = applyOverrides(opts.config ?? {}, opts.overrides ?? []);
      config = resolveRunConfig(input);
      if (opts.initFrom) {
        // Validate before anything is written: a mismatch must not leave a half-made run directory.
        initWeights = readHfCheckpoint(opts.initFrom);
        checkInitFrom(config.model, initWeights.config, opts.initFrom);
      }
      runDir = prepareRunDir(config);
      lock = acquireLock(runDir, `osp train ${config.name}`, (msg) => log(`warning: ${msg}`));
      writeFileAtomicSync(
        join(runDir, 'config.json'),
        JSON.stringify({ input, resolved: config, initFrom: opts.initFrom ? resolve(opts.initFrom) : undefined }, null, 2) + '\n',
      );
    }
    return { config, runDir, lock: lock!, resumeFrom, initWeights };
  } catch (e) {
    lock?.release();
    throw e;
  }
}

export async function train(opts: TrainOptions): Promise<RunSummary> {
  const log = opts.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const opened = openRun(opts, log);
  try {
    return await trainOpened(opts, opened, log);
  } finally {
    opened.lock.release();
  }
}

async function trainOpened(
  opts: TrainOptions,
  { config, runDir, resumeFrom, initWeights }: OpenedRun,
  log: (line: string) => void,
): Promise<RunSummary> {
  // Data first: a missing or short data file fails before any backend (or GPU) is started.
  const data = loadDataset(config.data, { vocabSize: config.model.vocabSize });
  const { size, seqLen } = config.batch;
  const batcher = new Batcher(data.train, { batchSize: size, seqLen, seed: config.seed });
  const valBatches = evalBatches(data.val, { batchSize: size, seqLen, maxBatches: config.eval.batches });
  const baselineLoss = unigramCrossEntropy(data.train.tokens, valBatches.map((b) => b.targets), config.model.vocabSize);
  let baselineBytes = 0;
  let baselineTokens = 0;
  for (const b of valBatches) for (const t of b.targets) (baselineTokens++, t < 256 && baselineBytes++);

  const backend: BackendInfo = await startBackend(config.backend);
  log(`backend: ${backend.name} (${backend.detail})${backend.reason ? ` - ${backend.reason}` : ''}`);
  const model = createModel(config.model, { seed: config.seed });
  const optimizer = createOptimizer(config.optimizer, model.params);
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
      const held = evalBatches(data.val, { batchSize: config.monitor.batchSize, seqLen, maxBatches: 1 })[0]!;
      monitors.push(new OutlierMonitor(held.inputs, config.monitor.batchSize, seqLen));
    }
    if (config.quant.every > 0) monitors.push(new QuantEvalCallback(valBatches));
    if (config.hessian.every > 0) {
      // The first training windows, unshuffled: the Hessian of the training objective on a fixed batch.
      monitors.push(new HessianProbe(evalBatches(data.train, { batchSize: config.hessian.batchSize, seqLen, maxBatches: 1 })[0]!));
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
    }

    const trainer = new Trainer({
      config,
      runDir,
      model,
      optimizer,
      train: batcher,
      callbacks,
      state: trainerState,
      save: (t) =>
        saveCheckpoint(runDir, model, optimizer, {
          step: t.state.step,
          seed: config.seed,
          data: batcher.state(),
          trainer: t.state,
          callbacks: Object.fromEntries(
            t.callbacks.filter((cb) => cb.stateDict).map((cb) => [cb.name, cb.stateDict!()]),
          ),
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
  const tokensSeen = (config.steps - startStep) * size * seqLen * config.batch.accum;
  const summary: RunSummary = {
    name: config.name,
    runDir,
    backend: { name: backend.name, detail: backend.detail },
    steps: config.steps,
    params,
    tokensSeen,
    wallSeconds,
    tokensPerSecond: tokensSeen / wallSeconds,
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
  writeFileAtomicSync(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
