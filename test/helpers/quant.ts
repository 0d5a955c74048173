/** Shared pieces of the quantization tests: a learnable token chain, and a copy of a model to plant outliers in. */
import * as tf from '@tensorflow/tfjs';
import type { QuantEvalBatch } from '../../src/export/quant/eval.ts';
import { createModel, type Transformer } from '../../src/model/transformer.ts';
import { Rng } from '../../src/utils/rng.ts';

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
