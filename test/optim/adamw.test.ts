import * as tf from '@tensorflow/tfjs';
import { startBackend } from '../../src/backend/index.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { AdamW } from '../../src/optim/index.ts';
import { randn, relErr, rng } from './float64.ts';
import { expectStateRoundTrip } from './roundtrip.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

/** Float64 AdamW state for one parameter, PyTorch's update written out. */
interface Ref {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t: number;
}

function refStep(s: Ref, g: Float64Array, lr: number, b1: number, b2: number, eps: number, wd: number): void {
  s.t += 1;
  for (let i = 0; i < g.length; i++) {
    s.p[i] *= 1 - lr * wd;
    s.m[i] = b1 * s.m[i]! + (1 - b1) * g[i]!;
    s.v[i] = b2 * s.v[i]! + (1 - b2) * g[i]! * g[i]!;
    const mHat = s.m[i]! / (1 - b1 ** s.t);
    const vHat = s.v[i]! / (1 - b2 ** s.t);
    s.p[i] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
}

const shapes: Record<string, number[]> = {
  'model.layers.0.mlp.up_proj.weight': [12, 8],
  'model.norm.weight': [8],
  'lm_head.weight': [10, 8],
};

function setup(seed: number) {
  const next = rng(seed);
  const init = new Map(
    Object.entries(shapes).map(([n, s]) => [
      n,
      randn(
        s.reduce((a, b) => a * b, 1),
        next,
      ),
    ]),
  );
  const params = new Map([...init].map(([n, d]) => [n, tf.variable(tf.tensor(Float32Array.from(d), shapes[n]))]));
  const refs = new Map(
    [...init].map(([n, d]) => [n, { p: Float64Array.from(d), m: new Float64Array(d.length), v: new Float64Array(d.length), t: 0 }]),
  );
  const gradSeq = (k: number) =>
    Array.from(
      { length: k },
      () =>
        new Map(
          Object.entries(shapes).map(([n, s]) => [
            n,
            randn(
              s.reduce((a, b) => a * b, 1),
              next,
              0.5,
            ),
          ]),
        ),
    );
  return { params, refs, gradSeq };
}

const toTensors = (g: Map<string, Float64Array>) => new Map([...g].map(([n, d]) => [n, tf.tensor(Float32Array.from(d), shapes[n])]));

const cfg = { lr: 1e-2, betas: [0.9, 0.95] as [number, number], eps: 1e-8, weightDecay: 0.1 };

describe('AdamW', () => {
  it('applies defaults and rejects unknown keys', () => {
    const opt = AdamW.from({}, new Map());
    expect(opt.config).toEqual({ lr: 3e-4, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1, noDecay: ['*norm*', '*layernorm*'] });
    expect(() => AdamW.from({ lr: 1e-3, beta1: 0.9 }, new Map())).toThrow(ConfigError);
    expect(() => AdamW.from({ lr: 1e-3, beta1: 0.9 }, new Map())).toThrow(/optimizer\.adamw\.beta1: unknown key/);
  });

  it('one step and five steps (bias correction t > 1) match a float64 oracle, norms exempt from decay', () => {
    const { params, refs, gradSeq } = setup(1);
    const opt = AdamW.from(cfg, params);
    expect(opt.decays('model.norm.weight')).toBe(false);
    expect(opt.decays('lm_head.weight')).toBe(true);
    const lrFactors = [1, 0.5, 0.8, 1, 0.3];
    gradSeq(5).forEach((g, k) => {
      const before = new Map([...params].map(([n, p]) => [n, Float64Array.from(p.dataSync())]));
      const grads = toTensors(g);
      opt.step(params, grads, lrFactors[k]!);
      tf.dispose([...grads.values()]);
      for (const [name, ref] of refs) {
        const wd = name.includes('norm') ? 0 : cfg.weightDecay;
        // The oracle continues from the float32 parameter so each step's update is compared alone.
        ref.p = Float64Array.from(before.get(name)!);
        refStep(ref, g.get(name)!, cfg.lr * lrFactors[k]!, 0.9, 0.95, 1e-8, wd);
        const got = params.get(name)!.dataSync();
        const delta = (x: ArrayLike<number>) => Array.from(x, (v, i) => v - before.get(name)![i]!);
        expect(relErr(delta(got), delta(ref.p))).toBeLessThan(1e-4);
      }
    });
    const state = opt.stateDict();
    for (const [name, ref] of refs) {
      expect(relErr(state.get(`adamw/${name}/exp_avg`)!.dataSync(), ref.m)).toBeLessThan(1e-5);
      expect(relErr(state.get(`adamw/${name}/exp_avg_sq`)!.dataSync(), ref.v)).toBeLessThan(1e-5);
      expect(state.get(`adamw/${name}/step`)!.dataSync()[0]).toBe(5);
    }
    tf.dispose([...state.values()]);
    opt.dispose();
  });

  it('does not touch a parameter without a gradient (no decay, no state advance)', () => {
    const { params, refs, gradSeq } = setup(2);
    const opt = AdamW.from(cfg, params);
    const seq = gradSeq(4);
    const frozen = 'lm_head.weight';
    const step = (g: Map<string, Float64Array>) => {
      const grads = toTensors(g);
      opt.step(params, grads, 1);
      tf.dispose([...grads.values()]);
    };
    step(seq[0]!);
    refStep(refs.get(frozen)!, seq[0]!.get(frozen)!, cfg.lr, 0.9, 0.95, 1e-8, cfg.weightDecay);
    const held = Array.from(params.get(frozen)!.dataSync());
    const heldState = opt.stateDict();
    for (const g of seq.slice(1, 3)) step(new Map([...g].filter(([n]) => n !== frozen)));
    expect(Array.from(params.get(frozen)!.dataSync())).toEqual(held);
    const state = opt.stateDict();
    expect(state.get(`adamw/${frozen}/step`)!.dataSync()[0]).toBe(1);
    expect(Array.from(state.get(`adamw/${frozen}/exp_avg`)!.dataSync())).toEqual(
      Array.from(heldState.get(`adamw/${frozen}/exp_avg`)!.dataSync()),
    );
    expect(state.get('adamw/model.norm.weight/step')!.dataSync()[0]).toBe(3);
    // When it gets a gradient again, its update is the oracle's second step (t = 2, not 4).
    const ref = refs.get(frozen)!;
    ref.p = Float64Array.from(held);
    refStep(ref, seq[3]!.get(frozen)!, cfg.lr, 0.9, 0.95, 1e-8, cfg.weightDecay);
    step(seq[3]!);
    const delta = (x: ArrayLike<number>) => Array.from(x, (v, i) => v - held[i]!);
    expect(relErr(delta(params.get(frozen)!.dataSync()), delta(ref.p))).toBeLessThan(1e-4);
    tf.dispose([...state.values(), ...heldState.values()]);
    opt.dispose();
  });

  it('stateDict/loadStateDict round trip: the next step is bit-identical', () => {
    const a = setup(3);
    const b = setup(3); // same seed: identical initial parameters
    const grads = a.gradSeq(4).map(toTensors);
    expectStateRoundTrip(a.params, b.params, (p) => AdamW.from(cfg, p), grads, 0.7).dispose();
    tf.dispose(grads.flatMap((g) => [...g.values()]));
  });

  it('loadStateDict names missing, unknown and mis-shaped entries', () => {
    const { params } = setup(4);
    const opt = AdamW.from(cfg, params);
    const state = opt.stateDict();
    const missing = new Map(state);
    missing.delete('adamw/lm_head.weight/exp_avg');
    expect(() => opt.loadStateDict(missing)).toThrow(/missing: adamw\/lm_head\.weight\/exp_avg/);
    const extra = new Map(state).set('adamw/typo.weight/step', tf.scalar(1));
    expect(() => opt.loadStateDict(extra)).toThrow(/unknown: adamw\/typo\.weight\/step/);
    const wrong = new Map(state).set('adamw/lm_head.weight/exp_avg_sq', tf.zeros([8, 10]));
    expect(() => opt.loadStateDict(wrong)).toThrow(/'adamw\/lm_head\.weight\/exp_avg_sq' expects shape \[10, 8\], got \[8, 10\]/);
    tf.dispose([...state.values(), extra.get('adamw/typo.weight/step')!, wrong.get('adamw/lm_head.weight/exp_avg_sq')!]);
    opt.dispose();
  });

  it('rejects a gradient for a parameter it does not own, or of the wrong shape', () => {
    const { params } = setup(5);
    const opt = AdamW.from(cfg, params);
    const g = tf.zeros([3]);
    expect(() => opt.step(params, new Map([['nope', g]]), 1)).toThrow(/'nope'/);
    expect(() => opt.step(params, new Map([['model.norm.weight', g]]), 1)).toThrow(/expects shape \[8\]/);
    g.dispose();
    opt.dispose();
  });

  it('keeps tf.memory().numTensors flat across steps', () => {
    const { params, gradSeq } = setup(6);
    const opt = AdamW.from(cfg, params);
    const grads = toTensors(gradSeq(1)[0]!);
    const counts: number[] = [];
    for (let k = 1; k <= 5; k++) {
      opt.step(params, grads, 1);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[4]).toBe(counts[1]);
    expect(counts[0]).toBe(counts[1]); // state is created up front, so not even the first step allocates
    tf.dispose([...grads.values()]);
    opt.dispose();
  });
});
