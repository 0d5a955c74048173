/**
 * Every parameter's gradient (tfjs autodiff, float32) against central finite differences of the
 * independent float64 oracle's loss, for every norm x embedding combination (plus GQA and tied
 * embeddings). Finite differences in float64 with h = 1e-6 are accurate to ~1e-9, so the remaining
 * difference is float32 rounding in the gradient (~1e-6 relative), and a wrong gradient shows as O(1).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { createModel } from '../../src/model/transformer.ts';
import { crossEntropy64, llama64 } from '../helpers/llama64.ts';
import { config64, normRelErr, tokens, weights64 } from '../helpers/model.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const tiny = { vocabSize: 13, hiddenSize: 8, numLayers: 2, numHeads: 2, intermediateSize: 12, maxSeqLen: 8, initStd: 0.4 };

const variants = [
  { norm: 'rmsnorm', embedding: 'plain' },
  { norm: 'ssnorm', embedding: 'plain' },
  { norm: 'rmsnorm', embedding: 'embproj' },
  { norm: 'ssnorm', embedding: 'embproj' },
  { norm: 'ssnorm', embedding: 'plain', numKvHeads: 1, tieEmbeddings: true },
] as const;

describe('gradients vs float64 finite differences', () => {
  for (const v of variants) {
    it(JSON.stringify(v), () => {
      const model = createModel({ ...tiny, ...v }, { seed: 9 });
      const seq = tokens(2, 6, tiny.vocabSize, 5);
      const inputs = seq.map((r) => r.slice(0, 5));
      const targets = seq.map((r) => r.slice(1));
      const { value, grads } = tf.variableGrads(() =>
        model.loss(tf.tensor2d(inputs, undefined, 'int32'), tf.tensor2d(targets, undefined, 'int32')),
      );

      const cfg = config64(model);
      const w = weights64(model);
      const loss64 = () => crossEntropy64(llama64(cfg, w, inputs).logits, cfg.vocabSize, targets.flat());
      expect(Math.abs(value.dataSync()[0]! - loss64())).toBeLessThan(1e-5);

      // Map tfjs variable names back to parameter names.
      const byVar = new Map([...model.params].map(([name, p]) => [p.name, name]));
      expect(Object.keys(grads).length).toBe(model.params.size);
      const h = 1e-6;
      for (const [varName, g] of Object.entries(grads)) {
        const name = byVar.get(varName)!;
        const theta = w.get(name)!;
        const fd = new Float64Array(theta.length);
        for (let i = 0; i < theta.length; i++) {
          const t0 = theta[i]!;
          theta[i] = t0 + h;
          const up = loss64();
          theta[i] = t0 - h;
          const down = loss64();
          theta[i] = t0;
          fd[i] = (up - down) / (2 * h);
        }
        const err = normRelErr(g.dataSync(), fd);
        expect(err, `${name}: normwise relative error ${err}`).toBeLessThan(2e-4);
        // The check must be able to fail: gradients are not all ~0.
        expect(Math.max(...fd.map(Math.abs)), name).toBeGreaterThan(1e-4);
      }
      tf.dispose([value, ...Object.values(grads)]);
      model.dispose();
    });
  }
});
