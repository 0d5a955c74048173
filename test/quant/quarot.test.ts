/**
 * QuaRot's offline rotation (quarot.ts): the rotated plain Llama computes the same logits as the
 * original (float32 through the real Transformer; float64 through the independent reference
 * test/helpers/llama64.ts), for every norm x embedding, tied heads and grouped KV heads; Q is
 * orthogonal and depends on the seed only; a planted outlier channel is spread by the rotation; norms
 * end at weight 1; the online Hadamards (down_proj input, Q/K) keep the function; clear errors.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';
import { ConfigError, OspError } from '../../src/errors.ts';
import { foldToLlama, modelWeights, type Weights } from '../../src/model/fold.ts';
import { exactHadamard } from '../../src/quant/hadamard_exact.ts';
import { quarotModel, quarotRotate, quarotRotation, type QuarotResult } from '../../src/quant/quarot.ts';
import type { ModelConfig, ModelConfigInput } from '../../src/model/config.ts';
import type { BlockHooks } from '../../src/model/layers.ts';
import { Transformer, createModel } from '../../src/model/transformer.ts';
import { Rng } from '../../src/utils/rng.ts';
import { llama64, type Weights as W64 } from '../helpers/llama64.ts';
import { llamaConfig64, normRelErr, orthogonalityError, tokens } from '../helpers/model.ts';

beforeAll(async () => {
  await startBackend('cpu');
});
afterAll(async () => {
  await stopBackend();
});

const tiny = { vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 4, maxSeqLen: 16, initStd: 0.2 };

function logitsOf(model: Transformer, toks: number[][], hooks?: BlockHooks): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(toks, undefined, 'int32'), { hooks }).logits.dataSync() as Float32Array);
}

/** A plain-Llama Transformer holding the given weights (every parameter set, nothing extra). */
function load(config: ModelConfig, weights: Weights): Transformer {
  const m = new Transformer(config, new Rng(0));
  expect([...m.params.keys()].sort()).toEqual([...weights.keys()].sort());
  for (const [name, p] of m.params) p.assign(tf.tensor(weights.get(name)!.data, p.shape));
  return m;
}

/** Train-like norm weights: per-channel gains away from 1 (RMSNorm), scalars away from 1 (SSNorm). */
function randomizeNorms(model: Transformer, seed: number, keepFinal = false): void {
  const rng = new Rng(seed);
  for (const [name, p] of model.params) {
    if (!name.endsWith('norm.weight') || (keepFinal && name === 'model.norm.weight')) continue;
    const g = Float32Array.from({ length: p.size }, () => 1 + 0.4 * rng.normal());
    p.assign(tf.tensor(g, p.shape));
  }
}

const to64 = (w: Weights | NonNullable<QuarotResult['weights64']>): W64 =>
  new Map([...w].map(([name, v]) => [name, Float64Array.from(v.data)]));

function normWeightsAllOne(r: QuarotResult): void {
  const norms = [...r.weights].filter(([name]) => name.endsWith('norm.weight'));
  expect(norms.length).toBe(2 * r.config.numLayers + 1);
  for (const [name, w] of norms) {
    expect(w.shape, name).toEqual([r.config.hiddenSize]);
    expect(
      w.data.every((v) => v === 1),
      name,
    ).toBe(true);
  }
}

