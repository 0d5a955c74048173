/**
 * Quantized evaluation in OSP's setting: how much loss a model loses when its block weights, the inputs of
 * its block linear layers and its KV cache are fake-quantized ("4-4-4" = W4 A4 KV4).
 *
 *   weights      per-output-channel (or per-group) symmetric RTN with MSE clip search     (weights.ts)
 *   activations  per-token asymmetric at the inputs of q/k/v, o (per head), gate/up, down (activations.ts)
 *   KV cache     keys after RoPE and values, asymmetric per head vector                  (activations.ts)
 *   FFN Had      down_proj's weight rotated offline, its input rotated online            (hadamard.ts)
 * Embedding, EmbProj, norms and the LM head stay in full precision. The model itself knows nothing of
 * this: quantization enters through BlockHooks and a temporary swap of weights.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseConfig } from '../../config/parse.ts';
import { ConfigError, ShapeError } from '../../errors.ts';
import type { BlockHooks } from '../../model/layers.ts';
import type { Transformer } from '../../model/transformer.ts';
import { fakeQuantKvPerHead, fakeQuantPerGroupAsym, fakeQuantPerTokenAsym } from './activations.ts';
import { hadamardRotate } from './hadamard.ts';
import { quantizeModelWeights, withWeights } from './weights.ts';

const BITS = [4, 8, 16] as const;

export const QuantConfigSchema = z.strictObject({
  /** Weight bits of the block linear layers; 16 = full precision (off). */
  w: z.literal(BITS).default(4),
  /** Activation bits at the inputs of the block linear layers; 16 = off. */
  a: z.literal(BITS).default(4),
  /** KV-cache bits (keys after RoPE, values); 16 = off. */
  kv: z.literal(BITS).default(4),
  /** Weight group size along the input dimension; absent = one scale per output channel (OSP's setting). */
  groupSize: z.number().int().min(1).optional(),
  /** MSE clip search for the weight scales (QuaRot's grid 100, maxshrink 0.8, norm 2.4). */
  clipSearch: z.boolean().default(true),
  /** FFN Had: Hadamard-rotate down_proj's weight and, online, its input. */
  had: z.boolean().default(false),
});

export type QuantConfigInput = z.input<typeof QuantConfigSchema>;
export type QuantConfig = z.output<typeof QuantConfigSchema>;

/**
 * Validates a (partial) quantization config; missing fields take their defaults (4-4-4, clip search on).
 * @example resolveQuantConfig({ w: 8, had: true }) // { w: 8, a: 4, kv: 4, clipSearch: true, had: true }
 */
export function resolveQuantConfig(input: unknown = {}, prefix = 'quant'): QuantConfig {
  return parseConfig(QuantConfigSchema, input, prefix);
}

/**
 * The BlockHooks that fake-quantize activations and the KV cache as `config` says:
 * 'qkv', 'gate_up' and 'down' inputs per token, 'o' input per token and head (groups of headDim), keys
 * (already rotated by RoPE when the hook sees them) and values per head vector. With `had`, down_proj's
 * input is Hadamard-rotated before it is quantized; the matching weights come from
 * quantizeModelWeights(..., { rotateDown: true }). Sites that need nothing get no hook at all, so an
 * all-16 config runs the model's plain path.
 *
 * @example const loss = model.loss(inputs, targets, quantHooks(resolveQuantConfig({ a: 8 }), model));
 */
