/**
 * Folding a model into a plain Llama, so quantizers and llama.cpp see a model they know. Each module
 * folds itself (model/norms/, model/embeddings/): SSNorm's scalar becomes a filled vector, EmbProj's
 * matrices merge into the embedding and the head, a module with no exact fold throws FoldError. Here
 * only the order: the embedding first (it defines the residual stream's input), then the norms.
 *
 * A tied head is untied before either runs ('lm_head.weight' = the embedding) and tied again afterwards
 * when the two are still bit-identical (plain embedding and a norm that leaves the embedding alone).
 */
import type { ModelConfig } from './config.ts';
import { EMBEDDINGS } from './embeddings.ts';
import { NORMS, normPrefixes } from './norms.ts';
import type { Transformer } from './transformer.ts';
import { weight, type Weights } from './weights.ts';

export type { Weights } from './weights.ts';

/** Copies a model's parameters to the host (async: WebGPU cannot read synchronously). */
export async function modelWeights(model: Transformer): Promise<Weights> {
  const out: Weights = new Map();
  for (const [name, p] of model.params) out.set(name, { shape: [...p.shape], data: Float32Array.from((await p.data()) as Float32Array) });
  return out;
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/**
 * The folded (plain Llama) weights and config of a model with any norm and embedding.
 * Names are Hugging Face Llama's; `lm_head.weight` is present unless the folded model is tied.
 */
export function foldToLlama(config: ModelConfig, weights: Weights): { config: ModelConfig; weights: Weights } {
  const out: Weights = new Map();
  for (const [name, w] of weights) out.set(name, { shape: [...w.shape], data: Float32Array.from(w.data) });
  const E = weight(out, 'model.embed_tokens.weight');
  if (config.tieEmbeddings) out.set('lm_head.weight', { shape: [...E.shape], data: Float32Array.from(E.data) });
  EMBEDDINGS[config.embedding].fold(out, config);
  NORMS[config.norm].fold(out, config, normPrefixes(config.numLayers));
  const tied = config.tieEmbeddings && sameValues(weight(out, 'model.embed_tokens.weight').data, weight(out, 'lm_head.weight').data);
  if (tied) out.delete('lm_head.weight');
  return { config: { ...config, norm: 'rmsnorm', embedding: 'plain', tieEmbeddings: tied }, weights: out };
}