describe('QuaRot rotation keeps the function', () => {
  const variants: ModelConfigInput[] = [
    { norm: 'rmsnorm', embedding: 'plain' },
    { norm: 'rmsnorm', embedding: 'embproj' },
    { norm: 'ssnorm', embedding: 'plain' },
    { norm: 'ssnorm', embedding: 'embproj' },
    { norm: 'rmsnorm', embedding: 'plain', numKvHeads: 2 },
    { norm: 'ssnorm', embedding: 'embproj', numKvHeads: 1 },
    { norm: 'rmsnorm', embedding: 'plain', tieEmbeddings: true },
    { norm: 'ssnorm', embedding: 'plain', tieEmbeddings: true, numKvHeads: 2 },
    { norm: 'rmsnorm', embedding: 'embproj', tieEmbeddings: true },
    { norm: 'ssnorm', embedding: 'embproj', tieEmbeddings: true },
    // Hidden width 24 = 12 x 2 (a Paley core), head width 12, intermediate 64.
    { norm: 'ssnorm', embedding: 'embproj', hiddenSize: 24, numHeads: 2 },
    { norm: 'rmsnorm', embedding: 'plain', hiddenSize: 24, numHeads: 2, numKvHeads: 1, tieEmbeddings: true },
  ];
  for (const [vi, v] of variants.entries()) {
    it(`${JSON.stringify(v)}: same logits (float32 Transformer 1e-4, float64 reference 1e-10), norms at 1`, async () => {
      const model = createModel({ ...tiny, ...v }, { seed: 10 + vi });
      randomizeNorms(model, 100 + vi);
      const original = await modelWeights(model);
      const before = new Map([...original].map(([k, w]) => [k, Float32Array.from(w.data)]));
      const r = quarotRotate(model.config, original, { seed: 7, keepFloat64: true });
      // The input is not modified.
      for (const [k, w] of original) expect(w.data).toEqual(before.get(k));

      expect(r.config.norm).toBe('rmsnorm');
      expect(r.config.embedding).toBe('plain');
      // Tied inputs come out untied here: EmbProj (fold) or a final norm weight != 1 (SSNorm 1 + noise).
      expect(r.config.tieEmbeddings).toBe(false);
      expect(r.untied).toBe(v.tieEmbeddings === true);
      normWeightsAllOne(r);

      // float32 through the real Transformer.
      const toks = tokens(2, 9, tiny.vocabSize, 3 + vi);
      const rotated = load(r.config, r.weights);
      expect(normRelErr(logitsOf(rotated, toks), logitsOf(model, toks))).toBeLessThan(1e-4);

      // float64 reference: rotated vs unrotated folded weights (the same float32 inputs), and vs the
      // original (unfolded) model, which differs by the fold's float32 rounding only.
      const folded = foldToLlama(model.config, original);
      const ref = llama64(llamaConfig64(folded.config), to64(folded.weights), toks).logits;
      const rot = llama64(llamaConfig64(r.config), to64(r.weights64!), toks).logits;
      expect(normRelErr(rot, ref)).toBeLessThan(1e-10);
      const orig = llama64(llamaConfig64(model.config), to64(original), toks).logits;
      expect(normRelErr(rot, orig)).toBeLessThan(1e-5);
      // ... and the float32-rounded rotated weights stay within float32 rounding.
      expect(normRelErr(llama64(llamaConfig64(r.config), to64(r.weights), toks).logits, ref)).toBeLessThan(1e-5);

      // The rotation really happened: the embedding is E Q with the dense Q (checks the fast transform).
      const E = folded.weights.get('model.embed_tokens.weight')!.data;
      const d = r.config.hiddenSize;
      const Erot = r.weights64!.get('model.embed_tokens.weight')!.data;
      let worst = 0;
      for (let t = 0; t < r.config.vocabSize; t++) {
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let i = 0; i < d; i++) s += E[t * d + i]! * r.q[i * d + j]!;
          worst = Math.max(worst, Math.abs(s - Erot[t * d + j]!));
        }
      }
      expect(worst).toBeLessThan(1e-12);
      model.dispose();
      rotated.dispose();
    });
  }

  it('tied embeddings stay tied when the final norm weight is all ones (E Q is embedding and head)', async () => {
    const model = createModel({ ...tiny, tieEmbeddings: true, numKvHeads: 2 }, { seed: 31 });
    randomizeNorms(model, 32, true);
    const r = await quarotModel(model, { seed: 3, keepFloat64: true });
    expect(r.config.tieEmbeddings).toBe(true);
    expect(r.untied).toBe(false);
    expect(r.weights.has('lm_head.weight')).toBe(false);
    normWeightsAllOne(r);
    const toks = tokens(2, 11, tiny.vocabSize, 5);
    const rotated = load(r.config, r.weights);
    expect(normRelErr(logitsOf(rotated, toks), logitsOf(model, toks))).toBeLessThan(1e-4);
    const original = await modelWeights(model);
    const ref = llama64(llamaConfig64(model.config), to64(original), toks).logits;
    expect(normRelErr(llama64(llamaConfig64(r.config), to64(r.weights64!), toks).logits, ref)).toBeLessThan(1e-10);
    model.dispose();
    rotated.dispose();
  });
});

