/**
 * Outlier statistics against independent oracles: the Gaussian floor of the OSP estimator (the paper's
 * numbers, within sampling error), a closed form for a planted outlier channel (derived below), hand-made
 * tensors with known answers, and the float64 path (outlierStats64) on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import {
  aggregateOspKurtosis,
  gaussianFloor,
  heatmapPng,
  outlierStats,
  outlierStats64,
  type OutlierStats,
} from '../../src/metrics/outliers.ts';
import { Rng } from '../../src/utils/rng.ts';
import { testBackends } from '../helpers/backends.ts';

// WebGPU runs on the software adapter in CI; where no adapter exists it is left out (test/helpers/backends.ts).
const backends: ConcreteBackend[] = testBackends;

/** The paper's Gaussian floor of its estimator (osp.md). */
const PAPER_FLOOR: Record<number, number> = { 64: 0.182, 128: 0.14, 256: 0.107 };

afterAll(async () => {
  await stopBackend();
});

/** Per-token max(0, kappa) written from the definition (the test's own loop, for standard errors). */
function tokenKappas(x: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    const row = x.subarray(t * d, (t + 1) * d);
    const mean = row.reduce((a, b) => a + b, 0) / d;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / (d - 1);
    const m4 = row.reduce((a, b) => a + b ** 4, 0) / d;
    out[t] = Math.max(0, m4 / variance ** 2 - 3);
  }
  return out;
}

function meanSd(v: Float64Array): { mean: number; sd: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
  return { mean, sd };
}

/** Float32-rounded data as float64, so that the oracle sees exactly the values the backend sees. */
function asF32(x: Float64Array): Float64Array {
  return Float64Array.from(Float32Array.from(x));
}

/**
 * Planted outlier channel, large-N limit. Tokens x = (a z_0, z_1, ..., z_{d-1}) with z i.i.d. N(0, 1).
 * After RMS normalisation u_i^2 = d x_i^2 / sum_j x_j^2, so sum_i s_i = d exactly and mean(s) = 1; hence
 * Kurt = mean(s^2) = (s_0^2 + (d-1) s_1^2) / d with s_1 = (d - s_0) / (d - 1) by symmetry, i.e.
 *   Kurt = d (p^2 + (1 - p)^2 / (d - 1)),   p = s_0 / d = E[a^2 V / (a^2 V + W)],  V ~ chi2_1, W ~ chi2_{d-1}.
 * With 1/(X+Y) = int_0^inf e^{-t(X+Y)} dt and the chi-square Laplace transforms,
 *   p = (a^2/2) int_0^inf (1 + a^2 u)^{-3/2} (1 + u)^{-(d-1)/2} du
 *     = (a^2/2) int_0^1 (1 + (a^2-1) s)^{-3/2} (1 - s)^{d/2-1} ds     (u = s / (1 - s))
 *     = (a^2/d) 2F1(3/2, 1; d/2 + 1; 1 - a^2)                          (Euler's integral),
 * which is 1/d at a = 1. Replacing p by the ratio of expectations a^2/(a^2 + d - 1) gives the simpler
 * d (a^4 + d - 1)/(a^2 + d - 1)^2, but that ignores that the normalising RMS contains a z_0 itself
 * (Jensen: the ratio's mean is smaller); it is close only for a^2 << d.
 */
function plantedP(a: number, d: number): number {
  const a2 = a * a;
  const f = (s: number) => (1 + (a2 - 1) * s) ** -1.5 * (1 - s) ** (d / 2 - 1);
  const m = 200_000; // Simpson, even; the integrand is smooth with width ~1/a^2 near 0
  let acc = f(0) + f(1);
  for (let i = 1; i < m; i++) acc += (i % 2 ? 4 : 2) * f(i / m);
  return ((a2 / 2) * acc) / (3 * m);
}

function plantedKurtosis(a: number, d: number): number {
  const p = plantedP(a, d);
  return d * (p * p + (1 - p) ** 2 / (d - 1));
}

function naivePlantedKurtosis(a: number, d: number): number {
  return (d * (a ** 4 + d - 1)) / (a * a + d - 1) ** 2;
}

