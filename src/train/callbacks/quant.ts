/**
 * Quantization robustness during training (`quant.every`): full-precision and fake-quantized
 * validation loss (weights RTN, per-token activations, KV cache; src/export/quant) on the first
 * `quant.batches` evaluation batches. Weights are restored bit for bit after each measurement.
 */
import type { Callback, TrainContext } from '../callback.ts';
import type { EvalBatch } from './eval.ts';
import { quantEval, type QuantEvalResult } from '../../export/quant/eval.ts';

export class QuantEvalCallback implements Callback {
  readonly name = 'quant';
  last?: { step: number } & QuantEvalResult;

  constructor(private readonly batches: readonly EvalBatch[]) {}

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const { every, batches, ...config } = ctx.config.quant;
    if (every === 0 || !(ctx.step % every === 0 || ctx.isLastStep)) return;
    const { size, seqLen } = ctx.config.batch;
    const use = this.batches.slice(0, batches).map((b) => ({ ...b, batchSize: size, seqLen }));
    const r = await quantEval(ctx.model, use, config);
    const tag = `w${config.w}a${config.a}kv${config.kv}${config.had ? '_had' : ''}`;
    ctx.metrics.record('quant/fp_loss', r.fp.loss);
    ctx.metrics.record(`quant/${tag}/loss`, r.quant.loss);
    ctx.metrics.record(`quant/${tag}/perplexity`, r.quant.perplexity);
    ctx.metrics.record(`quant/${tag}/ppl_ratio`, r.gap.perplexityRatio);
    this.last = { step: ctx.step, ...r };
  }

  summary(): unknown {
    return this.last ?? null;
  }
}