describe('the rotation Q', () => {
  it('is orthogonal (Q Q^T = I to 1e-12 in float64) for hidden widths 12, 16, 20, 128, 352', () => {
    for (const d of [12, 16, 20, 128, 352]) {
      const q = quarotRotation(d, 5);
      expect(orthogonalityError(q, d), `d=${d}`).toBeLessThan(1e-12);
      // Q = H D / sqrt(d): every entry +-1/sqrt(d), column j's sign pattern is H's times s_j.
      const h = exactHadamard(d);
      for (let j = 0; j < d; j++) {
        const s = q[j]! * Math.sqrt(d) * h[j]!;
        expect(Math.abs(s)).toBeCloseTo(1, 12);
        for (let i = 0; i < d; i++) expect(q[i * d + j]! * Math.sqrt(d)).toBeCloseTo(h[i * d + j]! * s, 12);
      }
    }
  });

  it('depends on the seed only, not on the weights', async () => {
    const a = createModel({ ...tiny }, { seed: 1 });
    const b = createModel({ ...tiny, norm: 'ssnorm', embedding: 'embproj' }, { seed: 2 });
    const ra = await quarotModel(a, { seed: 9 });
    const rb = await quarotModel(b, { seed: 9 });
    const rc = await quarotModel(a, { seed: 10 });
    expect(ra.q).toEqual(rb.q);
    expect(ra.q).toEqual(quarotRotation(tiny.hiddenSize, 9));
    expect(rc.q).not.toEqual(ra.q);
    expect(rc.signs).not.toEqual(ra.signs);
    expect([...ra.signs].every((s) => s === 1 || s === -1)).toBe(true);
    // Same seed, same weights: bit-identical result.
    const again = await quarotModel(a, { seed: 9 });
    for (const [name, w] of ra.weights) expect(again.weights.get(name)!.data).toEqual(w.data);
    a.dispose();
    b.dispose();
  });
});

describe('outlier spreading', () => {
  it('a planted outlier channel (x50) in the embedding: max|x|/rms of the first hidden state drops far', async () => {
    const d = 64;
    const model = createModel({ ...tiny, hiddenSize: d, numHeads: 4 }, { seed: 41 });
    const E = model.params.get('model.embed_tokens.weight')!;
    const channel = 13;
    const scale = Float32Array.from({ length: d }, (_, j) => (j === channel ? 50 : 1));
    E.assign(tf.mul(E, tf.tensor1d(scale)));
    const r = await quarotModel(model, { seed: 0 });
    const rotated = load(r.config, r.weights);
    const toks = tokens(2, 12, tiny.vocabSize, 8);
    const peakOverRms = (m: Transformer) =>
      tf.tidy(() => {
        const x = m.forward(tf.tensor2d(toks, undefined, 'int32'), { taps: true }).taps!.embed.dataSync();
        let sum = 0;
        const n = x.length / d;
        for (let t = 0; t < n; t++) {
          let peak = 0;
          let ss = 0;
          for (let j = 0; j < d; j++) {
            const v = x[t * d + j]!;
            peak = Math.max(peak, Math.abs(v));
            ss += v * v;
          }
          sum += peak / Math.sqrt(ss / d);
        }
        return sum / n;
      });
    const before = peakOverRms(model);
    const after = peakOverRms(rotated);
    expect(before).toBeGreaterThan(6); // sqrt(64) = 8 when one channel carries everything
    expect(after).toBeLessThan(2);
    expect(after).toBeLessThan(before / 4);
    // Still the same model.
    expect(normRelErr(logitsOf(rotated, toks), logitsOf(model, toks))).toBeLessThan(1e-4);
    model.dispose();
    rotated.dispose();
  });
});

