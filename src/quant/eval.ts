/**
 * Quantized evaluation in OSP's setting: how much loss a model loses when its block weights, the inputs of
 * its block linear layers and its KV cache are fake-quantized ("4-4-4" = W4 A4 KV4), for each variant
 * (weight quantizer x rotation) the config asks for (config.ts).
 *
 *   weights      per-output-channel (or per-group) symmetric, MSE clip search: RTN (weights.ts) or
 *                GPTQ on calibration windows, block after block (gptq_model.ts)
 *   activations  per-token asymmetric at the inputs of q/k/v, o (per head), gate/up, down (activations.ts)
 *   KV cache     values and keys after RoPE, asymmetric per head vector; keys after the Q/K Hadamard
 *                rotation (qkRotate, on by default as in the OSP paper and QuaRot)
 *   rotations    ffn: down_proj's weight rotated offline by the exact Hadamard of the intermediate width,
 *                its input online (hadamard_exact.ts); ffn-block: the block-diagonal one of osp-lab < 0.2;
 *                quarot: norms folded, residual stream rotated, plus the online FFN Had (quarot.ts)
 * Embedding, EmbProj, norms and the LM head stay in full precision. The model itself knows nothing of
 * this: each variant runs on a copy of the model (the caller's is never touched), and quantization enters
 * through BlockHooks.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, ShapeError } from '../errors.ts';
import type { BlockHooks } from '../model/layers.ts';
import type { ModelConfig } from '../model/config.ts';
import { Transformer } from '../model/transformer.ts';
import { Rng } from '../utils/rng.ts';
import { modelWeights, type Weights } from '../model/fold.ts';
import { fakeQuantKvPerHead, fakeQuantPerGroupAsym, fakeQuantPerTokenAsym } from './activations.ts';
import { quantVariants, resolveQuantConfig, type QuantConfig, type QuantConfigInput, type QuantVariant } from './config.ts';
import { gptqModel } from './gptq_model.ts';
import { hadamardRotate, rotateDownProj } from './hadamard.ts';
import { applyHadamard, hadamardRotateExact } from './hadamard_exact.ts';
import { checkHadamardOrder, qkRotation, quarotRotate } from './quarot.ts';
import { blockLinearNames, quantizeWeightRtn } from './weights.ts';

export { QuantConfigSchema, resolveQuantConfig, quantVariants, quantTagName } from './config.ts';
export type { QuantConfig, QuantConfigInput, QuantVariant } from './config.ts';

export interface QuantHookOptions {
  /** down_proj's online rotation (FFN Had, QuaRot), applied before its input is quantized. */
  downRotate?: (x: tf.Tensor2D) => tf.Tensor2D;
}

/**
 * The BlockHooks that fake-quantize activations and the KV cache as `config` says:
 * 'qkv', 'gate_up' and 'down' inputs per token, 'o' input per token and head (groups of headDim), keys
 * (after RoPE, and with qkRotate in the Q/K-rotated basis) and values per head vector. With `downRotate`,
 * down_proj's input is rotated before it is quantized (the matching weights are the caller's). Sites
 * that need nothing get no hook at all, so an all-16 config without rotation runs the model's plain path.
 *
 * @example const loss = model.loss(inputs, targets, quantHooks(resolveQuantConfig({ a: 8 }), model.config));
 */
export function quantHooks(config: QuantConfig, model: ModelConfig, opts: QuantHookOptions = {}): BlockHooks {
  const { a, kv } = config;
  const headDim = model.headDim;
  const range = { zeroInRange: config.zeroInRange };
  const { downRotate } = opts;
  const hooks: BlockHooks = {};
  if (a !== 16 || downRotate) {
    hooks.linearInput = (x, site) =>
      tf.tidy(() => {
        const input = site === 'down' && downRotate ? downRotate(x) : x;
        if (a === 16) return input;
        // o_proj's input is the heads' outputs side by side; each head's slice gets its own range.
        return site === 'o' ? fakeQuantPerGroupAsym(input, a, headDim, range) : fakeQuantPerTokenAsym(input, a, range);
      });
  }
  if (kv !== 16) {
    const quant = (t: tf.Tensor4D) => fakeQuantKvPerHead(t, kv, range);
    if (config.qkRotate) {
      checkHadamardOrder('model.headDim', headDim, 'or set quant.qkRotate false (--no-qk-rotate) to quantize raw keys');
      const qk = qkRotation(headDim);
      // Scores of (q R)(quant(k R))^T equal q (quant(k R) R^T)^T: the key hook alone gives them.
      hooks.kv = (k, v) => [qk.quantizeKeysRotated(k, quant), quant(v)];
    } else {
      hooks.kv = (k, v) => [quant(k), quant(v)];
    }
  }
  return hooks;
}

