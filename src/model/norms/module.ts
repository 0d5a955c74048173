/**
 * What a norm module provides. A norm is chosen by name (config `model.norm`) and applies to every norm
 * of the model: each block's `input_layernorm` and `post_attention_layernorm`, and the final `model.norm`.
 * Each is addressed by its parameter prefix (e.g. 'model.layers.0.input_layernorm'); a module names its
 * parameters under it ('<prefix>.weight', '<prefix>.bias').
 */
import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config.ts';
import type { ParamSpec } from '../init.ts';
import type { Weights } from '../weights.ts';

export interface NormModule {
  /** One line for the config reference and `--help`. */
  doc: string;
  /** The learnable parameters of the norm at `prefix` over width d. */
  params(prefix: string, d: number): ParamSpec[];
  /** x [N, d] -> the normed [N, d]; `p` looks up a parameter by full name. Differentiable. */
  forward(x: tf.Tensor2D, p: (name: string) => tf.Tensor, prefix: string, eps: number): tf.Tensor2D;
  /**
   * Rewrites `w` (a model of this norm, host copy; the embedding module has been folded already) so that
   * every norm is a plain Llama RMSNorm: a weight vector [d] at '<prefix>.weight' and nothing else. It
   * may also change other tensors, provided the model computes the same function with RMSNorms (a tied
   * head has been untied before, as 'lm_head.weight'). Throws FoldError when no exact fold exists.
   */
  fold(w: Weights, c: ModelConfig, prefixes: readonly string[]): void;
}

/**
 * The parameter prefix of every norm in a model with `numLayers` blocks, in the order the forward pass
 * applies them: per block the pre-attention and pre-MLP norm, then the final norm.
 * @example normPrefixes(1) // ['model.layers.0.input_layernorm', 'model.layers.0.post_attention_layernorm', 'model.norm']
 */
export function normPrefixes(numLayers: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < numLayers; i++) out.push(`model.layers.${i}.input_layernorm`, `model.layers.${i}.post_attention_layernorm`);
  out.push('model.norm');
  return out;
}
