/**
 * `osp eval`: mean next-token cross-entropy of a checkpoint over a text file's bytes.
 *
 * The token stream and its windows are data/text.ts's (readTextTokens, textWindows): every byte is
 * predicted exactly once, from the context of its own window. Loss is in nats per predicted byte;
 * bpb = loss / ln 2.
 */
import * as tf from '@tensorflow/tfjs';
import { textWindows } from '../data/text.ts';
import type { Transformer } from '../model/transformer.ts';

export interface TextEvalResult {
  loss: number;
  tokens: number;
  bpb: number;
}

/** Mean loss over textWindows(tokens, maxSeqLen, bos): `bos` as the run was trained (rowBos of its config). */
export async function evaluateTokens(model: Transformer, tokens: Uint16Array, bos?: number): Promise<TextEvalResult> {
  let nats = 0;
  let count = 0;
  for (const w of textWindows(tokens, model.config.maxSeqLen, bos)) {
    const loss = tf.tidy(() => model.loss(tf.tensor2d(w.inputs, [1, w.seqLen], 'int32'), tf.tensor2d(w.targets, [1, w.seqLen], 'int32')));
    nats += (await loss.data())[0]! * w.seqLen;
    loss.dispose();
    count += w.seqLen;
  }
  const loss = nats / count;
  return { loss, tokens: count, bpb: loss / Math.LN2 };
}
