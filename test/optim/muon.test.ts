import * as tf from '@tensorflow/tfjs';
import { startBackend } from '../../src/backend/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { Muon } from '../../src/optim/index.ts';
import { mat, newtonSchulz64, QUINTIC, randn, relErr, rng } from './float64.ts';
import { expectStateRoundTrip } from './roundtrip.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const worst: number[] = [];
afterAll(() => console.log(`muon: worst update relative error vs float64 oracle = ${Math.max(...worst).toExponential(2)}`));

/** One Muon step in float64 (muon.md), on the parameter p (rows x cols) with momentum buffer mBuf. */
function refStep(
  p: Float64Array,
  mBuf: Float64Array,
  g: Float64Array,
  [rows, cols]: [number, number],
  o: { lr: number; mu: number; nesterov: boolean; scale: 'moonlight' | 'keller'; wd: number },
): void {
  for (let i = 0; i < g.length; i++) mBuf[i] = o.mu * mBuf[i]! + g[i]!;
  const u = mat(
    rows,
    cols,
    g.map((gi, i) => (o.nesterov ? gi + o.mu * mBuf[i]! : mBuf[i]!)),
  );
  const orth = newtonSchulz64(u, QUINTIC).d;
  for (let i = 0; i < p.length; i++) {
    if (o.scale === 'moonlight') p[i] -= o.lr * (0.2 * Math.sqrt(Math.max(rows, cols)) * orth[i]! + o.wd * p[i]!);
    else p[i] = p[i]! * (1 - o.lr * o.wd) - o.lr * Math.sqrt(Math.max(1, rows / cols)) * orth[i]!;
  }
}

const shapes: Record<string, [number, number]> = {
  'model.layers.0.mlp.down_proj.weight': [48, 32], // tall: keller scale sqrt(1.5)
  'model.layers.0.mlp.up_proj.weight': [32, 48], // wide: keller scale 1
};

function setup(seed: number) {
  const next = rng(seed);
  const init = new Map(Object.entries(shapes).map(([n, [r, c]]) => [n, randn(r * c, next, 0.2)]));
  const params = new Map([...init].map(([n, d]) => [n, tf.variable(tf.tensor(Float32Array.from(d), shapes[n]))]));
  const momenta = new Map([...init].map(([n, d]) => [n, new Float64Array(d.length)]));
  const gradSeq = (k: number) =>
    Array.from({ length: k }, () => new Map(Object.entries(shapes).map(([n, [r, c]]) => [n, randn(r * c, next, 0.1)])));
  return { params, momenta, gradSeq };
}

const toTensors = (g: Map<string, Float64Array>) => new Map([...g].map(([n, d]) => [n, tf.tensor(Float32Array.from(d), shapes[n])]));

