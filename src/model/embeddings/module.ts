/**
 * What an embedding module provides (config `model.embedding`): parameters of its own, the transforms
 * of the residual stream right after the token embedding and right before the LM head, its fold into a
 * plain Llama's embedding and head, and the optimizer its matrices default to.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config.ts';
import type { ParamSpec } from '../init.ts';
import type { Weights } from '../weights.ts';

/** A routing rule an embedding module adds before the generic default (optim/routing.ts). */
export interface DefaultRoute {
  match: string;
  optimizer: string;
}

export interface EmbeddingModule {
  /** One line for the config reference and `--help`. */
  doc: string;
  /** Extra parameters for width d. */
  params(d: number): ParamSpec[];
  /** x: [N, d] token embeddings -> [N, d] input of block 0. */
  afterEmbed(x: tf.Tensor2D, p: (name: string) => tf.Tensor): tf.Tensor2D;
  /** x: [N, d] final-norm output -> [N, d] input of the LM head. */
  beforeHead(x: tf.Tensor2D, p: (name: string) => tf.Tensor): tf.Tensor2D;
  /**
   * Rewrites `w` (host copy; 'lm_head.weight' present even for a tied model) into a plain Llama's
   * embedding and head, removing the module's own parameters. Throws FoldError when no exact fold exists.
   */
  fold(w: Weights, c: ModelConfig): void;
  /** Where the module's parameters go unless the user's routing rules say otherwise. */
  defaultRouting: readonly DefaultRoute[];
}
