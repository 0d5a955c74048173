/**
 * GPTQ's calibration windows: from the training data of the run a checkpoint belongs to (the default,
 * as GPTQ and QuaRot calibrate on their training corpus), or from a text file. Never the evaluated text.
 */
import { evalBatches } from '../data/batcher.ts';
import { loadDataset } from '../data/dataset.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { OspError } from '../errors.ts';
import { textWindows } from '../data/text.ts';
import { packBatches, type QuantEvalBatch } from './eval.ts';

/** Windows per calibration batch (one forward pass). */
const BATCH = 8;

/** The run's data split as a token stream (documents as BOS + tokens + EOS, the run's tokenizer), for `osp quant-eval --val`. */
export function runSplitTokens(data: unknown, vocabSize: number, split: 'train' | 'val', tokenizer?: Tokenizer): Uint16Array {
  try {
    return loadDataset(data as Parameters<typeof loadDataset>[0], { vocabSize, tokenizer })[split].tokens;
  } catch (e) {
    throw new OspError(`could not load the run's ${split === 'val' ? 'validation' : 'training'} data (${(e as Error).message})`);
  }
}

/**
 * `windows` windows of seqLen tokens (rounded up to a multiple of 8) from the start of the training
 * split of a run's `data` config section, unshuffled.
 * @example calibrationFromRunData(state.config.data, 258, 128, 128)
 */
export function calibrationFromRunData(
  data: unknown,
  vocabSize: number,
  seqLen: number,
  windows: number,
  bos?: number,
  tokenizer?: Tokenizer,
): QuantEvalBatch[] {
  let train;
  try {
    train = loadDataset(data as Parameters<typeof loadDataset>[0], { vocabSize, tokenizer }).train;
  } catch (e) {
    throw new OspError(
      `GPTQ calibration: could not load the run's training data (${(e as Error).message}); pass --calib FILE with training text instead`,
    );
  }
  const batchSize = Math.min(BATCH, windows);
  return evalBatches(train, { batchSize, seqLen, maxBatches: Math.ceil(windows / batchSize), purpose: 'GPTQ calibration', bos });
}

/**
 * Up to `windows` windows of seqLen tokens from a token stream (BOS first), consecutive and
 * non-overlapping, 8 to a batch; a stream shorter than one window is an error naming `source`.
 * With `bos` every row starts with it, as the run's training rows (textWindows' convention).
 */
export function calibrationFromTokens(
  tokens: Uint16Array,
  seqLen: number,
  windows: number,
  source: string,
  bos?: number,
): QuantEvalBatch[] {
  if (bos !== undefined) {
    const full = textWindows(tokens, seqLen, bos).filter((w) => w.seqLen === seqLen);
    if (full.length < 1) {
      throw new OspError(
        `${source}: GPTQ calibration needs at least ${seqLen} tokens (one window of maxSeqLen), the text has ${tokens.length - 1}`,
      );
    }
    return packBatches(full.slice(0, windows), BATCH);
  }
  const available = Math.floor((tokens.length - 1) / seqLen);
  if (available < 1) {
    throw new OspError(
      `${source}: GPTQ calibration needs at least ${seqLen + 1} tokens (one window of maxSeqLen), the text has ${tokens.length}`,
    );
  }
  const n = Math.min(windows, available);
  const out: QuantEvalBatch[] = [];
  for (let start = 0; start < n; start += BATCH) {
    const b = Math.min(BATCH, n - start);
    const inputs = new Int32Array(b * seqLen);
    const targets = new Int32Array(b * seqLen);
    for (let r = 0; r < b; r++) {
      const off = (start + r) * seqLen;
      for (let t = 0; t < seqLen; t++) {
        inputs[r * seqLen + t] = tokens[off + t]!;
        targets[r * seqLen + t] = tokens[off + t + 1]!;
      }
    }
    out.push({ inputs, targets, batchSize: b, seqLen });
  }
  return out;
}
