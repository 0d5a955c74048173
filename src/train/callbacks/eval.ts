/**
 * Validation every `eval.every` steps and at the end: mean next-token loss over a fixed set of
 * unshuffled validation windows, perplexity, and bits per byte (nats / ln 2 per byte of text the targets
 * stand for, the tokenizer's byteLength; BOS/EOS targets count towards the loss but not towards the bytes).
 */
import * as tf from '@tensorflow/tfjs';
import type { Callback, TrainContext } from '../callback.ts';
import type { Transformer } from '../../model/transformer.ts';
import { byteTokenizer, type Tokenizer } from '../../data/tokenizer.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const EvalConfigSchema = z
  .strictObject({
    every: int(0).default(100).describe('Evaluate every N steps (and at the end); 0 = only at the end.'),
    batches: int(1).default(16).describe('Validation batches per evaluation (fixed, unshuffled windows: comparable across evals).'),
  })
  .prefault({})
  .describe('Validation loss during training.');
export type EvalConfig = z.output<typeof EvalConfigSchema>;

export interface EvalBatch {
  inputs: Int32Array;
  targets: Int32Array;
}

export interface EvalResult {
  loss: number;
  perplexity: number;
  bitsPerByte: number;
  tokens: number;
}

/**
 * Mean loss of `model` over `batches` ([B, T] row-major each); bits per byte count the text bytes each
 * target stands for (`tokenizer.byteLength`). Disposes everything it creates.
 */
export async function evaluate(
  model: Transformer,
  batches: readonly EvalBatch[],
  B: number,
  T: number,
  tokenizer: Pick<Tokenizer, 'byteLength'> = byteTokenizer,
): Promise<EvalResult> {
  let nats = 0;
  let tokens = 0;
  let bytes = 0;
  for (const b of batches) {
    const loss = tf.tidy(() => model.loss(tf.tensor2d(b.inputs, [B, T], 'int32'), tf.tensor2d(b.targets, [B, T], 'int32')));
    const value = (await loss.data())[0]!;
    loss.dispose();
    nats += value * b.targets.length;
    tokens += b.targets.length;
    for (const t of b.targets) bytes += tokenizer.byteLength(t);
  }
  const loss = nats / tokens;
  return { loss, perplexity: Math.exp(loss), bitsPerByte: nats / Math.LN2 / Math.max(bytes, 1), tokens };
}

export class EvalCallback implements Callback {
  readonly name = 'eval';
  last?: EvalResult;

  constructor(
    private readonly batches: readonly EvalBatch[],
    private readonly tokenizer: Pick<Tokenizer, 'byteLength'> = byteTokenizer,
  ) {}

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const every = ctx.config.eval.every;
    if (!ctx.isLastStep && !(every > 0 && ctx.step % every === 0)) return;
    const { size, seqLen } = ctx.config.batch;
    const r = await evaluate(ctx.model, this.batches, size, seqLen, this.tokenizer);
    this.last = r;
    ctx.metrics.record('eval/loss', r.loss);
    ctx.metrics.record('eval/perplexity', r.perplexity);
    ctx.metrics.record('eval/bits_per_byte', r.bitsPerByte);
  }

  stateDict(): unknown {
    return { last: this.last ?? null };
  }

  loadStateDict(state: unknown): void {
    this.last = (state as { last: EvalResult | null }).last ?? undefined;
  }
}
