/**
 * `osp analyze`: outlier statistics and the Hessian spectrum of a model (an osp-lab checkpoint or run
 * directory, or a Hugging Face Llama directory: openModelSource), without training.
 * The batch is the first B*(T+1) tokens of a text file (the model's tokenizer) laid out as B rows of T+1 tokens
 * (inputs are a row's first T tokens, targets its last T).
 */
import { readTextTokens } from '../data/text.ts';
import { byteTokenizer, type Tokenizer } from '../data/tokenizer.ts';
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend } from '../backend/index.ts';
import { ConfigError, DataError } from '../errors.ts';
import { aggregateOspKurtosis } from '../metrics/outliers.ts';
import { gaussianFloorEstimate } from '../metrics/gaussian_floor.ts';
import { runProbe, type ProbeResult } from '../metrics/probe.ts';
import { measureOutliers } from '../train/callbacks/outliers.ts';
import { checkTokensFit, openModelSource, sourceBackend, sourceModel, sourceTokenizer } from './source.ts';

export interface AnalyzeOptions {
  /** A checkpoint directory, a run directory (its newest checkpoint), or a Hugging Face Llama directory. */
  checkpoint: string;
  text: string;
  batch: number;
  seq: number;
  kurtosis: boolean;
  hessian?: {
    topk: number;
    lanczos: number;
    traceProbes: number;
    params: string;
    method: 'auto' | 'exact' | 'fd';
    /** The outlier rule's window (default: analyzeSpectrum's). */
    outlierWindow?: number;
  };
  /** Backend to run on (default: the run's; 'auto' for a Hugging Face directory). */
  backend?: string;
  topK?: number;
}

/** One tap's statistics as plain JSON (typed arrays become arrays). */
export interface TapSummary {
  ospKurtosis: number;
  channelKurtosis: number;
  maxMedianRatio: number;
  /** Largest |activations|, descending, with the token (row-major over the batch) and channel of each. */
  topK: number[];
  topKToken: number[];
  topKChannel: number[];
}

export interface AnalyzeResult {
  checkpoint: string;
  /** 'osp' (an osp-lab checkpoint) or 'hf' (a Hugging Face directory). */
  kind: 'osp' | 'hf';
  /** The checkpoint's training step (osp-lab checkpoints only). */
  step?: number;
  tokens: number;
  kurtosis?: {
    ospKurtosis: number;
    gaussianFloor: number;
    /** Standard error of gaussianFloor (a Monte Carlo value, from the table or estimated). */
    gaussianFloorStderr: number;
    perTap: Record<string, TapSummary>;
  };
  hessian?: Omit<ProbeResult, 'density'>;
}

/**
 * Reads B rows of T+1 tokens from the start of a text file (tokenized with `tokenizer`, default bytes);
 * with `bos` (a run trained with `batch.bos`), B rows of T tokens, each row's inputs BOS and its first
 * T-1 tokens.
 */
export function textBatch(
  path: string,
  B: number,
  T: number,
  bos?: number,
  tokenizer: Tokenizer = byteTokenizer,
): { inputs: Int32Array; targets: Int32Array } {
  const bytes = readTextTokens(path, tokenizer).subarray(1); // without the stream's leading BOS
  const span = bos === undefined ? T + 1 : T;
  const need = B * span;
  const unit = tokenizer === byteTokenizer ? 'bytes' : `tokens of ${tokenizer.spec}`;
  if (bytes.length < need) {
    throw new DataError(
      path,
      `--batch ${B} --seq ${T} needs ${need} ${unit} (B x ${bos === undefined ? '(T+1)' : 'T, rows start with BOS'}), the file has ${bytes.length}`,
    );
  }
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  if (bos !== undefined) {
    for (let b = 0; b < B; b++) {
      inputs[b * T] = bos;
      for (let t = 0; t < T; t++) {
        if (t > 0) inputs[b * T + t] = bytes[b * T + t - 1]!;
        targets[b * T + t] = bytes[b * T + t]!;
      }
    }
    return { inputs, targets };
  }
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = bytes[b * (T + 1) + t]!;
      targets[b * T + t] = bytes[b * (T + 1) + t + 1]!;
    }
  }
  return { inputs, targets };
}

export async function analyzeCheckpoint(o: AnalyzeOptions): Promise<AnalyzeResult> {
  if (o.hessian?.outlierWindow !== undefined && o.hessian.outlierWindow > o.hessian.lanczos) {
    throw new ConfigError(
      '--outlier-window',
      `${o.hessian.outlierWindow} exceeds --lanczos ${o.hessian.lanczos}: the rule can only look at computed Ritz values`,
    );
  }
  if (o.hessian && o.hessian.topk > o.hessian.lanczos) {
    throw new ConfigError('--topk', `${o.hessian.topk} eigenvalues need at least as many Lanczos steps; --lanczos is ${o.hessian.lanczos}`);
  }
  const source = openModelSource(o.checkpoint);
  const modelConfig = source.config;
  if (o.seq > modelConfig.maxSeqLen) {
    const field = source.kind === 'hf' ? "config.json's max_position_embeddings" : "the checkpoint's model.maxSeqLen";
    throw new ConfigError('--seq', `${o.seq} exceeds ${field} ${modelConfig.maxSeqLen}`);
  }
  const batch = textBatch(o.text, o.batch, o.seq, source.bos, sourceTokenizer(source));
  checkTokensFit(source, batch.inputs);
  checkTokensFit(source, batch.targets);
  const result: AnalyzeResult = {
    checkpoint: source.dir,
    kind: source.kind,
    ...(source.step !== undefined ? { step: source.step } : {}),
    tokens: o.batch * o.seq,
  };
  await startBackend(sourceBackend(source, o.backend));
  let model: ReturnType<typeof sourceModel> | undefined;
  try {
    model = sourceModel(source);
    if (o.kurtosis) {
      const stats = await measureOutliers({ model }, batch.inputs, o.batch, o.seq, o.topK ?? 8);
      const perTap: Record<string, TapSummary> = {};
      for (const [tap, s] of stats) {
        perTap[tap] = {
          ospKurtosis: s.ospKurtosis,
          channelKurtosis: s.channelKurtosis,
          maxMedianRatio: s.maxMedianRatio,
          topK: Array.from(s.topK),
          topKToken: Array.from(s.topKToken),
          topKChannel: Array.from(s.topKChannel),
        };
      }
      const floor = gaussianFloorEstimate(modelConfig.hiddenSize);
      result.kurtosis = { ospKurtosis: aggregateOspKurtosis(stats), gaussianFloor: floor.value, gaussianFloorStderr: floor.stderr, perTap };
    }
    if (o.hessian) {
      const weights: Record<string, Float32Array> = {};
      for (const [name, p] of model.params) weights[name] = Float32Array.from((await p.data()) as Float32Array);
      const r = await runProbe({
        backend: tf.getBackend(),
        model: modelConfig,
        weights,
        ...batch,
        batchSize: o.batch,
        seqLen: o.seq,
        topk: o.hessian.topk,
        lanczosSteps: o.hessian.lanczos,
        traceProbes: o.hessian.traceProbes,
        density: false,
        params: o.hessian.params,
        method: o.hessian.method,
        seed: source.seed ?? 0,
        outlierWindow: o.hessian.outlierWindow,
      });
      const { density: _d, ...rest } = r;
      result.hessian = rest;
    }
  } finally {
    model?.dispose();
    await stopBackend();
  }
  return result;
}
