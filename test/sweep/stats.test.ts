/**
 * The statistics behind multi-seed reports: Student's t quantiles against printed tables, the normal
 * limit, the t CDF against an independent quadrature, mean / std / 95% interval against closed forms,
 * and Welch's interval against a hand computation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  describeSample,
  halfWidth,
  normalCdf,
  normalQuantile,
  regularizedBeta,
  tCdf,
  tQuantile,
  welchInterval,
} from '../../src/sweep/stats.ts';

/**
 * P(0 < T < t) / P(0 < T) for Student's t with v dof, by Simpson's rule after x = sqrt(v) tan(theta):
 * the density (1 + x^2/v)^(-(v+1)/2) dx becomes cos(theta)^(v-1) dtheta on [0, pi/2), a smooth
 * integrand, so no Gamma function and no incomplete beta are involved.
 */
function tCdfByQuadrature(t: number, v: number): number {
  const simpson = (b: number) => {
    const n = 20000;
    const h = b / n;
    let s = 0;
    for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 1 : i % 2 === 1 ? 4 : 2) * Math.cos(i * h) ** (v - 1);
    return (s * h) / 3;
  };
  const half = simpson(Math.atan(Math.abs(t) / Math.sqrt(v))) / simpson(Math.PI / 2);
  return 0.5 + Math.sign(t) * 0.5 * half;
}

/** The 0.975 quantile by bisection on the quadrature CDF: an oracle independent of stats.ts. */
function t975ByQuadrature(v: number): number {
  let lo = 0;
  let hi = 100;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (tCdfByQuadrature(mid, v) < 0.975) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

describe('tQuantile', () => {
  it('matches the printed two-sided 95% table values', () => {
    // Student's t table, 0.975 column (e.g. Abramowitz & Stegun 26.10; NIST/SEMATECH e-Handbook 1.3.6.7.2).
    const table: [number, number][] = [
      [1, 12.706],
      [2, 4.303],
      [3, 3.182],
      [4, 2.776],
      [5, 2.571],
      [10, 2.228],
      [20, 2.086],
      [30, 2.042],
      [60, 2.0],
      [120, 1.98],
    ];
    for (const [dof, t] of table) expect(tQuantile(0.975, dof), `dof ${dof}`).toBeCloseTo(t, 3);
    // More digits where they are widely published.
    expect(tQuantile(0.975, 1)).toBeCloseTo(12.7062047361747, 10);
    expect(tQuantile(0.975, 2)).toBeCloseTo(4.30265272974946, 10);
    expect(tQuantile(0.995, 1)).toBeCloseTo(63.6567411628716, 8);
    expect(tQuantile(0.95, 10)).toBeCloseTo(1.812, 3);
  });

  it('tends to the normal quantile; symmetric; 0.5 -> 0', () => {
    expect(tQuantile(0.975, Infinity)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232306167813, 10);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 14);
    // Decreasing in the dof towards the limit, continuous where the method changes (1e4 dof).
    expect(tQuantile(0.975, 1000)).toBeCloseTo(1.962339, 6);
    expect(Math.abs(tQuantile(0.975, 9999.9) - tQuantile(0.975, 10000.1))).toBeLessThan(1e-8);
    expect(tQuantile(0.975, 1e6)).toBeGreaterThan(tQuantile(0.975, Infinity));
    expect(tQuantile(0.025, 4)).toBeCloseTo(-tQuantile(0.975, 4), 12);
    expect(tQuantile(0.5, 3)).toBe(0);
    expect(() => tQuantile(0.975, 0)).toThrow(/degrees of freedom/);
    expect(() => tQuantile(1.5, 3)).toThrow(/probability/);
  });

  it('fractional dof (Welch) agree with scipy and with a quadrature of the density', () => {
    // scipy.stats.t.ppf(0.975, v)
    const scipy: [number, number][] = [
      [1.5, 6.016663104427929],
      [50 / 17, 3.218758614532882],
      [3.7, 2.8675207071911895],
      [7.25, 2.348194849105371],
    ];
    for (const [v, t] of scipy) expect(tQuantile(0.975, v), `dof ${v}`).toBeCloseTo(t, 10);
    // The quadrature is accurate where cos^(v-1) is smooth enough (v >= 2).
    for (const v of [50 / 17, 3.7, 7.25]) expect(tQuantile(0.975, v), `dof ${v}`).toBeCloseTo(t975ByQuadrature(v), 5);
  });

  it('tCdf inverts tQuantile and agrees with the quadrature', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.51, max: 0.999, noNaN: true }), fc.double({ min: 1, max: 200, noNaN: true }), (p, v) => {
        expect(tCdf(tQuantile(p, v), v)).toBeCloseTo(p, 10);
      }),
      { numRuns: 50 },
    );
    for (const [t, v] of [
      [1, 1],
      [2.5, 3],
      [-0.7, 5.5],
    ] as const)
      expect(tCdf(t, v)).toBeCloseTo(tCdfByQuadrature(t, v), 8);
    // Cauchy (1 dof): the CDF is 1/2 + atan(t)/pi.
    expect(tCdf(3, 1)).toBeCloseTo(0.5 + Math.atan(3) / Math.PI, 13);
    expect(regularizedBeta(0.3, 1, 1)).toBeCloseTo(0.3, 14);
  });
});

