/**
 * Deterministic batching. The token stream is cut into windows of seqLen + 1 tokens; window i starts at
 * i * seqLen, so neighbouring windows share one boundary token, which is the last target of one and the
 * first input of the next. Every token after the first is then a target exactly once per epoch, with no
 * gap and no overlap of predictions:
 *
 *   stream   t0 t1 t2 t3 t4 t5 t6 ...      (seqLen 3)
 *   window 0 [t0 t1 t2 t3]                  inputs t0..t2, targets t1..t3
 *   window 1          [t3 t4 t5 t6]         inputs t3..t5, targets t4..t6
 *
 * With `bos` (config `batch.bos`), every row starts with the BOS token instead, as in LLM pre-training
 * where each sequence begins a document: window i holds the seqLen tokens from i * seqLen on, all of
 * them targets, and its inputs are BOS followed by all but the last of them:
 *
 *   window 0 inputs  BOS t0 t1              window 1 inputs  BOS t3 t4
 *            targets t0  t1 t2                       targets t3  t4 t5
 *
 * (still every token a target exactly once per epoch). Attention sinks and massive activations form on
 * that first position, so this is one of the levers of the outlier-emergence experiment.
 *
 * Each epoch visits all windows in a Fisher-Yates order drawn from an Rng seeded by (seed, epoch), so the
 * cursor { epoch, index } alone recreates the position: a resumed batcher yields the same batches.
 */
import { ConfigError, DataError } from '../errors.ts';
import { Rng } from '../utils/rng.ts';
import type { TokenDataset } from './dataset.ts';
import { byteTokenizer, type Tokenizer } from './tokenizer.ts';
import { z } from 'zod';
import { zInt as int } from '../utils/parse_config.ts';

export const BatchConfigSchema = z
  .strictObject({
    size: int(1).default(16).describe('Sequences per micro-batch.'),
    seqLen: int(1).default(128).describe('Tokens per sequence (<= model.maxSeqLen).'),
    accum: int(1).default(1).describe('Micro-batches per optimizer step (gradient accumulation).'),
    bos: z
      .boolean()
      .default(false)
      .describe(
        "Begin every sequence with the tokenizer's BOS token (bytes: 256; gpt2: <|endoftext|>), as pre-training does when each sequence starts a document; evaluation, the monitors and the quantization windows follow. Off: rows are plain slices of the token stream. Attention sinks and massive activations form on that token.",
      ),
  })
  .prefault({})
  .describe('The shape of a training batch.');
export type BatchConfig = z.output<typeof BatchConfigSchema>;

/** One batch, row-major [batchSize, seqLen]: targets[b, t] = token after inputs[b, t]. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
}

/** Where a Batcher is: the epoch, and the next position in that epoch's window order. */
export interface BatcherState {
  epoch: number;
  index: number;
}

/** Options of Batcher. */
export interface BatcherOptions {
  batchSize: number;
  seqLen: number;
  /** Seed of the window orders, an integer in [0, 2^32). */
  seed: number;
  /** Begin every row with this token id (the tokenizer's BOS); see the file comment. */
  bos?: number;
}

function checkInt(field: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!(Number.isInteger(value) && value >= min && value <= max)) {
    throw new ConfigError(field, `expected an integer in [${min}, ${max}], found ${value}`);
  }
}

/** Stream tokens one window spans: seqLen + 1 (inputs and the last target), or seqLen with a BOS row start. */
function windowSpan(seqLen: number, bos: number | undefined): number {
  return bos === undefined ? seqLen + 1 : seqLen;
}

/** Number of windows starting at multiples of seqLen; throws DataError if none fits. */
function windowCount(dataset: TokenDataset, seqLen: number, bos: number | undefined): number {
  const span = windowSpan(seqLen, bos);
  if (dataset.length < span) {
    throw new DataError(
      dataset.name,
      `sequence length ${seqLen} needs at least ${span} tokens, dataset ${dataset.name} has ${dataset.length}`,
    );
  }
  return Math.floor((dataset.length - span) / seqLen) + 1;
}

/** Copies window `w` into row `row` of the batch (BOS first when `bos` is set). */
function fillRow(tokens: Uint16Array, w: number, row: number, seqLen: number, batch: Batch, bos: number | undefined): void {
  const start = w * seqLen;
  const off = row * seqLen;
  if (bos === undefined) {
    batch.inputs.set(tokens.subarray(start, start + seqLen), off);
    batch.targets.set(tokens.subarray(start + 1, start + seqLen + 1), off);
  } else {
    batch.inputs[off] = bos;
    batch.inputs.set(tokens.subarray(start, start + seqLen - 1), off + 1);
    batch.targets.set(tokens.subarray(start, start + seqLen), off);
  }
}

function checkBos(bos: number | undefined): void {
  if (bos !== undefined) checkInt('bos', bos, 0, 0xffff);
}

function emptyBatch(batchSize: number, seqLen: number): Batch {
  return {
    inputs: new Int32Array(batchSize * seqLen),
    targets: new Int32Array(batchSize * seqLen),
    batchSize,
    seqLen,
  };
}

/**
 * Shuffled training batches over one dataset, resumable from `state()`.
 *
 * @example
 *   const batcher = new Batcher(train, { batchSize: 8, seqLen: 256, seed: 0 });
 *   const { inputs, targets } = batcher.next();   // Int32Array(8 * 256) each
 *   const cursor = batcher.state();               // save in the checkpoint
 *   // later: new Batcher(train, sameOptions).setState(cursor) continues identically
 */
export class Batcher {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly seed: number;
  readonly bos: number | undefined;
  /** Windows per epoch. */
  readonly windows: number;
  private epoch = 0;
  private index = 0;
  private order: Uint32Array | undefined; // window order of `epoch`, built on demand
  private orderEpoch = -1;

