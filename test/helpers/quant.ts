/** Shared pieces of the quantization tests: the paper's table, a learnable token chain, and a copy of a model to plant outliers in. */
import * as tf from '@tensorflow/tfjs';
import type { QuantEvalBatch } from '../../src/quant/eval.ts';
import { createModel, type Transformer } from '../../src/model/transformer.ts';
import { Rng } from '../../src/utils/rng.ts';

/** The variants of `--method rtn,gptq --rotate none,ffn,quarot` (and `--all`): the OSP paper's table, in its order. */
export const PAPER_TABLE = [
  'W4A4KV4 RTN',
  'W4A4KV4 RTN + FFN Had',
  'W4A4KV4 QuaRot',
  'W4A4KV4 GPTQ',
  'W4A4KV4 GPTQ + FFN Had',
  'W4A4KV4 QuaRot + GPTQ',
];

/** Batches of a chain t -> (3t + 1) mod V that jumps to a random token with probability 0.1. */
export function chainBatches(V: number, count: number, B: number, T: number, seed: number): QuantEvalBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      let t = rng.int(V);
      for (let i = 0; i < T; i++) {
        inputs[b * T + i] = t;
        t = rng.uniform() < 0.9 ? (3 * t + 1) % V : rng.int(V);
        targets[b * T + i] = t;
      }
    }
    return { inputs, targets, batchSize: B, seqLen: T };
  });
}

/** A second model of `config` holding a copy of `model`'s weights. */
export async function copyModel(model: Transformer, config: Parameters<typeof createModel>[0]): Promise<Transformer> {
  const copy = createModel(config, { seed: 1 });
  for (const [name, v] of model.params) {
    const t = tf.tensor(((await v.data()) as Float32Array).slice(), v.shape);
    copy.params.get(name)!.assign(t);
    t.dispose();
  }
  return copy;
}

/** Multiplies the entries of a [out, in] matrix (or a vector) whose (row, column) `pick` accepts by `factor`. */
export async function scaleEntries(
  m: Transformer,
  name: string,
  factor: number,
  pick: (row: number, col: number) => boolean,
): Promise<void> {
  const v = m.params.get(name)!;
  const [rows, cols] = v.shape.length === 2 ? (v.shape as [number, number]) : [1, v.shape[0]!];
  const values = ((await v.data()) as Float32Array).slice();
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (pick(r, c)) values[r * cols + c]! *= factor;
  const t = tf.tensor(values, v.shape);
  v.assign(t);
  t.dispose();
}

/**
 * A planted outlier channel at the attention input: every layer's input_layernorm channel c times K,
 * the matching q/k/v input columns divided by K. The same function in exact arithmetic, but one channel
 * of the normed attention input is K times larger, as in models with massive activations.
 */
export async function plantAttentionInputOutlier(m: Transformer, K: number, c: number): Promise<void> {
  for (let l = 0; l < m.config.numLayers; l++) {
    await scaleEntries(m, `model.layers.${l}.input_layernorm.weight`, K, (_, col) => col === c);
    for (const p of ['q', 'k', 'v']) await scaleEntries(m, `model.layers.${l}.self_attn.${p}_proj.weight`, 1 / K, (_, col) => col === c);
  }
}