describe('online rotations', () => {
  it('down_proj: W_down H / sqrt(I) offline plus x H / sqrt(I) online keeps the logits; without it they change', async () => {
    const model = createModel({ ...tiny, norm: 'ssnorm', embedding: 'embproj', numKvHeads: 2, intermediateSize: 48 }, { seed: 51 });
    randomizeNorms(model, 52);
    const off = await quarotModel(model, { seed: 4, keepFloat64: true });
    const on = await quarotModel(model, { seed: 4, keepFloat64: true, online: true });
    expect(on.online!.down.n).toBe(48);
    expect(on.online!.qk.n).toBe(4);
    // Offline half: W_on = W_off M with the dense M = H_48 / sqrt(48) (48 = 12 x 4, a Paley core).
    const M = on.online!.down.matrix();
    for (let l = 0; l < tiny.numLayers; l++) {
      const name = `model.layers.${l}.mlp.down_proj.weight`;
      const wOff = off.weights64!.get(name)!.data;
      const wOn = on.weights64!.get(name)!.data;
      let worst = 0;
      for (let r = 0; r < tiny.hiddenSize; r++) {
        for (let j = 0; j < 48; j++) {
          let s = 0;
          for (let i = 0; i < 48; i++) s += wOff[r * 48 + i]! * M[i * 48 + j]!;
          worst = Math.max(worst, Math.abs(s - wOn[r * 48 + j]!));
        }
      }
      expect(worst).toBeLessThan(1e-12);
    }
    // Everything else is unchanged by the flag.
    for (const [name, w] of off.weights) if (!name.endsWith('down_proj.weight')) expect(on.weights.get(name)!.data).toEqual(w.data);
    const rotated = load(on.config, on.weights);
    const toks = tokens(2, 10, tiny.vocabSize, 9);
    const hooks: BlockHooks = { linearInput: (x, site) => (site === 'down' ? on.online!.down.rotate(x) : x) };
    const ref = logitsOf(model, toks);
    expect(normRelErr(logitsOf(rotated, toks, hooks), ref)).toBeLessThan(1e-4);
    expect(normRelErr(logitsOf(rotated, toks), ref)).toBeGreaterThan(1e-2);
    model.dispose();
    rotated.dispose();
  });

  it('Q/K: rotating q and k per head after RoPE leaves the scores unchanged; the key-only form matches', async () => {
    const hd = 12;
    const model = createModel({ ...tiny, hiddenSize: 24, numHeads: 2 }); // head width 12 (Paley I)
    const on = (await quarotModel(model, { seed: 1, online: true })).online!;
    model.dispose();
    expect(on.qk.n).toBe(hd);
    const R = on.qk.matrix();
    expect(orthogonalityError(R, hd)).toBeLessThan(1e-12);
    const rng = new Rng(3);
    const q = tf.tensor4d(Float32Array.from(rng.normals(2 * 2 * 5 * hd)), [2, 2, 5, hd]);
    const k = tf.tensor4d(Float32Array.from(rng.normals(2 * 2 * 5 * hd)), [2, 2, 5, hd]);
    // rotate = x R with the dense R.
    const qr = on.qk.rotate(q);
    const qd = q.dataSync();
    const qrd = qr.dataSync();
    for (let row = 0; row < 20; row++) {
      for (let j = 0; j < hd; j++) {
        let s = 0;
        for (let i = 0; i < hd; i++) s += qd[row * hd + i]! * R[i * hd + j]!;
        expect(Math.abs(s - qrd[row * hd + j]!)).toBeLessThan(1e-5);
      }
    }
    const scores = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.tidy(() => tf.matMul(a, b, false, true).dataSync() as Float32Array);
    const kr = on.qk.rotate(k);
    expect(normRelErr(scores(qr, kr), scores(q, k))).toBeLessThan(1e-5);
    expect(normRelErr(on.qk.unrotate(kr).dataSync(), k.dataSync())).toBeLessThan(1e-6);
    // Key-only form with a lossy "quantizer" (rounding to 0.25) equals quantizing both-rotated keys.
    const quant = (x: tf.Tensor4D) => tf.mul(tf.round(tf.mul(x, 4)), 0.25) as tf.Tensor4D;
    const keyOnly = on.qk.quantizeKeysRotated(k, quant);
    expect(normRelErr(scores(q, keyOnly), scores(qr, quant(kr)))).toBeLessThan(1e-5);
    tf.dispose([q, k, qr, kr, keyOnly]);
  });
});