/** One evaluation batch: token ids, row-major [batchSize, seqLen]. */
export interface QuantEvalBatch {
  inputs: Int32Array;
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
}

export interface LossAndPerplexity {
  /** Mean next-token cross-entropy over all tokens of all batches (nats). */
  loss: number;
  /** exp(loss). */
  perplexity: number;
}

export interface QuantVariantResult extends QuantVariant {
  quant: LossAndPerplexity;
  /**
   * quant - fp loss, quant / fp perplexity (= exp of the loss gap), and the standard error of the loss
   * gap over the evaluated sequences (paired: both losses on the same tokens; null with one sequence). It is
   * the evaluation's sampling error only: a 95% interval of the ratio is exp(loss +- 1.96 stderr); the
   * variation between training seeds is not in it.
   */
  gap: { loss: number; perplexityRatio: number; lossStderr: number | null };
  /** Wall time of this variant (rotation, weight quantization, evaluation). */
  seconds: number;
}

export interface QuantEvalResult {
  fp: LossAndPerplexity;
  /** One entry per variant, in quantVariants(config) order. */
  variants: QuantVariantResult[];
  /** The validated config that was applied. */
  config: QuantConfig;
}

export interface QuantEvalOptions {
  /** Calibration batches for GPTQ (training data, never the evaluated text); required when a variant uses GPTQ. */
  calibration?: readonly QuantEvalBatch[];
  /** Progress lines (one per variant and GPTQ block). */
  log?: (line: string) => void;
}

/**
 * Measures the full-precision loss, then for each variant of `config` the loss of a copy of the model
 * with its rotation applied and its weights, activations and KV cache quantized. The model passed in
 * is only read.
 *
 * @example
 *   const r = await quantEval(model, batches, { method: ['rtn', 'gptq'], rotate: ['none', 'quarot'] }, { calibration });
 *   for (const v of r.variants) console.log(v.name, v.gap.perplexityRatio);
 */
export async function quantEval(
  model: Transformer,
  batches: readonly QuantEvalBatch[],
  config: QuantConfigInput = {},
  opts: QuantEvalOptions = {},
): Promise<QuantEvalResult> {
  return quantEvalValidated(model, batches, resolveQuantConfig(config), opts);
}

/** quantEval for an already validated quantization config (the run config's `quant` section). */
export async function quantEvalValidated(
  model: Transformer,
  batches: readonly QuantEvalBatch[],
  cfg: QuantConfig,
  opts: QuantEvalOptions = {},
): Promise<QuantEvalResult> {
  const variants = quantVariants(cfg);
  checkBatches(model, batches);
  checkQuantSetting(model.config, cfg);
  if (cfg.w !== 16 && variants.some((v) => v.method === 'gptq')) {
    if (!opts.calibration || opts.calibration.length === 0) {
      throw new ConfigError('quant.method', "'gptq' needs calibration batches from the training data (none were given)");
    }
    opts.calibration.forEach((b, i) => checkBatch(model, b, `calibration batch ${i}`));
  }
  const fpBatches = await batchLosses(model, batches);
  const fpLoss = weightedMean(fpBatches.losses, fpBatches.tokens);
  const fp = { loss: fpLoss, perplexity: Math.exp(fpLoss) };
  const base = await modelWeights(model);
  const results: QuantVariantResult[] = [];
  for (const v of variants) {
    const t0 = performance.now();
    const prepared = rotateVariant(model.config, base, v, cfg);
    const work = new Transformer(prepared.config, new Rng(0));
    try {
      loadWeights(work, prepared.weights);
      if (cfg.w !== 16) {
        if (v.method === 'gptq') {
          await gptqModel(work, opts.calibration!, {
            bits: cfg.w,
            groupSize: cfg.groupSize,
            clipSearch: cfg.clipSearch,
            dampPercent: cfg.gptq.dampPercent,
            blockSize: cfg.gptq.blockSize,
            actOrder: cfg.gptq.actOrder,
            downRotate: prepared.downRotate,
            onLayer: (layer, site) => {
              if (site === 'down') opts.log?.(`${v.name}: GPTQ block ${layer + 1}/${work.config.numLayers} done`);
            },
          });
        } else {
          loadWeights(work, rtnWeights(prepared.weights, work, cfg));
        }
      }
      const hooks = quantHooks(cfg, work.config, { downRotate: prepared.downRotate });
      const q = await batchLosses(work, batches, hooks);
      const loss = weightedMean(q.losses, q.tokens);
      const quant = { loss, perplexity: Math.exp(loss) };
      const seconds = (performance.now() - t0) / 1000;
      const gap = {
        loss: quant.loss - fp.loss,
        perplexityRatio: quant.perplexity / fp.perplexity,
        lossStderr: gapStderr(q.losses, fpBatches.losses, q.tokens),
      };
      results.push({ ...v, quant, gap, seconds });
      opts.log?.(
        `${v.name}: ppl ${quant.perplexity.toFixed(3)} (x${(quant.perplexity / fp.perplexity).toFixed(3)}), ${seconds.toFixed(1)} s`,
      );
    } finally {
      work.dispose();
    }
  }
  return { fp, variants: results, config: cfg };
}

