/**
 * LayerNorm as a norm module: its forward against an independent float64 model (test/helpers/llama64.ts
 * with PyTorch's LayerNorm), its backward against the closed-form LayerNorm gradient, its fold into a
 * plain Llama (residual stream centred: same logits, tied models come out untied), the bias variant's
 * refusal to fold, and its parameters' routing (AdamW, no weight decay).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { FoldError } from '../../src/errors.ts';
import { foldToLlama, modelWeights } from '../../src/model/fold.ts';
import { NORMS } from '../../src/model/norms.ts';
import { Transformer, createModel, paramSpecs } from '../../src/model/transformer.ts';
import { resolveModelConfig } from '../../src/model/config.ts';
import { createOptimizer } from '../../src/optim/routing.ts';
import { AdamW } from '../../src/optim/adamw.ts';
import { Rng } from '../../src/utils/rng.ts';
import { llama64 } from '../helpers/llama64.ts';
import { llamaConfig64, maxRelErr, normRelErr, tokens, weights64 } from '../helpers/model.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const tiny = { vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 4, maxSeqLen: 16, initStd: 0.2 };

/** Train-like weights: norm weights and biases away from their init (1 and 0). */
function perturbNorms(model: Transformer, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, p] of model.params) {
    if (!name.includes('norm')) continue;
    const noise = Float32Array.from(rng.normals(p.size, 0.3));
    p.assign(tf.add(p, tf.tensor(noise, p.shape)));
  }
}

function logitsOf(model: Transformer, toks: number[][]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(toks, undefined, 'int32')).logits.dataSync() as Float32Array);
}

describe('LayerNorm norm module', () => {
  for (const norm of ['layernorm', 'layernorm_bias'] as const) {
    it(`${norm}: the model's logits match a float64 Llama with PyTorch's LayerNorm`, () => {
      const model = createModel({ ...tiny, norm }, { seed: 3 });
      perturbNorms(model, 7);
      const toks = tokens(2, 9, tiny.vocabSize, 5);
      const oracle = llama64({ ...llamaConfig64(model.config), layerNorm: true }, weights64(model), toks);
      expect(normRelErr(logitsOf(model, toks), oracle.logits)).toBeLessThan(1e-5);
      // The oracle differs from RMSNorm here: without centring it would not match.
      const rms = llama64({ ...llamaConfig64(model.config), layerNorm: false }, weights64(model), toks);
      expect(normRelErr(rms.logits, oracle.logits)).toBeGreaterThan(1e-3);
      model.dispose();
    });
  }

  it('backward: d/dx of sum(r * LayerNorm(x)) is the closed form (1/s) (g - mean(g) - xhat mean(g xhat)), g = w r', () => {
    const [N, d, eps] = [5, 12, 1e-6];
    const rng = new Rng(11);
    const x = Float32Array.from(rng.normals(N * d, 1.5)).map((v, i) => v + (i % d) * 0.1); // rows with a mean
    const w = Float32Array.from(rng.normals(d, 0.5)).map((v) => v + 1);
    const b = Float32Array.from(rng.normals(d, 0.5));
    const r = Float32Array.from(rng.normals(N * d, 1));
    const params = new Map([
      ['n.weight', tf.tensor1d(w)],
      ['n.bias', tf.tensor1d(b)],
    ]);
    const grad = tf.grad((xt: tf.Tensor) =>
      tf.sum(
        tf.mul(
          NORMS.layernorm_bias.forward(xt as tf.Tensor2D, (n) => params.get(n)!, 'n', eps),
          tf.tensor2d(r, [N, d]),
        ),
      ),
    )(tf.tensor2d(x, [N, d]));
    const got = grad.dataSync();
    const want = new Float64Array(N * d);
    for (let i = 0; i < N; i++) {
      const row = Array.from(x.subarray(i * d, i * d + d));
      const mean = row.reduce((a, v) => a + v, 0) / d;
      const s = Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / d + eps);
      const xhat = row.map((v) => (v - mean) / s);
      const g = row.map((_, j) => w[j]! * r[i * d + j]!);
      const gMean = g.reduce((a, v) => a + v, 0) / d;
      const gxMean = g.reduce((a, v, j) => a + v * xhat[j]!, 0) / d;
      for (let j = 0; j < d; j++) want[i * d + j] = (g[j]! - gMean - xhat[j]! * gxMean) / s;
    }
    expect(maxRelErr(got, want, 1e-2)).toBeLessThan(1e-4);
    tf.dispose([grad, ...params.values()]);
  });

  for (const tieEmbeddings of [false, true]) {
    it(`layernorm folds into a plain Llama with the same logits${tieEmbeddings ? ' (tied: comes out untied)' : ''}`, async () => {
      const model = createModel({ ...tiny, norm: 'layernorm', tieEmbeddings }, { seed: 4 });
      perturbNorms(model, 8);
      const folded = foldToLlama(model.config, await modelWeights(model));
      expect(folded.config).toMatchObject({ norm: 'rmsnorm', embedding: 'plain', tieEmbeddings: false });
      const plain = new Transformer(folded.config, new Rng(0));
      expect([...plain.params.keys()].sort()).toEqual([...folded.weights.keys()].sort());
      for (const [name, p] of plain.params) p.assign(tf.tensor(folded.weights.get(name)!.data, p.shape));
      const toks = tokens(2, 9, tiny.vocabSize, 6);
      expect(normRelErr(logitsOf(plain, toks), logitsOf(model, toks))).toBeLessThan(1e-5);
      // The fold centred the stream: every embedding row of the folded model has mean ~0.
      const E = folded.weights.get('model.embed_tokens.weight')!.data;
      for (let t = 0; t < tiny.vocabSize; t++) {
        expect(Math.abs(E.subarray(t * 16, t * 16 + 16).reduce((a, v) => a + v, 0) / 16)).toBeLessThan(1e-6);
      }
      model.dispose();
      plain.dispose();
    });
  }

  it('layernorm_bias refuses to fold with a FoldError that says why and what to use instead', async () => {
    const model = createModel({ ...tiny, norm: 'layernorm_bias' }, { seed: 5 });
    const w = await modelWeights(model);
    expect(() => foldToLlama(model.config, w)).toThrow(FoldError);
    expect(() => foldToLlama(model.config, w)).toThrow(/'layernorm_bias' cannot be folded.*train with 'layernorm'/);
    model.dispose();
  });

  it('its parameters: weight (and bias) per norm; routed to AdamW without weight decay', () => {
    const c = resolveModelConfig({ ...tiny, norm: 'layernorm_bias' });
    const names = paramSpecs(c).map((s) => s.name);
    for (const prefix of ['model.layers.0.input_layernorm', 'model.layers.1.post_attention_layernorm', 'model.norm']) {
      expect(names).toContain(`${prefix}.weight`);
      expect(names).toContain(`${prefix}.bias`);
    }
    expect(paramSpecs(resolveModelConfig({ ...tiny, norm: 'layernorm' })).some((s) => s.name.endsWith('.bias'))).toBe(false);
    const model = createModel(c, { seed: 0 });
    const opt = createOptimizer({}, model);
    const adamw = opt.group('adamw') as AdamW;
    for (const name of ['model.norm.bias', 'model.layers.0.input_layernorm.weight']) {
      expect([name, opt.assignment.get(name), adamw.decays(name)]).toEqual([name, 'adamw', false]);
    }
    opt.dispose();
    model.dispose();
  });
});
