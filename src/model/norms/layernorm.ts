/**
 * LayerNorm (Ba et al. 2016, PyTorch's nn.LayerNorm over the last dimension): y = w * (x - mean(x)) /
 * sqrt(var(x) + eps) (+ b), with the biased variance. Two registry entries: 'layernorm' (weight only)
 * and 'layernorm_bias' (weight and bias, as GPT-2 and OPT have).
 *
 * Fold into a plain Llama (the SliceGPT construction): if the residual stream has zero mean over its
 * channels, LayerNorm without bias is exactly RMSNorm with the same weight. The stream is a sum of the
 * embedding and the outputs of every o_proj and down_proj, so centring the embedding rows and the
 * columns of those matrices (W <- W - 1 mean_rows(W), i.e. C W with C = I - 11^T/d) centres it for every
 * input, and LayerNorm(x) = LayerNorm(C x) = RMSNorm(C x) at every norm. The head reads normed values and
 * is unchanged (a tied head was untied first). A bias has no exact place in a Llama (no q/k/v, gate/up
 * or head biases), so 'layernorm_bias' refuses to fold.
 */
import * as tf from '@tensorflow/tfjs';
import { FoldError } from '../../errors.ts';
import type { ModelConfig } from '../config.ts';
import { weight, type Weights } from '../weights.ts';
import type { NormModule } from './module.ts';

/** Subtracts from each column of the row-major [rows, cols] matrix its mean over the rows (float64). */
function centreColumns(m: Float32Array, rows: number, cols: number): Float32Array {
  const mean = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mean[j]! += m[i * cols + j]!;
  for (let j = 0; j < cols; j++) mean[j]! /= rows;
  const out = new Float32Array(m.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = m[i * cols + j]! - mean[j]!;
  return out;
}

/** Subtracts from each row of the row-major [rows, cols] matrix its mean (float64). */
function centreRows(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += m[i * cols + j]!;
    const mean = s / cols;
    for (let j = 0; j < cols; j++) out[i * cols + j] = m[i * cols + j]! - mean;
  }
  return out;
}

/** Centres every writer into the residual stream, so the stream has zero channel mean everywhere. */
function centreResidualStream(w: Weights, c: ModelConfig): void {
  const d = c.hiddenSize;
  const emb = weight(w, 'model.embed_tokens.weight');
  w.set('model.embed_tokens.weight', { shape: emb.shape, data: centreRows(emb.data, c.vocabSize, d) });
  for (let i = 0; i < c.numLayers; i++) {
    for (const name of [`model.layers.${i}.self_attn.o_proj.weight`, `model.layers.${i}.mlp.down_proj.weight`]) {
      const m = weight(w, name);
      w.set(name, { shape: m.shape, data: centreColumns(m.data, d, m.shape[1]!) });
    }
  }
}

function layerNorm(bias: boolean): NormModule {
  return {
    doc: bias
      ? 'LayerNorm with a per-channel scale and bias (GPT-2, OPT); does not fold into a plain Llama.'
      : 'LayerNorm with a per-channel scale, no bias; folds exactly into a Llama RMSNorm (residual stream centred).',
    params: (prefix, d) => [
      { name: `${prefix}.weight`, shape: [d], init: { kind: 'ones' } },
      ...(bias ? [{ name: `${prefix}.bias`, shape: [d], init: { kind: 'zeros' as const } }] : []),
    ],
    // Plain tfjs ops (the caller's tidy collects the intermediates; autodiff gives the backward).
    forward: (x, p, prefix, eps) => {
      const centred = tf.sub(x, tf.mean(x, -1, true));
      const variance = tf.mean(tf.square(centred), -1, true);
      const y = tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), p(`${prefix}.weight`));
      return (bias ? tf.add(y, p(`${prefix}.bias`)) : y) as tf.Tensor2D;
    },
    fold: (w, c) => {
      if (bias) {
        throw new FoldError(
          "model.norm 'layernorm_bias' cannot be folded into a plain Llama: a LayerNorm bias would need biases in " +
            "q/k/v, gate/up and the head, which Llama does not have (train with 'layernorm' to export or quantize)",
        );
      }
      centreResidualStream(w, c);
    },
  };
}

/** Both LayerNorm entries of the norm registry. */
export const LAYER_NORMS = { layernorm: layerNorm(false), layernorm_bias: layerNorm(true) } satisfies Record<string, NormModule>;
