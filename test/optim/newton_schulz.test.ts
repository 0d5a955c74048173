// Tests src/ops/newton_schulz.ts; it lives under test/optim because Muon is its only user.
import * as tf from '@tensorflow/tfjs';
import { startBackend } from '../../src/backend/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KERNELS } from '../../src/ops/dispatch.ts';
import { newtonSchulz, newtonSchulzFlops } from '../../src/ops/newton_schulz.ts';
import {
  frobenius,
  mat,
  matmul,
  newtonSchulz64,
  orthogonal,
  POLAR,
  QUINTIC,
  randn,
  relErr,
  rng,
  singularValues,
  transpose,
  type Mat,
} from './float64.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

type Kind = 'quintic' | 'polar_express' | 'convergent';

/** Runs the op under test on a float64 matrix and returns the result as float64. */
function runNs(g: Mat, kind: Kind, steps: number): Mat {
  const x = tf.tensor2d(Float32Array.from(g.d), [g.m, g.n]);
  const o = newtonSchulz(x, { steps, coefficients: kind });
  expect(o.shape).toEqual([g.m, g.n]);
  const out = mat(g.m, g.n, Float64Array.from(o.dataSync()));
  x.dispose();
  o.dispose();
  return out;
}

/** G = U diag(s) V^T with s log-spaced over [0.03, 1]; returns s normalised to ||s|| = ||G||_F = 1. */
function controlled(m: number, n: number, seed: number): { g: Mat; s: number[] } {
  const next = rng(seed);
  const k = Math.min(m, n);
  const raw = Array.from({ length: k }, (_, i) => Math.exp((Math.log(0.03) * i) / (k - 1)));
  const norm = Math.sqrt(raw.reduce((acc, v) => acc + v * v, 0));
  const s = raw.map((v) => v / norm);
  const u = orthogonal(m, next);
  const v = orthogonal(n, next);
  const us = mat(m, n);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us.d[i * n + j] = u.d[i * m + j]! * s[j]!;
  const g = matmul(us, transpose(v));
  g.d.forEach((x, i) => (g.d[i] = Math.fround(x)));
  return { g, s };
}

const range = (sv: number[]) => [Math.min(...sv), Math.max(...sv)] as const;
const measured: string[] = [];

afterAll(() => {
  // Measured ranges, for the record (vitest prints console output of passing tests).
  console.log(measured.join('\n'));
});

describe('float64 oracle sanity', () => {
  it('singular values of U diag(s) V^T are s', () => {
    const { g, s } = controlled(24, 40, 7);
    const expected = [...s].sort((a, b) => a - b);
    singularValues(g).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));
  });
});