describe('describeSample', () => {
  it('n, mean, sample std and the 95% t-interval in closed form', () => {
    const s = describeSample([1, 2, 3]);
    expect(s.n).toBe(3);
    expect(s.mean).toBe(2);
    expect(s.std).toBeCloseTo(1, 14);
    // mean -+ t(0.975; 2) * 1 / sqrt(3)
    const hw = (4.302652729749464 * 1) / Math.sqrt(3);
    expect(s.ci95![0]).toBeCloseTo(2 - hw, 10);
    expect(s.ci95![1]).toBeCloseTo(2 + hw, 10);
    expect(halfWidth(s)).toBeCloseTo(hw, 10);

    const xs = [0.1, 0.14, 0.09, 0.13, 0.12];
    const m = xs.reduce((a, b) => a + b) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
    const t = describeSample(xs);
    expect(t.mean).toBeCloseTo(m, 14);
    expect(t.std).toBeCloseTo(sd, 14);
    expect(halfWidth(t)).toBeCloseTo((2.776445105197793 * sd) / Math.sqrt(5), 12);
  });

  it('one value: the mean only; none: n = 0; a NaN seed makes the mean NaN', () => {
    expect(describeSample([4.5])).toEqual({ n: 1, mean: 4.5, std: null, ci95: null });
    expect(describeSample([])).toEqual({ n: 0, mean: null, std: null, ci95: null });
    expect(describeSample([1, NaN, 3]).mean).toBeNaN();
    expect(describeSample([2, 2, 2])).toEqual({ n: 3, mean: 2, std: 0, ci95: [2, 2] });
  });
});

describe('welchInterval', () => {
  it('difference, standard error, Welch-Satterthwaite dof and the interval by hand', () => {
    // a: mean 2, variance 1; b: mean 4, variance 4; n = 3 each.
    const d = welchInterval([1, 2, 3], [2, 4, 6]);
    const va = 1 / 3;
    const vb = 4 / 3;
    const dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2); // = 50/17
    expect(d.diff).toBe(2);
    expect(d.se).toBeCloseTo(Math.sqrt(5 / 3), 14);
    expect(d.dof).toBeCloseTo(50 / 17, 12);
    expect(dof).toBeCloseTo(50 / 17, 12);
    const half = 3.218758614532882 * Math.sqrt(5 / 3); // t(0.975; 50/17), scipy.stats.t.ppf
    expect(d.ci95![0]).toBeCloseTo(2 - half, 9);
    expect(d.ci95![1]).toBeCloseTo(2 + half, 9);
  });

  it('equal variances and sizes: 2(n - 1) dof, the pooled interval', () => {
    const d = welchInterval([1, 2, 3, 4], [3, 4, 5, 6]);
    expect(d.diff).toBe(2);
    expect(d.dof).toBeCloseTo(6, 12);
    const se = Math.sqrt(5 / 3 / 4 + 5 / 3 / 4);
    expect(d.ci95![1] - 2).toBeCloseTo(2.446911851144969 * se, 8); // t(0.975; 6) = 2.447
  });

  it('a single seed on a side: the difference without an interval', () => {
    expect(welchInterval([1], [2, 3])).toEqual({ diff: 1.5, se: null, dof: null, ci95: null });
    expect(welchInterval([], [2, 3]).diff).toBeNull();
    expect(welchInterval([1, 1], [2, 2])).toEqual({ diff: 1, se: 0, dof: 2, ci95: [1, 1] });
  });
});
