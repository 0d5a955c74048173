/**
 * What the evaluation commands need of a model source (export/checkpoint.ts openModelSource: an osp-lab
 * checkpoint or run directory, or a Hugging Face Llama directory) beyond its weights: the model on the
 * backend, the backend to start, and a check that the text's tokens fit its vocabulary.
 */
import * as tf from '@tensorflow/tfjs';
import { OspError } from '../errors.ts';
import type { ModelSource } from '../export/checkpoint.ts';
import { Transformer } from '../model/transformer.ts';
import { Rng } from '../utils/rng.ts';

export { MODEL_SOURCE_HELP, openModelSource, sourceTokenizer, type ModelSource } from '../export/checkpoint.ts';

/** The backend to run a source on: the caller's, else the run's (osp), else `fallback` (the command's default). */
export function sourceBackend(s: ModelSource, requested: string | undefined, fallback = 'auto'): string {
  return requested ?? s.backend ?? fallback;
}

/**
 * The source's model on the active backend (start it first); the caller disposes it. The weights were
 * checked (names, shapes, finite) when the source was opened.
 */
export function sourceModel(s: ModelSource): Transformer {
  const model = new Transformer(s.config, new Rng(0));
  try {
    for (const [name, p] of model.params) {
      const w = s.weights.get(name);
      if (!w) throw new OspError(`${s.dir}: parameter '${name}' is missing`);
      tf.tidy(() => p.assign(tf.tensor(w.data, p.shape)));
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * The text's tokens (the source's tokenizer, BOS first) must fit the model's vocabulary: a model that
 * cannot hold them (a Hugging Face config.json's vocab_size below its tokenizer's) is refused instead of
 * reading past its embedding.
 */
export function checkTokensFit(s: ModelSource, tokens: ArrayLike<number>): void {
  let max = -1;
  for (let i = 0; i < tokens.length; i++) if (tokens[i]! > max) max = tokens[i]!;
  if (max >= s.config.vocabSize) {
    const field = s.kind === 'hf' ? "config.json's vocab_size" : 'model.vocabSize';
    throw new OspError(
      `${s.dir}: the text holds token ${max}, but the model's vocabulary has ${s.config.vocabSize} tokens (${field}); ` +
        `the tokenizer (${s.tokenizer?.spec ?? 'bytes'}) has ${s.tokenizer?.vocabSize ?? 258} ids`,
    );
  }
}