export function quantHooks(config: QuantConfig, model: Transformer): BlockHooks {
  const { a, kv, had } = config;
  const headDim = model.config.headDim;
  const hooks: BlockHooks = {};
  if (a !== 16 || had) {
    hooks.linearInput = (x, site) =>
      tf.tidy(() => {
        const input = site === 'down' && had ? hadamardRotate(x) : x;
        if (a === 16) return input;
        // o_proj's input is the heads' outputs side by side; each head's slice gets its own range.
        return site === 'o' ? fakeQuantPerGroupAsym(input, a, headDim) : fakeQuantPerTokenAsym(input, a);
      });
  }
  if (kv !== 16) {
    hooks.kv = (k, v) => [fakeQuantKvPerHead(k, kv), fakeQuantKvPerHead(v, kv)];
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

export interface QuantEvalResult {
  fp: LossAndPerplexity;
  quant: LossAndPerplexity;
  /** quant - fp loss, and quant / fp perplexity. */
  gap: { loss: number; perplexityRatio: number };
  /** The validated config that was applied. */
  config: QuantConfig;
}

/**
 * Measures the full-precision loss, then the loss with quantized weights (after the down_proj rotation
 * when `had`), activations and KV cache, and restores the model's weights bit for bit, also on error.
 *
 * @example
 *   const r = await quantEval(model, batches, { w: 4, a: 4, kv: 4 });
 *   console.log(`4-4-4: ppl ${r.fp.perplexity.toFixed(2)} -> ${r.quant.perplexity.toFixed(2)}`);
 */
export async function quantEval(
  model: Transformer,
  batches: readonly QuantEvalBatch[],
  config: QuantConfigInput = {},
): Promise<QuantEvalResult> {
  const cfg = resolveQuantConfig(config);
  checkBatches(model, batches);
  if (cfg.groupSize !== undefined && cfg.w !== 16) {
    const c = model.config;
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
  const fpLoss = await meanLoss(model, batches);
  const weights = await quantizeModelWeights(model, {
    bits: cfg.w,
    groupSize: cfg.groupSize,
    clipSearch: cfg.clipSearch,
    rotateDown: cfg.had,
  });
  const hooks = quantHooks(cfg, model);
  const quantLoss = await withWeights(model, weights, () => meanLoss(model, batches, hooks));
  const fp = { loss: fpLoss, perplexity: Math.exp(fpLoss) };
  const quant = { loss: quantLoss, perplexity: Math.exp(quantLoss) };
  return {
    fp,
    quant,
    gap: { loss: quant.loss - fp.loss, perplexityRatio: quant.perplexity / fp.perplexity },
    config: cfg,
  };
}

function checkBatches(model: Transformer, batches: readonly QuantEvalBatch[]): void {
  if (batches.length === 0) throw new ShapeError('quantEval: no batches to evaluate');
  batches.forEach((b, i) => {
    const n = b.batchSize * b.seqLen;
    if (!(b.batchSize >= 1 && b.seqLen >= 1) || b.inputs.length !== n || b.targets.length !== n) {
      throw new ShapeError(
        `quantEval: batch ${i} declares [${b.batchSize}, ${b.seqLen}] = ${n} tokens but has ` +
          `${b.inputs.length} inputs and ${b.targets.length} targets`,
      );
    }
    if (b.seqLen > model.config.maxSeqLen) {
      throw new ShapeError(`quantEval: batch ${i} has seqLen ${b.seqLen} > model.maxSeqLen ${model.config.maxSeqLen}`);
    }
  });
}

/** Token-weighted mean loss over the batches; reads each loss asynchronously (WebGPU-safe). */
async function meanLoss(model: Transformer, batches: readonly QuantEvalBatch[], hooks?: BlockHooks): Promise<number> {
  let sum = 0;
  let count = 0;
  for (const b of batches) {
    const inputs = tf.tensor2d(b.inputs, [b.batchSize, b.seqLen], 'int32');
    const targets = tf.tensor2d(b.targets, [b.batchSize, b.seqLen], 'int32');
    try {
      const loss = model.loss(inputs, targets, hooks);
      try {
        const n = b.batchSize * b.seqLen;
        sum += (await loss.data())[0]! * n;
        count += n;
      } finally {
        loss.dispose();
      }
    } finally {
      inputs.dispose();
      targets.dispose();
    }
  }
  return sum / count;
}
