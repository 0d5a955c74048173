/**
 * The Gaussian floor of the OSP kurtosis estimator: the table's values against an independent Monte
 * Carlo written here (its own kurtosis formula, another seed), their standard errors below 0.2% of
 * the value, and the Monte Carlo fallback for widths outside the table.
 */
import { describe, expect, it } from 'vitest';
import { floorMonteCarlo, GAUSSIAN_FLOOR_TABLE, gaussianFloorEstimate } from '../../src/metrics/gaussian_floor.ts';
import { gaussianFloor } from '../../src/metrics/outliers.ts';
import { Rng } from '../../src/utils/rng.ts';

/** Mean and standard error of max(0, kurtosis - 3) over `tokens` rows of d Gaussians (one-pass moments). */
function independentFloor(d: number, tokens: number, seed: number): { mean: number; se: number } {
  const rng = new Rng(seed);
  let sum = 0;
  let sumSq = 0;
  for (let t = 0; t < tokens; t++) {
    let s1 = 0;
    let s2 = 0;
    let s4 = 0;
    for (let i = 0; i < d; i++) {
      const x = rng.normal();
      s1 += x;
      s2 += x * x;
      s4 += x * x * x * x;
    }
    const variance = (s2 - (s1 * s1) / d) / (d - 1); // unbiased, about the token's mean
    const k = Math.max(0, s4 / d / (variance * variance) - 3); // raw (uncentred) 4th moment, as the paper
    sum += k;
    sumSq += k * k;
  }
  const mean = sum / tokens;
  return { mean, se: Math.sqrt((sumSq / tokens - mean * mean) / (tokens - 1)) };
}

describe('Gaussian floor', () => {
  it('the table covers the common widths with standard errors below 0.2% of the value', () => {
    for (const d of [16, 32, 64, 128, 256, 512, 1024, 2048]) {
      const t = GAUSSIAN_FLOOR_TABLE[d];
      expect(t, `width ${d}`).toBeDefined();
      expect(t!.stderr / t!.value, `width ${d}`).toBeLessThan(0.002);
      expect(gaussianFloorEstimate(d)).toEqual({ ...t, source: 'table' });
      expect(gaussianFloor(d)).toBe(t!.value);
    }
    // Decreasing with width, as 1/d-like noise in the 4th moment shrinks.
    const ds = Object.keys(GAUSSIAN_FLOOR_TABLE)
      .map(Number)
      .sort((a, b) => a - b);
    for (let i = 1; i < ds.length; i++) expect(GAUSSIAN_FLOOR_TABLE[ds[i]!]!.value).toBeLessThan(GAUSSIAN_FLOOR_TABLE[ds[i - 1]!]!.value);
  });

  it('table values agree with an independent Monte Carlo within 4 combined standard errors', () => {
    for (const [d, tokens] of [
      [16, 200_000],
      [64, 100_000],
      [256, 30_000],
    ] as const) {
      const t = GAUSSIAN_FLOOR_TABLE[d]!;
      const mc = independentFloor(d, tokens, 7 + d);
      const z = Math.abs(mc.mean - t.value) / Math.hypot(mc.se, t.stderr);
      expect(z, `width ${d}: table ${t.value} +- ${t.stderr}, independent ${mc.mean} +- ${mc.se}`).toBeLessThan(4);
    }
  });

  it('outside the table: a Monte Carlo estimate that stops at its target standard error, deterministic per seed', () => {
    const a = floorMonteCarlo(40, { seed: 1, relStderr: 0.02, maxTokens: 1_000_000 });
    expect(a.stderr / a.value).toBeLessThanOrEqual(0.02);
    expect(a.tokens).toBeLessThan(1_000_000);
    expect(floorMonteCarlo(40, { seed: 1, relStderr: 0.02, maxTokens: 1_000_000 })).toEqual(a);
    const capped = floorMonteCarlo(40, { seed: 2, relStderr: 1e-9, maxTokens: 100_000 });
    expect(capped.tokens).toBe(100_000);
    expect(() => gaussianFloorEstimate(1)).toThrow(/d: must be an integer >= 2/);
  });
});