describe('newtonSchulz', () => {
  for (const [m, n] of [
    [128, 64],
    [64, 128],
  ] as const) {
    it(`quintic, 5 steps, ${m}x${n} Gaussian: singular values in [0.68, 1.14]`, () => {
      const g = mat(m, n, randn(m * n, rng(m * 1000 + n)));
      const ratios = singularValues(g).map((x) => x / frobenius(g));
      expect(Math.min(...ratios)).toBeGreaterThanOrEqual(0.01); // the precondition of the claim
      const o = runNs(g, 'quintic', 5);
      const [lo, hi] = range(singularValues(o));
      measured.push(`quintic ${m}x${n} gaussian: sv in [${lo.toFixed(4)}, ${hi.toFixed(4)}]`);
      expect(lo).toBeGreaterThanOrEqual(0.68);
      expect(hi).toBeLessThanOrEqual(1.14);
      // Same iteration as the float64 oracle, up to float32 rounding.
      expect(relErr(o.d, newtonSchulz64(g, QUINTIC).d)).toBeLessThan(1e-4);
    });
  }

  it('quintic keeps the singular vectors: U^T O V is diagonal with entries in [0.68, 1.14]', () => {
    const m = 48;
    const n = 80;
    const next = rng(11);
    const u = orthogonal(m, next);
    const v = orthogonal(n, next);
    const s = Array.from({ length: m }, (_, i) => 0.02 + (i / (m - 1)) * 0.3);
    const us = mat(m, n);
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) us.d[i * n + j] = u.d[i * m + j]! * s[j]!;
    const g = matmul(us, transpose(v));
    g.d.forEach((x, i) => (g.d[i] = Math.fround(x)));
    expect(Math.min(...s) / frobenius(g)).toBeGreaterThanOrEqual(0.01);
    const o = runNs(g, 'quintic', 5);
    const core = matmul(matmul(transpose(u), o), v); // m x n, should be [diag | 0]
    let offMax = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        const x = core.d[i * n + j]!;
        if (i === j) {
          expect(x).toBeGreaterThanOrEqual(0.68);
          expect(x).toBeLessThanOrEqual(1.14);
        } else offMax = Math.max(offMax, Math.abs(x));
      }
    measured.push(`quintic 48x80 controlled: max |off-diagonal of U^T O V| = ${offMax.toExponential(2)}`);
    expect(offMax).toBeLessThan(1e-4);
  });

  it('quintic on a controlled log-spaced spectrum (tall)', () => {
    const { g, s } = controlled(96, 40, 3);
    const minRatio = Math.min(...s) / frobenius(g);
    expect(minRatio).toBeGreaterThanOrEqual(0.01);
    const [lo, hi] = range(singularValues(runNs(g, 'quintic', 5)));
    measured.push(`quintic 96x40 controlled (min ratio ${minRatio.toFixed(4)}): sv in [${lo.toFixed(4)}, ${hi.toFixed(4)}]`);
    expect(lo).toBeGreaterThanOrEqual(0.68);
    expect(hi).toBeLessThanOrEqual(1.14);
  });

  it('convergent (2, -1.5, 0.5), 12 steps: singular values 1 +- 1e-3', () => {
    for (const [m, n, seed] of [
      [128, 64, 1],
      [64, 128, 2],
    ] as const) {
      const g = mat(m, n, randn(m * n, rng(seed)));
      const [lo, hi] = range(singularValues(runNs(g, 'convergent', 12)));
      measured.push(`convergent 12 steps ${m}x${n}: max |sv - 1| = ${Math.max(1 - lo, hi - 1).toExponential(2)}`);
      expect(lo).toBeGreaterThan(1 - 1e-3);
      expect(hi).toBeLessThan(1 + 1e-3);
    }
  });

  it('polar_express, 5 steps: singular values in about [0.86, 1.14]', () => {
    const g = mat(128, 64, randn(128 * 64, rng(5)));
    const o = runNs(g, 'polar_express', 5);
    const [lo, hi] = range(singularValues(o));
    measured.push(`polar_express 128x64 gaussian: sv in [${lo.toFixed(4)}, ${hi.toFixed(4)}]`);
    expect(lo).toBeGreaterThanOrEqual(0.8);
    expect(hi).toBeLessThanOrEqual(1.2);
    expect(relErr(o.d, newtonSchulz64(g, POLAR, 1.02, 1e-6).d)).toBeLessThan(1e-4);
  });

  it('polar_express beyond 5 steps reuses the last tuple', () => {
    const g = mat(32, 48, randn(32 * 48, rng(9)));
    const tuples = [...POLAR, POLAR[4]!, POLAR[4]!];
    expect(relErr(runNs(g, 'polar_express', 7).d, newtonSchulz64(g, tuples, 1.02, 1e-6).d)).toBeLessThan(1e-4);
  });

  it('rejects a non-2-D input, a bad step count and an unknown variant', () => {
    const x = tf.zeros([2, 3, 4]) as unknown as tf.Tensor2D;
    expect(() => newtonSchulz(x, { steps: 5, coefficients: 'quintic' })).toThrow(/2-D.*\[2, 3, 4\]/);
    const y = tf.ones([3, 4]) as tf.Tensor2D;
    expect(() => newtonSchulz(y, { steps: 0, coefficients: 'quintic' })).toThrow(/positive integer/);
    expect(() => newtonSchulz(y, { steps: 5, coefficients: 'cubic' as Kind })).toThrow(/valid choices.*'quintic'/);
    tf.dispose([x, y]);
  });

  it('dispatches to a registered OspNewtonSchulz kernel with per-step coefficients', () => {
    let seen: Record<string, unknown> | undefined;
    tf.registerKernel({
      kernelName: KERNELS.newtonSchulz,
      backendName: 'cpu',
      kernelFunc: ({ inputs, attrs, backend }) => {
        seen = attrs as Record<string, unknown>;
        const x = inputs.x!;
        const cpu = backend as unknown as { makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo };
        return cpu.makeTensorInfo(x.shape, 'float32', new Float32Array(x.shape[0]! * x.shape[1]!).fill(7));
      },
    });
    try {
      const g = tf.ones([3, 5]) as tf.Tensor2D;
      const o = newtonSchulz(g, { steps: 6, coefficients: 'polar_express' });
      expect(Array.from(o.dataSync())).toEqual(new Array(15).fill(7));
      expect(seen?.steps).toBe(6);
      expect(seen?.a).toEqual([...POLAR.map((t) => t[0]), POLAR[4]![0]]);
      expect(seen?.c).toEqual([...POLAR.map((t) => t[2]), POLAR[4]![2]]);
      expect(seen?.normScale).toBe(1.02);
      expect(seen?.normEps).toBe(1e-6);
      tf.dispose([g, o]);
    } finally {
      tf.unregisterKernel(KERNELS.newtonSchulz, 'cpu');
    }
  });

  it('reference implementation leaves no tensors behind', () => {
    const g = tf.randomNormal([40, 24]) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    newtonSchulz(g, { steps: 5, coefficients: 'quintic' }).dispose();
    expect(tf.memory().numTensors).toBe(before);
    g.dispose();
  });
});

describe('newtonSchulzFlops', () => {
  it('is steps * (4 m^2 n + 2 m^3) with m the smaller side', () => {
    expect(newtonSchulzFlops(64, 128, 5)).toBe(5 * (4 * 64 * 64 * 128 + 2 * 64 ** 3));
    expect(newtonSchulzFlops(128, 64, 5)).toBe(5 * (4 * 64 * 64 * 128 + 2 * 64 ** 3));
    expect(newtonSchulzFlops(2048, 2048, 1)).toBe(6 * 2048 ** 3);
  });
});
