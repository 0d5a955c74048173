/**
 * Quantization robustness during training (`quant.every`): full-precision and fake-quantized
 * validation loss (src/quant) on the first `quant.batches` evaluation batches, for every variant
 * of the `quant` section (method x rotate), each under its own tag. GPTQ calibrates on fixed windows of
 * the training split. The model is only read: each variant runs on a copy.
 */
import type { Callback, TrainContext } from '../callback.ts';
import type { EvalBatch } from './eval.ts';
import { QuantConfigSchema, quantEvalValidated, type QuantEvalResult } from '../../quant/eval.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const QuantSectionSchema = z
  .strictObject({
    ...QuantConfigSchema.shape,
    every: int(0).default(0).describe('Measure every N steps and at the end; 0 = off.'),
    batches: int(1).default(4).describe('Validation batches measured (the first eval batches).'),
  })
  .prefault({})
  .describe('W4A4KV4-style quantization robustness measured during training (off by default).');
export type QuantSection = z.output<typeof QuantSectionSchema>;

export class QuantEvalCallback implements Callback {
  readonly name = 'quant';
  last?: { step: number } & QuantEvalResult;

  /** @param calibration training windows for GPTQ (needed only when quant.method includes 'gptq') */
  constructor(
    private readonly batches: readonly EvalBatch[],
    private readonly calibration: readonly EvalBatch[] = [],
  ) {}

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const { every, batches, ...config } = ctx.config.quant;
    if (every === 0 || !(ctx.step % every === 0 || ctx.isLastStep)) return;
    const { size, seqLen } = ctx.config.batch;
    const shaped = (b: EvalBatch) => ({ ...b, batchSize: size, seqLen });
    const r = await quantEvalValidated(ctx.model, this.batches.slice(0, batches).map(shaped), config, {
      calibration: this.calibration.map(shaped),
    });
    ctx.metrics.record('quant/fp_loss', r.fp.loss);
    for (const v of r.variants) {
      ctx.metrics.record(`quant/${v.tag}/loss`, v.quant.loss);
      ctx.metrics.record(`quant/${v.tag}/perplexity`, v.quant.perplexity);
      ctx.metrics.record(`quant/${v.tag}/ppl_ratio`, v.gap.perplexityRatio);
      // The evaluation's own precision: standard error of the loss gap over the evaluated sequences.
      if (v.gap.lossStderr !== null && Number.isFinite(v.gap.lossStderr)) ctx.metrics.record(`quant/${v.tag}/gap_stderr`, v.gap.lossStderr);
    }
    this.last = { step: ctx.step, ...r };
  }

  summary(): unknown {
    return this.last ?? null;
  }
}