/**
 * Every width the quantization setting needs is a width it can handle (weight groups divide the input
 * widths; the rotations have exact Hadamard matrices); ConfigErrors name the field and what works.
 * Training calls it before the first step, so a bad `quant` section fails at once, not hours later.
 */
export function checkQuantSetting(c: ModelConfig, cfg: QuantConfig): void {
  const variants = quantVariants(cfg);
  if (cfg.groupSize !== undefined && cfg.w !== 16) {
    // Every block linear layer's input width: d (q/k/v, gate/up), H * hd (o), intermediate (down).
    for (const width of new Set([c.hiddenSize, c.numHeads * c.headDim, c.intermediateSize])) {
      if (width % cfg.groupSize !== 0) {
        throw new ConfigError(
          'quant.groupSize',
          `${cfg.groupSize} does not divide the input width ${width} of a block linear layer; choose a divisor of ` +
            `${c.hiddenSize}, ${c.numHeads * c.headDim} and ${c.intermediateSize}, or leave it out for per-channel scales`,
        );
      }
    }
  }
  const rotations = new Set(variants.map((v) => v.rotate));
  const hint = "or drop rotate 'ffn'/'quarot' (rotate 'ffn-block' works at any width)";
  if (rotations.has('ffn') || rotations.has('quarot')) checkHadamardOrder('model.intermediateSize', c.intermediateSize, hint);
  if (rotations.has('quarot')) checkHadamardOrder('model.hiddenSize', c.hiddenSize, "or drop rotate 'quarot'");
  if (cfg.kv !== 16 && cfg.qkRotate) {
    checkHadamardOrder('model.headDim', c.headDim, 'or set quant.qkRotate false (--no-qk-rotate) to quantize raw keys');
  }
}

interface RotatedModel {
  config: ModelConfig;
  /** Full-precision weights of the rotated model (entries may be shared with the base: read only). */
  weights: Weights;
  downRotate?: (x: tf.Tensor2D) => tf.Tensor2D;
}

/** The variant's full-precision model: the base itself, or its rotated equivalent and the online rotation. */
function rotateVariant(config: ModelConfig, base: Weights, v: QuantVariant, cfg: QuantConfig): RotatedModel {
  if (v.rotate === 'quarot') {
    const r = quarotRotate(config, base, { seed: cfg.quarotSeed, online: true });
    return { config: r.config, weights: r.weights, downRotate: r.online!.down.rotate };
  }
  if (v.rotate === 'none') return { config, weights: base };
  const weights: Weights = new Map(base);
  for (let i = 0; i < config.numLayers; i++) {
    const name = `model.layers.${i}.mlp.down_proj.weight`;
    const w = base.get(name)!;
    const [rows, cols] = w.shape as [number, number];
    // W -> W H / sqrt(I) (exact) or W H_block^T (block-diagonal); the input gets the same rotation online.
    const data = v.rotate === 'ffn' ? applyHadamard(w.data, rows, cols) : rotateDownProj(w.data, rows, cols);
    weights.set(name, { shape: w.shape, data });
  }
  return { config, weights, downRotate: v.rotate === 'ffn' ? (x) => hadamardRotateExact(x) : hadamardRotate };
}

/** RTN of every block linear weight; other parameters are not in the result. */
function rtnWeights(weights: Weights, model: Transformer, cfg: QuantConfig): Weights {
  const out: Weights = new Map();
  for (const name of blockLinearNames(model)) {
    const w = weights.get(name)!;
    const [rows, cols] = w.shape as [number, number];
    const bits = cfg.w as 4 | 8;
    const data = quantizeWeightRtn(w.data, rows, cols, { bits, groupSize: cfg.groupSize, clipSearch: cfg.clipSearch }).dequantized;
    out.set(name, { shape: w.shape, data });
  }
  return out;
}

/** Assigns the given parameters (a subset is fine); shapes are the model's by construction. */
function loadWeights(model: Transformer, weights: Weights): void {
  for (const [name, w] of weights) {
    const v = model.params.get(name);
    if (!v) throw new ShapeError(`quantEval: the model has no parameter '${name}'`);
    tf.tidy(() => v.assign(tf.tensor(w.data, v.shape)));
  }
}