describe('errors', () => {
  it('names the field for what cannot be folded or rotated', async () => {
    const model = createModel(tiny, { seed: 1 });
    const w = await modelWeights(model);
    const c = model.config;
    const fieldOf = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).field;
      }
      throw new Error('did not throw');
    };
    expect(fieldOf(() => quarotRotate({ ...c, norm: 'layernorm' } as unknown as ModelConfig, w, { seed: 0 }))).toBe('model.norm');
    expect(() => quarotRotate({ ...c, norm: 'layernorm' } as unknown as ModelConfig, w, { seed: 0 })).toThrow(/layernorm/);
    expect(fieldOf(() => quarotRotate({ ...c, embedding: 'learned_pos' } as unknown as ModelConfig, w, { seed: 0 }))).toBe(
      'model.embedding',
    );
    // Hidden width 6: no Hadamard matrix of that order.
    const odd = createModel({ ...tiny, hiddenSize: 6, numHeads: 3 }, { seed: 1 });
    expect(fieldOf(() => quarotRotate(odd.config, new Map(), { seed: 0 }))).toBe('model.hiddenSize');
    // Intermediate 92 and head width 6 matter only for the online rotations.
    const i92 = createModel({ ...tiny, intermediateSize: 92 }, { seed: 1 });
    const w92 = await modelWeights(i92);
    expect(() => quarotRotate(i92.config, w92, { seed: 0 })).not.toThrow();
    expect(fieldOf(() => quarotRotate(i92.config, w92, { seed: 0, online: true }))).toBe('model.intermediateSize');
    const h6 = createModel({ ...tiny, headDim: 6 }, { seed: 1 });
    expect(fieldOf(() => quarotRotate(h6.config, new Map(), { seed: 0, online: true }))).toBe('model.headDim');
    // Missing and unexpected parameters are named.
    const missing = new Map(w);
    missing.delete('model.layers.1.mlp.up_proj.weight');
    expect(() => quarotRotate(c, missing, { seed: 0 })).toThrow(OspError);
    expect(() => quarotRotate(c, missing, { seed: 0 })).toThrow(/model\.layers\.1\.mlp\.up_proj\.weight/);
    const extra = new Map(w);
    extra.set('model.layers.0.self_attn.q_proj.bias', { shape: [16], data: new Float32Array(16) });
    expect(() => quarotRotate(c, extra, { seed: 0 })).toThrow(/q_proj\.bias/);
    const bad = new Map(w);
    bad.set('model.norm.weight', { shape: [8], data: new Float32Array(8) });
    expect(() => quarotRotate(c, bad, { seed: 0 })).toThrow(/model\.norm\.weight.*\[8\]/);
    for (const m of [model, odd, i92, h6]) m.dispose();
  });
});