describe('statistics on cpu', () => {
  beforeAll(async () => {
    await startBackend('cpu');
  });

  it('the closed form reduces to 1 without an outlier and to the naive form for small a', () => {
    expect(plantedP(1, 64)).toBeCloseTo(1 / 64, 10);
    expect(plantedKurtosis(1, 64)).toBeCloseTo(1, 10);
    // a^2 << d: the normalising RMS hardly depends on the planted channel.
    expect(Math.abs(plantedKurtosis(1.2, 4096) / naivePlantedKurtosis(1.2, 4096) - 1)).toBeLessThan(1e-4);
  });

  for (const d of [64, 128, 256]) {
    it(`Gaussian floor at d = ${d}: ospKurtosis and gaussianFloor match the paper`, async () => {
      const n = 4000;
      const x = asF32(new Rng(100 + d).normals(n * d));
      const X = tf.tensor2d(Float32Array.from(x), [n, d]);
      const stats = await outlierStats(X);
      X.dispose();
      const { mean, sd } = meanSd(tokenKappas(x, n, d));
      const se = sd / Math.sqrt(n);
      // The test's loop and the op agree to rounding; the paper's value within 4 s.e. plus its rounding
      // and its own Monte Carlo error (our 1.4M-token estimate at d = 64 is 0.1784 +- 0.0003).
      expect(Math.abs(stats.ospKurtosis - mean) / mean).toBeLessThan(1e-4);
      expect(Math.abs(stats.ospKurtosis - PAPER_FLOOR[d]!)).toBeLessThan(4 * se + 0.005);

      const floor = gaussianFloor(d);
      expect(Math.abs(floor - PAPER_FLOOR[d]!)).toBeLessThan((4 * sd) / Math.sqrt(20000) + 0.005);
      expect(gaussianFloor(d)).toBe(floor); // cached: same number, not a new draw
      console.log(
        `floor d=${d}: data ${stats.ospKurtosis.toFixed(4)} +- ${se.toFixed(4)}, ` +
          `gaussianFloor ${floor.toFixed(4)}, paper ${PAPER_FLOOR[d]}`,
      );

      // Channels of i.i.d. data have equal RMS. mean(s) = 1 exactly, so Kurt = 1 + var_i(s_i), and
      // E = 1 + 2(d-1)/((d+2) N) because u_i^2 = d x_i^2 / sum_j x_j^2 ~ d Beta(1/2, (d-1)/2) has variance
      // 2(d-1)/(d+2); the spread of the estimate is about (2/N) sqrt(2/d).
      const expected = 1 + (2 * (d - 1)) / ((d + 2) * n);
      expect(Math.abs(stats.channelKurtosis - expected)).toBeLessThan(5 * (2 / n) * Math.sqrt(2 / d));
    });
  }

  // a^2 = d/4 and a^2 = d: far from the a^2 << d regime of the naive form.
  for (const a of [4, 8]) {
    it(`planted outlier channel (x${a}): channel kurtosis follows the closed form, OSP kurtosis rises`, async () => {
      const n = 20000;
      const d = 64;
      const rng = new Rng(7);
      const x = new Float64Array(n * d);
      for (let t = 0; t < n; t++) {
        for (let i = 0; i < d; i++) x[t * d + i] = rng.normal() * (i === 0 ? a : 1);
      }
      const xf = asF32(x);
      const X = tf.tensor2d(Float32Array.from(xf), [n, d]);
      const stats = await outlierStats(X);
      X.dispose();

      // Sampling error from the data: w_ti = d u_ti^2, s_i = mean_t w_ti. Kurt is driven by s_0 through
      // K(s_0) = (s_0^2 + (d - s_0)^2/(d-1)) / d, plus a finite-N bias (1/d) sum_i var(w_i)/N from the
      // spread of the s_i around their means.
      const w = new Float64Array(n * d);
      for (let t = 0; t < n; t++) {
        let ms = 0;
        for (let i = 0; i < d; i++) ms += xf[t * d + i]! ** 2 / d;
        for (let i = 0; i < d; i++) w[t * d + i] = xf[t * d + i]! ** 2 / ms;
      }
      let bias = 0;
      let s0 = 0;
      let varW0 = 0;
      for (let i = 0; i < d; i++) {
        const col = Float64Array.from({ length: n }, (_, t) => w[t * d + i]!);
        const { mean, sd } = meanSd(col);
        bias += (sd * sd) / n / d;
        if (i === 0) [s0, varW0] = [mean, sd * sd];
      }
      const slope = (2 * s0 - (2 * (d - s0)) / (d - 1)) / d;
      const se = Math.abs(slope) * Math.sqrt(varW0 / n);
      const predicted = plantedKurtosis(a, d);
      const naive = naivePlantedKurtosis(a, d);
      console.log(
        `planted a=${a} d=${d} N=${n}: channelKurtosis ${stats.channelKurtosis.toFixed(4)} ` +
          `(bias ${bias.toFixed(5)}, se ${se.toFixed(4)}), predicted ${predicted.toFixed(4)}, ` +
          `naive ${naive.toFixed(4)}, ` +
          `ospKurtosis ${stats.ospKurtosis.toFixed(3)}`,
      );
      expect(Math.abs(stats.channelKurtosis - bias - predicted)).toBeLessThan(4 * se + 1e-3);
      // The ratio-of-expectations form is off by far more than the sampling error here.
      expect(Math.abs(stats.channelKurtosis - naive)).toBeGreaterThan(20 * se);
      // Per-token kurtosis: 2.7 at a = 4 (15x the floor of 0.18 at d = 64).
      expect(stats.ospKurtosis).toBeGreaterThan(10 * gaussianFloor(d));
      expect(stats.channelRms[0]! / stats.channelRms[1]!).toBeGreaterThan(a * 0.9);
    });
  }

  it('aggregate: embed, layers 0..L-2 out and final_norm (the HF hidden_states tuple)', () => {
    const fake = (k: number) => ({ ospKurtosis: k }) as OutlierStats;
    const stats = new Map<string, OutlierStats>([
      ['embed', fake(1)],
      ['layers.0.attn_in', fake(100)],
      ['layers.0.ffn_in', fake(100)],
      ['layers.0.out', fake(2)],
      ['layers.1.attn_in', fake(100)],
      ['layers.1.out', fake(3)],
      ['layers.2.out', fake(100)], // the last layer: HF reports norm(out) = final_norm instead
      ['final_norm', fake(6)],
    ]);
    expect(aggregateOspKurtosis(stats)).toBeCloseTo((1 + 2 + 3 + 6) / 4, 12);
    expect(aggregateOspKurtosis(stats, { numLayers: 4 })).toBeCloseTo((1 + 2 + 3 + 100 + 6) / 5, 12);
    expect(aggregateOspKurtosis(new Map([['layers.0.ffn_in', fake(1)]]))).toBeNaN();
  });

  it('heatmapPng: a valid PNG of the right size with log-scaled colours', () => {
    const rows = [Float64Array.from([1, 10, 100, 1000, 0]), Float64Array.from([1, 1, 1, 1, 1]), Float64Array.from([1000, 100, 10, 1, NaN])];
    const { png, width, height, range } = heatmapPng(rows, { cellWidth: 4, cellHeight: 8 });
    expect([width, height]).toEqual([20, 24]);
    expect(range).toEqual([1, 1000]);
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const view = new DataView(png.buffer, png.byteOffset);
    expect(String.fromCharCode(...png.subarray(12, 16))).toBe('IHDR');
    expect(view.getUint32(16)).toBe(20);
    expect(view.getUint32(20)).toBe(24);
    expect(png[25]).toBe(2); // truecolour

    // Decode the (single) IDAT and check a few cells.
    const idatLen = view.getUint32(33);
    expect(String.fromCharCode(...png.subarray(37, 41))).toBe('IDAT');
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    expect(raw.length).toBe(height * (1 + width * 3));
    const stride = 1 + width * 3; // filter byte + RGB scanline
    const pixel = (x: number, y: number) => Array.from(raw.subarray(y * stride + 1 + x * 3, y * stride + 4 + x * 3));
    expect(pixel(0, 0)).toEqual([68, 1, 84]); // 1: low end of viridis
    expect(pixel(13, 7)).toEqual([253, 231, 37]); // 1000: high end (cell 3 spans x 12..15)
    expect(pixel(5, 3)).toEqual(pixel(10, 20)); // 10 in row 0 and row 2: same colour
    expect(pixel(17, 0)).toEqual([0, 0, 0]); // 0 cannot be log-scaled
    expect(pixel(19, 23)).toEqual([0, 0, 0]); // NaN
    expect(pixel(6, 3)).not.toEqual(pixel(9, 3)); // log scale: 10 and 100 differ
  });
});

