/**
 * The parts of a run that are built from its config before training: the data (the batcher and every
 * fixed batch the callbacks measure on, checked before any backend starts) and the callbacks in their
 * order. train() in run.ts puts them together with the model and optimizer.
 */
import { Batcher, evalBatches, rowBos } from '../data/batcher.ts';
import type { TokenDataset } from '../data/dataset.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { unigramCrossEntropy } from './baseline.ts';
import type { Callback } from './callback.ts';
import { CheckpointCallback } from './callbacks/checkpoint.ts';
import { EvalCallback, type EvalBatch } from './callbacks/eval.ts';
import { ZScoreGuard } from './callbacks/guard.ts';
import { HessianProbe } from './callbacks/hessian.ts';
import { ConsoleSink, JsonlSink } from './callbacks/logging.ts';
import { OutlierMonitor } from './callbacks/outliers.ts';
import { QuantEvalCallback } from './callbacks/quant.ts';
import { TensorBoardSink } from './callbacks/tensorboard.ts';
import { UpdateRmsMonitor } from './callbacks/update_rms.ts';
import type { RunConfig } from './config.ts';
import { SummaryTracker } from './summary.ts';

/** The run's data: the training batcher and the fixed batches of evaluation and the monitors. */
export interface RunData {
  /** The run's tokenizer (`tokenizer`): BOS of the rows, bytes per token of bits per byte. */
  tokenizer: Tokenizer;
  batcher: Batcher;
  /** The validation windows of every evaluation (eval.batches of them, unshuffled). */
  valBatches: EvalBatch[];
  /** The outlier monitor's held-out batch (the first validation windows), when the monitor is on. */
  held?: EvalBatch;
  /** The Hessian probe's batch (the first training windows, unshuffled), when the probe is on. */
  hessianBatch?: EvalBatch;
  /** GPTQ's calibration windows (the first training windows), when quant measures GPTQ. */
  gptqCalibration: EvalBatch[];
  /** The unigram model's validation loss and bits per byte: the floor a model must beat. */
  baseline: { loss: number; bitsPerByte: number };
}

/**
 * Builds the batcher and every fixed batch from the loaded dataset. Each is checked here (enough
 * windows for its batch size), so a short data file fails before any backend (or GPU) is started.
 */
export function buildRunData(config: RunConfig, data: { train: TokenDataset; val: TokenDataset }, tokenizer: Tokenizer): RunData {
  const { size, seqLen } = config.batch;
  const bos = rowBos(config, tokenizer);
  const batcher = new Batcher(data.train, { batchSize: size, seqLen, seed: config.data.seed ?? config.seed, bos });
  const fixed = (from: TokenDataset, batchSize: number, maxBatches: number, purpose: string) =>
    evalBatches(from, { batchSize, seqLen, maxBatches, purpose, bos });
  const valBatches = fixed(data.val, size, config.eval.batches, 'evaluation (batch.size)');
  const held =
    config.monitor.every > 0 ? fixed(data.val, config.monitor.batchSize, 1, 'the outlier monitor (monitor.batchSize)')[0] : undefined;
  const hessianBatch =
    config.hessian.every > 0 ? fixed(data.train, config.hessian.batchSize, 1, 'the Hessian probe (hessian.batchSize)')[0] : undefined;
  // GPTQ's calibration windows: the first training windows, unshuffled (never the validation text).
  const q = config.quant;
  const gptqCalibration =
    q.every > 0 && q.w !== 16 && q.method.includes('gptq')
      ? fixed(data.train, size, Math.ceil(q.gptq.calibrationWindows / size), 'GPTQ calibration (quant.gptq.calibrationWindows)')
      : [];
  const loss = unigramCrossEntropy(
    data.train.tokens,
    valBatches.map((b) => b.targets),
    config.model.vocabSize,
  );
  let bytes = 0;
  let tokens = 0;
  for (const b of valBatches) {
    for (const t of b.targets) {
      tokens++;
      bytes += tokenizer.byteLength(t);
    }
  }
  return {
    tokenizer,
    batcher,
    valBatches,
    held,
    hessianBatch,
    gptqCalibration,
    baseline: { loss, bitsPerByte: (loss * tokens) / Math.LN2 / Math.max(bytes, 1) },
  };
}

/** The run's callbacks in order, and the ones train() reads back for the summary. */
export interface RunCallbacks {
  all: Callback[];
  evalCb: EvalCallback;
  checkpointCb: CheckpointCallback;
  tracker: SummaryTracker;
}

/**
 * The callbacks in their order: guard and update monitor, evaluation, the monitors that are on,
 * checkpointing, the summary tracker, the user's own callbacks, then the sinks, so that every metric
 * recorded before them reaches the console, metrics.jsonl and TensorBoard.
 */
export function buildCallbacks(config: RunConfig, data: RunData, extra: readonly Callback[] = []): RunCallbacks {
  const evalCb = new EvalCallback(data.valBatches, data.tokenizer);
  const monitors: Callback[] = [];
  // The first validation windows: the same tokens at every measurement, never trained on.
  if (data.held) monitors.push(new OutlierMonitor(data.held.inputs, config.monitor.batchSize, config.batch.seqLen));
  if (config.quant.every > 0) monitors.push(new QuantEvalCallback(data.valBatches, data.gptqCalibration));
  // The first training windows, unshuffled: the Hessian of the training objective on a fixed batch.
  if (data.hessianBatch) monitors.push(new HessianProbe(data.hessianBatch));
  const checkpointCb = new CheckpointCallback();
  const tracker = new SummaryTracker();
  const all: Callback[] = [
    new ZScoreGuard(),
    new UpdateRmsMonitor(),
    evalCb,
    ...monitors,
    checkpointCb,
    tracker,
    ...extra,
    new ConsoleSink(),
    new JsonlSink(),
    ...(config.logging.tensorboard ? [new TensorBoardSink()] : []),
  ];
  return { all, evalCb, checkpointCb, tracker };
}
