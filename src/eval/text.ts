/**
 * `osp eval`: mean next-token cross-entropy of a checkpoint over a text file's tokens.
 *
 * The token stream and its windows are data/text.ts's (readTextTokens, textWindows): every token is
 * predicted exactly once, from the context of its own window. Loss is in nats per predicted token (per
 * byte with the byte tokenizer); bpb = all nats / ln 2 / the bytes of text the tokens stand for.
 */
import * as tf from '@tensorflow/tfjs';
import { textWindows } from '../data/text.ts';
import type { Transformer } from '../model/transformer.ts';
import { byteTokenizer, type Tokenizer } from '../data/tokenizer.ts';

export interface TextEvalResult {
  /** Mean next-token loss, nats per predicted token (per byte with the byte tokenizer). */
  loss: number;
  /** Predicted tokens. */
  tokens: number;
  /** Bytes of text the predicted tokens stand for (tokenizer.byteLength). */
  bytes: number;
  /** Bits per byte: all nats / ln 2 / bytes, comparable across tokenizers. */
  bpb: number;
}

/**
 * Mean loss over textWindows(tokens, maxSeqLen, bos): `bos` as the run was trained (rowBos of its config);
 * `tokenizer` (default bytes) gives the bytes each target stands for.
 */
export async function evaluateTokens(
  model: Transformer,
  tokens: Uint16Array,
  bos?: number,
  tokenizer: Pick<Tokenizer, 'byteLength'> = byteTokenizer,
): Promise<TextEvalResult> {
  let nats = 0;
  let count = 0;
  let bytes = 0;
  for (const w of textWindows(tokens, model.config.maxSeqLen, bos)) {
    const loss = tf.tidy(() => model.loss(tf.tensor2d(w.inputs, [1, w.seqLen], 'int32'), tf.tensor2d(w.targets, [1, w.seqLen], 'int32')));
    nats += (await loss.data())[0]! * w.seqLen;
    loss.dispose();
    count += w.seqLen;
    for (const t of w.targets) bytes += tokenizer.byteLength(t);
  }
  const loss = nats / count;
  return { loss, tokens: count, bytes, bpb: nats / Math.LN2 / Math.max(bytes, 1) };
}