describe('Muon', () => {
  it('has the documented defaults', () => {
    expect(Muon.from(undefined, new Map()).config).toEqual({
      lr: 1e-3,
      momentum: 0.95,
      nesterov: true,
      nsSteps: 5,
      nsCoefficients: 'quintic',
      scale: 'moonlight',
      weightDecay: 0.01,
    });
    expect(() => Muon.from({ scale: 'adam' }, new Map())).toThrow(
      /optimizer\.muon\.scale: unknown value "adam"; valid choices: 'moonlight', 'keller'/,
    );
  });

  for (const scale of ['moonlight', 'keller'] as const)
    for (const nesterov of [true, false])
      it(`three steps match a float64 oracle (scale ${scale}, nesterov ${nesterov})`, () => {
        const { params, momenta, gradSeq } = setup(scale === 'keller' ? 10 : 20);
        // lrs large enough that the update is well above the float32 rounding of the parameter itself.
        const o = { lr: scale === 'keller' ? 0.02 : 1e-2, mu: 0.95, nesterov, scale, wd: 0.05 };
        const opt = Muon.from({ lr: o.lr, momentum: o.mu, nesterov, scale, weightDecay: o.wd }, params);
        const factors = [1, 0.5, 0.9];
        gradSeq(3).forEach((g, k) => {
          const before = new Map([...params].map(([n, p]) => [n, Float64Array.from(p.dataSync())]));
          const grads = toTensors(g);
          opt.step(params, grads, factors[k]!);
          tf.dispose([...grads.values()]);
          for (const [name, shape] of Object.entries(shapes)) {
            const ref = Float64Array.from(before.get(name)!);
            refStep(ref, momenta.get(name)!, g.get(name)!, shape, { ...o, lr: o.lr * factors[k]! });
            const delta = (x: ArrayLike<number>) => Array.from(x, (v, i) => v - before.get(name)![i]!);
            const err = relErr(delta(params.get(name)!.dataSync()), delta(ref));
            worst.push(err);
            expect(err).toBeLessThan(1e-4);
          }
        });
        const state = opt.stateDict();
        for (const [name, m] of momenta) expect(relErr(state.get(`muon/${name}/momentum`)!.dataSync(), m)).toBeLessThan(1e-6);
        tf.dispose([...state.values()]);
        opt.dispose();
      });

  it('rejects a non-2-D parameter, naming it', () => {
    const v = tf.variable(tf.ones([8]));
    expect(() => Muon.from({}, new Map([['model.norm.weight', v]]))).toThrow(ShapeError);
    expect(() => Muon.from({}, new Map([['model.norm.weight', v]]))).toThrow(/'model\.norm\.weight' has shape \[8\]/);
    v.dispose();
  });

  it('does not touch a parameter without a gradient, nor its momentum', () => {
    const { params, gradSeq } = setup(30);
    const opt = Muon.from({}, params);
    const frozen = 'model.layers.0.mlp.down_proj.weight';
    const seq = gradSeq(3);
    const step = (g: Map<string, Float64Array>) => {
      const grads = toTensors(g);
      opt.step(params, grads, 1);
      tf.dispose([...grads.values()]);
    };
    step(seq[0]!);
    const held = Array.from(params.get(frozen)!.dataSync());
    const s0 = opt.stateDict();
    const heldM = Array.from(s0.get(`muon/${frozen}/momentum`)!.dataSync());
    const otherBefore = Array.from(params.get('model.layers.0.mlp.up_proj.weight')!.dataSync());
    for (const g of seq.slice(1)) step(new Map([...g].filter(([n]) => n !== frozen)));
    expect(Array.from(params.get(frozen)!.dataSync())).toEqual(held);
    const s1 = opt.stateDict();
    expect(Array.from(s1.get(`muon/${frozen}/momentum`)!.dataSync())).toEqual(heldM);
    expect(Array.from(params.get('model.layers.0.mlp.up_proj.weight')!.dataSync())).not.toEqual(otherBefore);
    tf.dispose([...s0.values(), ...s1.values()]);
    opt.dispose();
  });

  it('stateDict/loadStateDict round trip: the next step is bit-identical', () => {
    const a = setup(40);
    const b = setup(40);
    const config = { scale: 'keller', lr: 0.02 };
    const grads = a.gradSeq(3).map(toTensors);
    const optB = expectStateRoundTrip(a.params, b.params, (p) => Muon.from(config, p), grads, 1);
    const wrong = new Map([[`muon/model.layers.0.mlp.up_proj.weight/momentum`, tf.zeros([48, 32])]]);
    expect(() => optB.loadStateDict(wrong)).toThrow(/missing: muon\/model\.layers\.0\.mlp\.down_proj\.weight\/momentum/);
    tf.dispose([...grads.flatMap((g) => [...g.values()]), ...wrong.values()]);
    optB.dispose();
  });

  it('keeps tf.memory().numTensors flat across steps', () => {
    const { params, gradSeq } = setup(50);
    const opt = Muon.from({}, params);
    const grads = toTensors(gradSeq(1)[0]!);
    const counts: number[] = [];
    for (let k = 1; k <= 5; k++) {
      opt.step(params, grads, 1);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[4]).toBe(counts[1]);
    tf.dispose([...grads.values()]);
    opt.dispose();
  });
});