/** Heavy-tailed test data: Gaussian bulk, a 6x channel, Student-t-like tokens and a few massive values. */
function heavyTailed(n: number, d: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const x = rng.normals(n * d);
  for (let t = 0; t < n; t++) {
    // Scale mixture per token (t-like tails across tokens) and a second mixture per element.
    const tokenScale = 1 / Math.sqrt(0.2 + rng.uniform());
    for (let i = 0; i < d; i++) {
      const elementScale = rng.uniform() < 0.03 ? 8 : 1;
      x[t * d + i]! *= tokenScale * elementScale * (i === 1 ? 6 : 1);
    }
  }
  for (let j = 0; j < 3; j++) x[rng.int(n * d)] = (rng.uniform() < 0.5 ? -1 : 1) * (50 + 10 * j);
  return asF32(x);
}

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

for (const backend of backends) {
  describe(`outlierStats on ${backend}`, () => {
    beforeAll(async () => {
      await startBackend(backend);
      expect(tf.getBackend()).toBe(backend);
    });
    afterAll(async () => {
      await stopBackend();
    });

    for (const shape of [
      [3, 37, 29],
      [200, 64],
      [2, 5, 3],
      [1, 130, 33],
    ]) {
      it(`agrees with the float64 oracle on [${shape}]`, async () => {
        const d = shape[shape.length - 1]!;
        const n = shape.slice(0, -1).reduce((a, b) => a * b, 1);
        const x = heavyTailed(n, d, n + 7 * d);
        const k = 12;
        const ref = outlierStats64(x, n, d, { topK: k });
        const X = tf.tensor(Float32Array.from(x), shape);
        const before = tf.memory().numTensors;
        const got = await outlierStats(X, { topK: k });
        expect(tf.memory().numTensors).toBe(before);
        X.dispose();

        expect([got.tokens, got.width]).toEqual([n, d]);
        expect(relErr(got.ospKurtosis, ref.ospKurtosis)).toBeLessThan(1e-4);
        expect(relErr(got.channelKurtosis, ref.channelKurtosis)).toBeLessThan(1e-4);
        expect(relErr(got.maxMedianRatio, ref.maxMedianRatio)).toBeLessThan(1e-4);
        for (let i = 0; i < d; i++) expect(relErr(got.channelRms[i]!, ref.channelRms[i]!)).toBeLessThan(1e-5);
        // |x| of float32 values is exact, so the top k agree bit for bit, in order.
        expect(Array.from(got.topK)).toEqual(Array.from(ref.topK));
        expect(Array.from(got.topKToken)).toEqual(Array.from(ref.topKToken));
        expect(Array.from(got.topKChannel)).toEqual(Array.from(ref.topKChannel));
        expect(got.topK.length).toBe(Math.min(k, n * d));
        // The data really is heavy-tailed (a handful of channels cannot show much kurtosis).
        if (d >= 16) expect(got.ospKurtosis).toBeGreaterThan(0.5);
      });
    }

    it('max/median and top-k on hand-made tensors', async () => {
      // Odd d: |row 0| sorted 0.5 1 2 3 10 -> 10/2; |row 1| 1 2 3 4 5 -> 5/3.
      const odd = tf.tensor2d(
        [
          [1, -2, 3, 0.5, 10],
          [4, -1, 2, 3, -5],
        ],
        [2, 5],
      );
      // Even d: |row 0| 1 2 3 8 -> 8/2.5; |row 1| 0.5 1 1.5 6 -> 6/1.25.
      const even = tf.tensor3d([[[1, -3, 2, 8]], [[0.5, 1.5, -1, -6]]], [2, 1, 4]);
      const before = tf.memory().numTensors;
      const so = await outlierStats(odd, { topK: 3 });
      const se = await outlierStats(even, { topK: 3 });
      expect(tf.memory().numTensors).toBe(before);
      expect(so.maxMedianRatio).toBeCloseTo((5 + 5 / 3) / 2, 6);
      expect(Array.from(so.topK)).toEqual([10, 5, 4]);
      expect(Array.from(so.topKToken)).toEqual([0, 1, 1]);
      expect(Array.from(so.topKChannel)).toEqual([4, 4, 0]);
      expect(se.maxMedianRatio).toBeCloseTo((3.2 + 4.8) / 2, 6);
      expect(Array.from(se.topK)).toEqual([8, 6, 3]);
      expect(Array.from(se.topKToken)).toEqual([0, 1, 0]);
      expect(Array.from(se.topKChannel)).toEqual([3, 3, 1]);
      // The oracle gives the same answers.
      const o64 = outlierStats64(Float64Array.from((await odd.data()) as Float32Array), 2, 5, { topK: 3 });
      expect(o64.maxMedianRatio).toBeCloseTo((5 + 5 / 3) / 2, 12);
      expect(Array.from(o64.topK)).toEqual([10, 5, 4]);
      // topK larger than the tap: every element, still in order.
      const all = await outlierStats(odd, { topK: 50 });
      expect(Array.from(all.topK)).toEqual([10, 5, 4, 3, 3, 2, 2, 1, 1, 0.5]);
      tf.dispose([odd, even]);
    });

    it('rejects bad inputs with messages that say what was expected', async () => {
      const v = tf.zeros([5]);
      const narrow = tf.zeros([4, 1]);
      await expect(outlierStats(v)).rejects.toThrow(/\[B, T, d\] or \[N, d\]/);
      await expect(outlierStats(narrow)).rejects.toThrow(/at least 2 channels/);
      const ok = tf.zeros([2, 3]);
      await expect(outlierStats(ok, { topK: 0 })).rejects.toThrow(/topK/);
      tf.dispose([v, narrow, ok]);
    });
  });
}
