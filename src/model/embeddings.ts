/**
 * Embedding modules, chosen by name (config `model.embedding`). A module may add parameters and
 * transform the residual stream right after the token embedding and right before the LM head.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ParamSpec } from './init.ts';
import { linear } from './layers.ts';

export interface EmbeddingModule {
  /** Extra parameters for width d. */
  params(d: number): ParamSpec[];
  /** x: [N, d] token embeddings -> [N, d] input of block 0. */
  afterEmbed(x: tf.Tensor2D, p: (name: string) => tf.Tensor): tf.Tensor2D;
  /** x: [N, d] final-norm output -> [N, d] input of the LM head. */
  beforeHead(x: tf.Tensor2D, p: (name: string) => tf.Tensor): tf.Tensor2D;
  doc: string;
}

export const EMBEDDINGS = {
  plain: {
    params: () => [],
    afterEmbed: (x) => x,
    beforeHead: (x) => x,
    doc: 'Token embedding straight into block 0; final norm straight into the head.',
  },
  embproj: {
    // OSP's learnable embedding projection: x0 = P1 E[t]; logits = W_head P2 norm(x_L). Orthogonal init
    // makes both identity-like in scale. No biases, so both fold exactly into a plain Llama at export
    // (E' = E P1^T, W' = W_head P2).
    params: (d) => [
      { name: 'model.embed_proj.weight', shape: [d, d], init: { kind: 'orthogonal' } },
      { name: 'model.head_proj.weight', shape: [d, d], init: { kind: 'orthogonal' } },
    ],
    afterEmbed: (x, p) => linear(x, p('model.embed_proj.weight')),
    beforeHead: (x, p) => linear(x, p('model.head_proj.weight')),
    doc: 'OSP EmbProj: two d x d matrices (orthogonal init) after the embedding and before the head.',
  },
} satisfies Record<string, EmbeddingModule>;

export type EmbeddingName = keyof typeof EMBEDDINGS;
