/**
 * Lion: steps against a float64 re-implementation of the paper's update (Chen et al. 2023, Algorithm 2
 * with decoupled weight decay), a bit-exact state round trip, and a run that routes every parameter to
 * Lion from the config alone (its group's metrics logged, the loss falls).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { Lion } from '../../src/optim/lion.ts';
import { train } from '../../src/train/run.ts';
import { Rng } from '../../src/utils/rng.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const quiet = () => {};
const shapes: [string, number[]][] = [
  ['model.layers.0.mlp.up_proj.weight', [6, 4]],
  ['model.norm.weight', [4]],
  ['lm_head.weight', [5, 4]],
];

function makeParams(rng: Rng): Map<string, tf.Variable> {
  return new Map(
    shapes.map(([n, s], i) => [
      n,
      tf.variable(
        tf.tensor(
          Float32Array.from(
            rng.normals(
              s.reduce((a, b) => a * b, 1),
              1,
            ),
          ),
          s,
        ),
        true,
        `lion_${n}_${i}_${Math.random()}`,
      ),
    ]),
  );
}

describe('Lion', () => {
  it('matches a float64 re-implementation over steps with changing lr factors; norm weights exempt from decay', () => {
    const rng = new Rng(1);
    const params = makeParams(rng);
    const config = { lr: 0.01, betas: [0.8, 0.95] as [number, number], weightDecay: 0.5 };
    const opt = Lion.from(config, params);
    const ref = new Map([...params].map(([n, p]) => [n, { p: Float64Array.from(p.dataSync()), m: new Float64Array(p.size) }]));
    for (const factor of [1, 0.5, 0.25, 1]) {
      const grads = new Map([...params].map(([n, p]) => [n, tf.tensor(Float32Array.from(rng.normals(p.size, 1)), p.shape)]));
      opt.step(params, grads, factor);
      const lr = config.lr * factor;
      for (const [n, r] of ref) {
        const g = grads.get(n)!.dataSync();
        const decay = n.includes('norm') ? 1 : 1 - lr * config.weightDecay;
        for (let i = 0; i < r.p.length; i++) {
          const c = config.betas[0] * r.m[i]! + (1 - config.betas[0]) * g[i]!;
          r.p[i] = r.p[i]! * decay - lr * Math.sign(c);
          r.m[i] = config.betas[1] * r.m[i]! + (1 - config.betas[1]) * g[i]!;
        }
      }
      tf.dispose([...grads.values()]);
    }
    for (const [n, r] of ref) {
      const got = params.get(n)!.dataSync();
      for (let i = 0; i < got.length; i++) expect([n, i, Math.abs(got[i]! - r.p[i]!) < 1e-6]).toEqual([n, i, true]);
    }
    const state = opt.stateDict();
    for (const [n, r] of ref) {
      const m = state.get(`lion/${n}/exp_avg`)!.dataSync();
      for (let i = 0; i < m.length; i++) expect(Math.abs(m[i]! - r.m[i]!)).toBeLessThan(1e-6);
    }
    tf.dispose([...state.values(), ...params.values()]);
    opt.dispose();
  });

  it('stateDict/loadStateDict round trip is bit-identical; memory stays flat; bad state is refused', () => {
    const rng = new Rng(2);
    const a = makeParams(rng);
    const b = new Map([...a].map(([n, p]) => [n, tf.variable(p.clone(), true, `lion_b_${n}_${Math.random()}`)]));
    const optA = Lion.from({ lr: 0.003, weightDecay: 0.1 }, a);
    const grads = (seed: number) => new Map([...a].map(([n, p]) => [n, tf.randomNormal(p.shape, 0, 1, 'float32', seed)]));
    const counts: number[] = [];
    for (let s = 0; s < 4; s++) {
      const g = grads(s);
      optA.step(a, g, 1);
      tf.dispose([...g.values()]);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[3]).toBe(counts[1]);
    for (const [n, p] of b) p.assign(a.get(n)!);
    const optB = Lion.from({ lr: 0.003, weightDecay: 0.1 }, b);
    const state = optA.stateDict();
    optB.loadStateDict(state);
    const g = grads(9);
    optA.step(a, g, 1);
    optB.step(b, g, 1);
    for (const [n, p] of a) expect([n, Array.from(b.get(n)!.dataSync())]).toEqual([n, Array.from(p.dataSync())]);
    state.delete('lion/lm_head.weight/exp_avg');
    expect(() => optB.loadStateDict(state)).toThrow(/missing: lion\/lm_head.weight\/exp_avg/);
    expect(() => Lion.from({ betas: [0.9, 1] }, a)).toThrow(ConfigError);
    tf.dispose([...state.values(), ...g.values(), ...a.values(), ...b.values()]);
    optA.dispose();
    optB.dispose();
  });

  it('trains a model from the config alone: routing to lion, train/lr/lion and update/lion_rms logged, loss falls', async () => {
    const config = tinyRun(tempDir(), {
      steps: 12,
      monitor: { every: 0 },
      eval: { every: 0, batches: 2 },
      optimizer: { lion: { lr: 0.002 }, routing: [{ match: '*', optimizer: 'lion' }] },
    });
    const { runDir } = await train({ config, log: quiet });
    const rows = readMetrics(runDir).filter((r) => r['train/loss'] !== undefined);
    expect(
      rows.every((r) => r['train/lr/lion'] !== undefined && r['train/lr/adamw'] === undefined && r['train/lr/muon'] === undefined),
    ).toBe(true);
    expect(rows.some((r) => r['update/lion_rms'] !== undefined)).toBe(true);
    const first = rows[0]!['train/loss']!;
    const last = rows.at(-1)!['train/loss']!;
    expect(last).toBeLessThan(first - 0.3);
  });
});