function checkBatches(model: Transformer, batches: readonly QuantEvalBatch[]): void {
  if (batches.length === 0) throw new ShapeError('quantEval: no batches to evaluate');
  batches.forEach((b, i) => checkBatch(model, b, `batch ${i}`));
}

function checkBatch(model: Transformer, b: QuantEvalBatch, what: string): void {
  const n = b.batchSize * b.seqLen;
  if (!(b.batchSize >= 1 && b.seqLen >= 1) || b.inputs.length !== n || b.targets.length !== n) {
    throw new ShapeError(
      `quantEval: ${what} declares [${b.batchSize}, ${b.seqLen}] = ${n} tokens but has ` +
        `${b.inputs.length} inputs and ${b.targets.length} targets`,
    );
  }
  if (b.seqLen > model.config.maxSeqLen) {
    throw new ShapeError(`quantEval: ${what} has seqLen ${b.seqLen} > model.maxSeqLen ${model.config.maxSeqLen}`);
  }
}

/** Token-weighted mean loss over the batches; reads each loss asynchronously (WebGPU-safe). */
/** Rows per evaluation batch after packing (speed only: every row's loss is kept apart). */
const PACK_ROWS = 16;

/**
 * Consecutive batches of one sequence length packed into batches of up to PACK_ROWS rows, rows in
 * order: `osp quant-eval` hands one window per batch, and one forward pass per window is several times
 * slower than 16 at once.
 */
export function packBatches(batches: readonly QuantEvalBatch[], rows = PACK_ROWS): QuantEvalBatch[] {
  const out: QuantEvalBatch[] = [];
  let group: QuantEvalBatch[] = [];
  let groupRows = 0;
  const flush = () => {
    if (group.length === 0) return;
    const T = group[0]!.seqLen;
    const inputs = new Int32Array(groupRows * T);
    const targets = new Int32Array(groupRows * T);
    let at = 0;
    for (const g of group) {
      inputs.set(g.inputs, at);
      targets.set(g.targets, at);
      at += g.inputs.length;
    }
    out.push({ inputs, targets, batchSize: groupRows, seqLen: T });
    group = [];
    groupRows = 0;
  };
  for (const b of batches) {
    if (group.length > 0 && (b.seqLen !== group[0]!.seqLen || groupRows + b.batchSize > rows)) flush();
    group.push(b);
    groupRows += b.batchSize;
  }
  flush();
  return out;
}

/**
 * The mean next-token loss of every row (sequence) of every batch, and its token count, in order;
 * reads asynchronously (WebGPU-safe). Rows are the samples of the gap's standard error.
 */
async function batchLosses(
  model: Transformer,
  batches: readonly QuantEvalBatch[],
  hooks?: BlockHooks,
): Promise<{ losses: Float64Array; tokens: Float64Array }> {
  const total = batches.reduce((n, b) => n + b.batchSize, 0);
  const losses = new Float64Array(total);
  const tokens = new Float64Array(total);
  let row = 0;
  for (const b of packBatches(batches)) {
    const perRow = tf.tidy(() => {
      const inputs = tf.tensor2d(b.inputs, [b.batchSize, b.seqLen], 'int32');
      const targets = tf.tensor2d(b.targets, [b.batchSize, b.seqLen], 'int32');
      const { logits } = model.forward(inputs, { hooks });
      const V = logits.shape[2];
      // Cross-entropy per token, logsumexp(logits) - logit of the target, averaged over each row.
      const picked = tf.sum(tf.mul(logits, tf.oneHot(targets, V)), -1);
      return tf.mean(tf.sub(tf.logSumExp(logits, -1), picked), 1);
    });
    try {
      const v = await perRow.data();
      for (let i = 0; i < b.batchSize; i++) {
        losses[row] = v[i]!;
        tokens[row] = b.seqLen;
        row++;
      }
    } finally {
      perRow.dispose();
    }
  }
  return { losses, tokens };
}

/** Token-weighted mean of per-row values. */
function weightedMean(values: Float64Array, tokens: Float64Array): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i]! * tokens[i]!;
    count += tokens[i]!;
  }
  return sum / count;
}

/**
 * Standard error of the token-weighted mean loss gap, from the paired per-sequence (or per-batch) gaps
 * as the samples; ratio-estimator form with the B / (B - 1) correction. Null with a single sample.
 */
export function gapStderr(quant: Float64Array, fp: Float64Array, tokens: Float64Array): number | null {
  const B = tokens.length;
  if (B < 2) return null;
  const d = quant.map((q, i) => q - fp[i]!);
  const mean = weightedMean(d, tokens);
  let total = 0;
  let ss = 0;
  for (let i = 0; i < B; i++) {
    total += tokens[i]!;
    ss += (tokens[i]! * (d[i]! - mean)) ** 2;
  }
  return (Math.sqrt(ss) / total) * Math.sqrt(B / (B - 1));
}