  constructor(
    readonly dataset: TokenDataset,
    opts: BatcherOptions,
  ) {
    checkInt('batchSize', opts.batchSize, 1);
    checkInt('seqLen', opts.seqLen, 1);
    checkInt('seed', opts.seed, 0, 0xffffffff);
    checkBos(opts.bos);
    this.batchSize = opts.batchSize;
    this.seqLen = opts.seqLen;
    this.seed = opts.seed;
    this.bos = opts.bos;
    this.windows = windowCount(dataset, opts.seqLen, opts.bos);
  }

  /** Batches per epoch, counting a batch that straddles two epochs as a fraction. */
  get batchesPerEpoch(): number {
    return this.windows / this.batchSize;
  }

  /**
   * The next batch of batchSize windows. A batch that reaches the end of an epoch continues with the
   * next epoch's order, so every batch is full and every window is used once per epoch.
   */
  next(): Batch {
    const batch = emptyBatch(this.batchSize, this.seqLen);
    for (let row = 0; row < this.batchSize; row++) {
      fillRow(this.dataset.tokens, this.orderOf(this.epoch)[this.index]!, row, this.seqLen, batch, this.bos);
      this.index++;
      if (this.index === this.windows) {
        this.epoch++;
        this.index = 0;
      }
    }
    return batch;
  }

  /** The cursor to store in a checkpoint. */
  state(): BatcherState {
    return { epoch: this.epoch, index: this.index };
  }

  /** Restores a cursor from state(); the batcher must have been built with the same dataset and options. */
  setState(state: BatcherState): void {
    if (!(Number.isInteger(state.epoch) && state.epoch >= 0)) {
      throw new DataError(this.dataset.name, `batcher cursor: expected a non-negative integer epoch, found ${state.epoch}`);
    }
    if (!(Number.isInteger(state.index) && state.index >= 0 && state.index < this.windows)) {
      throw new DataError(
        this.dataset.name,
        `batcher cursor: expected an index in [0, ${this.windows}) (windows of length ${windowSpan(this.seqLen, this.bos)}), ` +
          `found ${state.index}; was the checkpoint made with other data or another seqLen?`,
      );
    }
    this.epoch = state.epoch;
    this.index = state.index;
  }

  /** The window order of an epoch (a permutation of 0..windows-1). */
  orderOf(epoch: number): Uint32Array {
    if (this.orderEpoch !== epoch || this.order === undefined) {
      this.order = shuffledWindows(this.windows, this.seed, epoch);
      this.orderEpoch = epoch;
    }
    return this.order;
  }
}

/**
 * Fisher-Yates permutation of 0..n-1 for (seed, epoch). The per-epoch Rng seed is the seed's own first
 * Rng draw XOR the epoch: for one seed, distinct epochs (below 2^32) give distinct streams, and the
 * SplitMix seeding inside Rng decorrelates neighbouring epochs.
 */
function shuffledWindows(n: number, seed: number, epoch: number): Uint32Array {
  const rng = new Rng((new Rng(seed).nextUint32() ^ epoch) >>> 0);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Options of evalBatches. */
export interface EvalOptions {
  batchSize: number;
  seqLen: number;
  /** Stop after this many batches (a cheaper, still fixed, validation subset). */
  maxBatches?: number;
  /** What the batches are for, named in the error when the dataset is too short (default 'evaluation'). */
  purpose?: string;
  /** Begin every row with this token id, as the training batches of the run (Batcher's `bos`). */
  bos?: number;
}

/**
 * Validation batches: the windows in stream order, unshuffled, batchSize at a time, identical on every
 * call. Only full batches are produced (the last < batchSize windows are left out) so each batch weighs
 * the same in a mean loss; if not even one batch fits, a DataError says how many tokens are needed.
 * The batches are materialized (8 bytes per token); use maxBatches to bound a large validation set.
 *
 * @example
 *   const val = evalBatches(valSet, { batchSize: 8, seqLen: 256, maxBatches: 20 }); // Batch[]
 */
export function evalBatches(dataset: TokenDataset, opts: EvalOptions): Batch[] {
  const { batchSize, seqLen, maxBatches = Infinity } = opts;
  checkInt('batchSize', batchSize, 1);
  checkInt('seqLen', seqLen, 1);
  if (maxBatches !== Infinity) checkInt('maxBatches', maxBatches, 1);
  checkBos(opts.bos);
  const windows = windowCount(dataset, seqLen, opts.bos);
  const count = Math.min(Math.floor(windows / batchSize), maxBatches);
  if (count === 0) {
    throw new DataError(
      dataset.name,
      `${opts.purpose ?? 'evaluation'} with batchSize ${batchSize} and sequence length ${seqLen} needs at least ` +
        `${(batchSize - 1) * seqLen + windowSpan(seqLen, opts.bos)} tokens, dataset ${dataset.name} has ${dataset.length}`,
    );
  }
  const batches: Batch[] = [];
  for (let b = 0; b < count; b++) {
    const batch = emptyBatch(batchSize, seqLen);
    for (let row = 0; row < batchSize; row++) fillRow(dataset.tokens, b * batchSize + row, row, seqLen, batch, opts.bos);
    batches.push(batch);
  }
  return batches;
}

/**
 * The token every row starts with (`batch.bos`): the run tokenizer's BOS (default bytes: 256), or
 * undefined: for the Batcher, evalBatches and the text windows of `osp eval` / `osp quant-eval` /
 * `osp analyze`. Reads saved configs too (older ones lack the field).
 */
export function rowBos(config: { batch?: { bos?: boolean } }, tokenizer: Tokenizer = byteTokenizer): number | undefined {
  return config.batch?.bos ? tokenizer.bos : undefined;
}
