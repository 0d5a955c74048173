/**
 * The tfjs model against an independent float64 forward pass (test/helpers/llama64.ts): logits and
 * every hidden-state tap, for every norm x embedding combination, grouped-query attention and tied
 * embeddings. Also the structure promised to users: Hugging Face parameter names and shapes.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { createModel, type ForwardResult } from '../../src/model/transformer.ts';
import { llama64 } from '../helpers/llama64.ts';
import { config64, normRelErr, tokens, weights64 } from '../helpers/model.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const tiny = { vocabSize: 19, hiddenSize: 16, numLayers: 2, numHeads: 4, maxSeqLen: 16, initStd: 0.3 };

const variants = [
  { norm: 'rmsnorm', embedding: 'plain' },
  { norm: 'ssnorm', embedding: 'plain' },
  { norm: 'rmsnorm', embedding: 'embproj' },
  { norm: 'ssnorm', embedding: 'embproj' },
  { norm: 'rmsnorm', embedding: 'plain', numKvHeads: 2 },
  { norm: 'ssnorm', embedding: 'embproj', numKvHeads: 1, tieEmbeddings: true },
  { norm: 'rmsnorm', embedding: 'plain', headDim: 6, ropeTheta: 500 },
] as const;

describe('forward pass vs float64 oracle', () => {
  for (const v of variants) {
    it(JSON.stringify(v), () => {
      const model = createModel({ ...tiny, ...v }, { seed: 3 });
      // Norm scales away from 1 so that their use is visible in the output.
      for (const [name, p] of model.params) {
        if (name.includes('norm')) p.assign(tf.add(p, tf.randomUniform(p.shape, 0.5, 1.5, 'float32', 7)));
      }
      const toks = tokens(2, 11, tiny.vocabSize);
      const ref = llama64(config64(model), weights64(model), toks);
      const before = tf.memory().numTensors;
      const out = tf.tidy(
        () => model.forward(tf.tensor2d(toks, undefined, 'int32'), { taps: true }) as unknown as tf.TensorContainer,
      ) as unknown as ForwardResult;
      expect(out.logits.shape).toEqual([2, 11, tiny.vocabSize]);
      expect(normRelErr(out.logits.dataSync(), ref.logits)).toBeLessThan(1e-5);
      const tapNames = Object.keys(out.taps!).sort();
      expect(tapNames).toEqual([...ref.hidden.keys()].sort());
      expect(tapNames).toHaveLength(3 * tiny.numLayers + 2);
      for (const name of tapNames) {
        expect(out.taps![name]!.shape).toEqual([2, 11, tiny.hiddenSize]);
        expect(normRelErr(out.taps![name]!.dataSync(), ref.hidden.get(name)!), name).toBeLessThan(1e-5);
      }
      tf.dispose([out.logits, ...Object.values(out.taps!)]);
      // Inside tf.tidy, forward leaves behind only its outputs and one cached causal mask per length.
      expect(tf.memory().numTensors - before).toBe(1);
      model.dispose();
    });
  }

  it('creating and disposing a model leaves no tensor behind (the initial values are released)', () => {
    const before = tf.memory().numTensors;
    for (const v of variants) createModel({ ...tiny, ...v }, { seed: 1 }).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('causality: changing a later token leaves earlier logits unchanged', () => {
    const model = createModel(tiny, { seed: 5 });
    const a = tokens(1, 9, tiny.vocabSize, 4);
    const b = a.map((row) => row.slice());
    b[0]![6] = (b[0]![6]! + 1) % tiny.vocabSize;
    const la = model.forward(tf.tensor2d(a, undefined, 'int32')).logits.arraySync()[0]!;
    const lb = model.forward(tf.tensor2d(b, undefined, 'int32')).logits.arraySync()[0]!;
    expect(lb.slice(0, 6)).toEqual(la.slice(0, 6));
    expect(lb[6]).not.toEqual(la[6]);
    model.dispose();
  });
});

describe('parameters', () => {
  it('use Hugging Face Llama names and [out, in] shapes, plus the documented OSP extras', () => {
    const model = createModel({ ...tiny, norm: 'ssnorm', embedding: 'embproj', numKvHeads: 2, intermediateSize: 24 }, { seed: 0 });
    const shapes = Object.fromEntries([...model.params].map(([n, p]) => [n, p.shape]));
    expect(shapes).toEqual({
      'model.embed_tokens.weight': [19, 16],
      'model.embed_proj.weight': [16, 16],
      'model.head_proj.weight': [16, 16],
      ...Object.fromEntries(
        [0, 1].flatMap((i) => [
          [`model.layers.${i}.input_layernorm.weight`, [1]],
          [`model.layers.${i}.self_attn.q_proj.weight`, [16, 16]],
          [`model.layers.${i}.self_attn.k_proj.weight`, [8, 16]],
          [`model.layers.${i}.self_attn.v_proj.weight`, [8, 16]],
          [`model.layers.${i}.self_attn.o_proj.weight`, [16, 16]],
          [`model.layers.${i}.post_attention_layernorm.weight`, [1]],
          [`model.layers.${i}.mlp.gate_proj.weight`, [24, 16]],
          [`model.layers.${i}.mlp.up_proj.weight`, [24, 16]],
          [`model.layers.${i}.mlp.down_proj.weight`, [16, 24]],
        ]),
      ),
      'model.norm.weight': [1],
      'lm_head.weight': [19, 16],
    });
    // EmbProj matrices start orthogonal: P P^T = I.
    const p = model.params.get('model.embed_proj.weight')!;
    const gram = tf.matMul(p, p, false, true).arraySync() as number[][];
    gram.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(i === j ? 1 : 0, 5)));
    // SSNorm scales start at exactly 1.
    expect(model.params.get('model.norm.weight')!.dataSync()[0]).toBe(1);
    model.dispose();
  });

  it('the same seed gives the same weights, another seed different ones', () => {
    const a = createModel(tiny, { seed: 11 });
    const b = createModel(tiny, { seed: 11 });
    const c = createModel(tiny, { seed: 12 });
    const w = 'model.layers.1.mlp.up_proj.weight';
    expect(a.params.get(w)!.dataSync()).toEqual(b.params.get(w)!.dataSync());
    expect(a.params.get(w)!.dataSync()).not.toEqual(c.params.get(w)!.dataSync());
    const std = tf.moments(a.params.get(w)!).variance.sqrt().dataSync()[0]!;
    expect(std).toBeGreaterThan(0.27);
    expect(std).toBeLessThan(0.33);
    [a, b, c].forEach((m) => m.dispose());
  });
});
