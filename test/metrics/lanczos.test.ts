/**
 * Lanczos, power iteration, Hutchinson, SLQ and the outlier rule against the closed-form oracle of
 * reference/hessian.md: A = Q diag(lambda) Q^T, n = 1000, lambda = {12, 10, 8, 6, 4} plus 995 draws
 * from U(0, 1), Q a random orthogonal matrix. Everything the tests compare with comes from lambda
 * itself; the tridiagonal solver is checked against a dense Jacobi eigen-solver written here and
 * against the closed-form spectrum of the second-difference matrix.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import {
  analyzeSpectrum,
  hutchinsonTrace,
  lanczos,
  outlierRule,
  powerIteration,
  slqDensity,
  topEigenpairs,
  tridiagonalEigen,
  type LinearOperator,
} from '../../src/metrics/lanczos.ts';
import { Rng } from '../../src/utils/rng.ts';

const OUTLIERS = [12, 10, 8, 6, 4];

/**
 * Q = H_0 H_1 ... H_{n-2}, H_k the Householder reflection that maps a Gaussian vector x supported on
 * coordinates k..n-1 onto the axis e_k (u = x + sign(x_k) ||x|| e_k): Stewart (1980)'s generator, a
 * Haar-distributed orthogonal matrix up to column signs. (Reflecting along a random u instead fixes a
 * hyperplane and leaves Q close to the identity: A would be nearly diagonal and Hutchinson nearly
 * exact.) Kept as reflectors: Q x costs 4 n^2 flops and Q is never formed.
 */
function randomOrthogonal(n: number, rng: Rng): { q: (x: Float64Array) => void; qt: (x: Float64Array) => void } {
  const us: Float64Array[] = [];
  for (let k = 0; k < n - 1; k++) {
    const u = rng.normals(n - k);
    u[0] = u[0]! + Math.sign(u[0]!) * Math.sqrt(u.reduce((a, x) => a + x * x, 0));
    let s = 0;
    for (const x of u) s += x * x;
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < u.length; i++) u[i] = u[i]! * inv;
    us.push(u);
  }
  const reflect = (x: Float64Array, k: number) => {
    const u = us[k]!;
    let d = 0;
    for (let i = 0; i < u.length; i++) d += u[i]! * x[k + i]!;
    d *= 2;
    for (let i = 0; i < u.length; i++) x[k + i] = x[k + i]! - d * u[i]!;
  };
  return {
    q: (x) => {
      for (let k = n - 2; k >= 0; k--) reflect(x, k);
    },
    qt: (x) => {
      for (let k = 0; k < n - 1; k++) reflect(x, k);
    },
  };
}

/** The oracle operator A = Q diag(lambda) Q^T, counting its applications. */
function quadraticOracle(seed: number) {
  const n = 1000;
  const rng = new Rng(seed);
  const lambda = new Float64Array(n);
  OUTLIERS.forEach((l, i) => (lambda[i] = l));
  for (let i = OUTLIERS.length; i < n; i++) lambda[i] = rng.uniform();
  const { q, qt } = randomOrthogonal(n, rng);
  const op: LinearOperator & { calls: number } = {
    dim: n,
    calls: 0,
    async apply(v) {
      this.calls++;
      const x = Float64Array.from(v);
      qt(x);
      for (let i = 0; i < n; i++) x[i] = x[i]! * lambda[i]!;
      q(x);
      return x;
    },
  };
  const trace = lambda.reduce((a, b) => a + b, 0);
  const bulkMax = Math.max(...lambda.subarray(OUTLIERS.length));
  return { op, lambda, trace, bulkMax, q };
}

/** Dense symmetric eigen-solver (cyclic Jacobi rotations), the independent oracle for tridiagonalEigen. */
function jacobiEigen(a: number[][]): { values: number[]; vectors: number[][] } {
  const n = a.length;
  const A = a.map((r) => r.slice());
  const V: number[][] = A.map((_, i) => A.map((_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += A[i]![j]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let r = p + 1; r < n; r++) {
        if (Math.abs(A[p]![r]!) < 1e-300) continue;
        const theta = (A[r]![r]! - A[p]![p]!) / (2 * A[p]![r]!);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k]![p]!;
          const akr = A[k]![r]!;
          A[k]![p] = c * akp - s * akr;
          A[k]![r] = s * akp + c * akr;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p]![k]!;
          const ark = A[r]![k]!;
          A[p]![k] = c * apk - s * ark;
          A[r]![k] = s * apk + c * ark;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k]![p]!;
          const vkr = V[k]![r]!;
          V[k]![p] = c * vkp - s * vkr;
          V[k]![r] = s * vkp + c * vkr;
        }
      }
    }
  }
  const order = A.map((_, i) => i).sort((i, j) => A[j]![j]! - A[i]![i]!);
  return { values: order.map((i) => A[i]![i]!), vectors: order.map((i) => V.map((row) => row[i]!)) };
}

function dense(alphas: ArrayLike<number>, betas: ArrayLike<number>): number[][] {
  const n = alphas.length;
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => (i === j ? alphas[i]! : Math.abs(i - j) === 1 ? betas[Math.min(i, j)]! : 0)),
  );
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

describe('tridiagonalEigen', () => {
  it('matches a dense Jacobi solver on random tridiagonal matrices', () => {
    const rng = new Rng(11);
    for (const n of [1, 2, 3, 12, 40]) {
      const alphas = rng.normals(n);
      const betas = rng.normals(n - 1);
      const { values, vectors } = tridiagonalEigen(alphas, betas);
      const ref = jacobiEigen(dense(alphas, betas));
      const T = dense(alphas, betas);
      for (let k = 0; k < n; k++) {
        expect(Math.abs(values[k]! - ref.values[k]!)).toBeLessThan(1e-12);
        if (k > 0) expect(values[k]!).toBeLessThanOrEqual(values[k - 1]!);
        // Eigenvectors agree up to sign, are unit and satisfy T v = lambda v.
        expect(Math.abs(Math.abs(dot(vectors[k]!, ref.vectors[k]!)) - 1)).toBeLessThan(1e-9);
        expect(Math.abs(dot(vectors[k]!, vectors[k]!) - 1)).toBeLessThan(1e-12);
        const tv = T.map((row) => dot(row, vectors[k]!));
        const res = Math.sqrt(tv.reduce((s, x, i) => s + (x - values[k]! * vectors[k]![i]!) ** 2, 0));
        expect(res).toBeLessThan(1e-12);
      }
    }
  });

  it('gives the closed-form spectrum 2 - 2 cos(k pi / (n + 1)) of the second-difference matrix', () => {
    const n = 200;
    const { values, vectors } = tridiagonalEigen(new Float64Array(n).fill(2), new Float64Array(n - 1).fill(-1));
    for (let k = 1; k <= n; k++) {
      // Descending order: values[0] belongs to k = n.
      expect(Math.abs(values[n - k]! - (2 - 2 * Math.cos((k * Math.PI) / (n + 1))))).toBeLessThan(1e-12);
    }
    // The eigenvectors are orthonormal.
    for (const i of [0, 7, 199])
      for (const j of [0, 7, 199]) expect(Math.abs(dot(vectors[i]!, vectors[j]!) - (i === j ? 1 : 0))).toBeLessThan(1e-12);
  });

  it('handles a diagonal matrix with repeated values (orthonormal eigenvectors)', () => {
    const { values, vectors } = tridiagonalEigen([1, 3, 1, 2], [0, 0, 0]);
    expect(Array.from(values)).toEqual([3, 2, 1, 1]);
    expect(dot(vectors[2]!, vectors[3]!)).toBe(0);
  });
});

describe('the closed-form quadratic oracle (n = 1000)', () => {
  const oracle = quadraticOracle(2024);
  let top: Awaited<ReturnType<typeof topEigenpairs>>;

  beforeAll(async () => {
    top = await topEigenpairs(oracle.op, { k: 10, m: 80, seed: 1 });
  });

  it('Lanczos (m = 80, full reorthogonalisation) recovers 12, 10, 8, 6, 4 to 1e-6', () => {
    OUTLIERS.forEach((l, i) => expect(Math.abs(top.values[i]! - l)).toBeLessThan(1e-6));
    for (let i = 0; i < 5; i++) expect(top.residuals[i]!).toBeLessThan(1e-5);
    // No ghosts: exactly one Ritz value near each outlier.
    for (const l of OUTLIERS) expect(top.ritzValues.filter((t) => Math.abs(t - l) < 0.01).length).toBe(1);
    // The next Ritz values lie in the bulk.
    for (let i = 5; i < 10; i++) expect(top.values[i]!).toBeLessThan(oracle.bulkMax + 1e-9);
    expect(top.lanczos.steps).toBe(80);
  });

  it('Ritz vectors are the eigenvectors Q e_i', () => {
    for (let i = 0; i < 5; i++) {
      const e = new Float64Array(oracle.op.dim);
      e[i] = 1;
      oracle.q(e);
      expect(Math.abs(Math.abs(dot(top.vectors[i]!, e)) - 1)).toBeLessThan(1e-6);
    }
  });

  it('the gap rule finds j* = 5, 5 outliers and a bulk edge near 1', async () => {
    const r = await outlierRule(oracle.op, top, { m: 80, seed: 2 });
    expect(r.jStar).toBe(5);
    expect(r.count).toBe(5);
    expect(r.bulkEdge).toBeLessThan(1.05);
    expect(r.bulkEdge).toBeGreaterThan(0.9);
    expect(r.bulkEdge).toBeLessThanOrEqual(oracle.bulkMax + 1e-9);
    expect(r.gapRatio).toBe(top.values[4]! / top.values[5]!);
    expect(Math.abs(r.gapRatio - 4 / oracle.bulkMax)).toBeLessThan(0.05);
  });

  it('Hutchinson (100 probes) gives the exact trace within 3 standard errors', async () => {
    const r = await hutchinsonTrace(oracle.op, { probes: 100, seed: 3 });
    expect(r.probes).toBe(100);
    // Var(v^T A v) = 2 sum_{i != j} A_ij^2 ~ 2 (sum lambda^2 - tr^2 / n) ~ 800 for a Haar Q: stderr ~ 2.8.
    expect(r.stderr).toBeGreaterThan(1.5);
    expect(r.stderr).toBeLessThan(5);
    expect(Math.abs(r.trace - oracle.trace)).toBeLessThan(3 * r.stderr);
  });

  it('SLQ: weights sum to 1 per run, the density integrates to 1 and ~5/1000 of its mass lies above 3', async () => {
    const r = await slqDensity(oracle.op, { m: 80, runs: 10, seed: 4 });
    for (const w of r.weights) expect(Math.abs(w.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
    expect(r.grid.length).toBe(10000);
    const h = r.grid[1]! - r.grid[0]!;
    let total = 0;
    let above3 = 0;
    for (let i = 0; i < r.grid.length; i++) {
      total += r.density[i]! * h;
      if (r.grid[i]! > 3) above3 += r.density[i]! * h;
    }
    expect(Math.abs(total - 1)).toBeLessThan(1e-3);
    // Each outlier carries (q0 . u_i)^2 ~ chi2_1 / n of a run's mass: 10 runs give 5e-3 +- 1e-3.
    expect(above3).toBeGreaterThan(0.002);
    expect(above3).toBeLessThan(0.009);
    // The default kernel width: sigma^2 = 1e-5 * (lambda_max - lambda_min).
    const lo = Math.min(...r.nodes.map((n) => n[n.length - 1]!));
    expect(r.sigma2).toBeCloseTo(1e-5 * (12 - lo), 10);
  });

  it('power iteration finds 12', async () => {
    const loose = await powerIteration(oracle.op, { seed: 5 });
    expect(loose.converged).toBe(true);
    expect(Math.abs(loose.eigenvalue - 12)).toBeLessThan(0.05);
    const tight = await powerIteration(oracle.op, { seed: 5, tol: 1e-12, maxIter: 500 });
    expect(Math.abs(tight.eigenvalue - 12)).toBeLessThan(1e-6);
    // Deflating the top Ritz vector, it finds 10.
    const next = await powerIteration(oracle.op, { seed: 5, tol: 1e-12, maxIter: 500, deflate: [top.vectors[0]!] });
    expect(Math.abs(next.eigenvalue - 10)).toBeLessThan(1e-5);
  });

  it('analyzeSpectrum combines them', async () => {
    const r = await analyzeSpectrum(oracle.op, { topk: 5, lanczosSteps: 80, traceProbes: 20, seed: 7 });
    OUTLIERS.forEach((l, i) => expect(Math.abs(r.topk[i]! - l)).toBeLessThan(1e-6));
    expect(r.outlier.count).toBe(5);
    expect(r.outlier.jStar).toBe(5);
    expect(Math.abs(r.trace!.trace - oracle.trace)).toBeLessThan(4 * r.trace!.stderr);
    expect(r.density).toBeUndefined();
    // 80 Lanczos + 5 residuals + 80 deflated Lanczos + 20 probes.
    expect(r.applies).toBe(185);
  });
});

describe('edge cases', () => {
  const diag = (d: number[]): LinearOperator => ({
    dim: d.length,
    apply: async (v) => Float64Array.from(v, (x, i) => x * d[i]!),
  });

  it('Lanczos stops on breakdown: 3 distinct eigenvalues span a 3-dimensional Krylov space', async () => {
    const d = Array.from({ length: 50 }, (_, i) => (i < 10 ? 5 : i < 30 ? 2 : 0));
    const r = await lanczos(diag(d), 20, { seed: 1, keepBasis: true });
    expect(r.breakdown).toBe(true);
    expect(r.steps).toBe(3);
    expect(r.basis!.length).toBe(3);
    const { values } = tridiagonalEigen(r.alphas, r.betas);
    expect(Math.abs(values[0]! - 5)).toBeLessThan(1e-6);
    expect(Math.abs(values[1]! - 2)).toBeLessThan(1e-6);
    expect(Math.abs(values[2]!)).toBeLessThan(1e-6);
  });

  it("the outlier count is limited by the rule's window: a count at the window's end is reported as capped", async () => {
    // 9 well-separated outliers (100..108) over a bulk just below 1: the gap follows the 9th value.
    const d = Array.from({ length: 200 }, (_, i) => (i < 9 ? 100 + i : 1 - i / 1000));
    // The default window is 10 values: a gap after the 9th is the last one it can see.
    const small = await analyzeSpectrum(diag(d), { topk: 5, lanczosSteps: 60, seed: 3 });
    expect(small.outlier.window).toBe(10);
    expect(small.outlier.count).toBe(9);
    expect(small.outlier.capped).toBe(true);
    const wide = await analyzeSpectrum(diag(d), { topk: 5, lanczosSteps: 60, outlierK: 25, seed: 3 });
    expect(wide.outlier.window).toBe(25);
    expect(wide.outlier.count).toBe(9);
    expect(wide.outlier.capped).toBe(false);
    // The deflated bulk edge is a Ritz value: never above the true edge (the bulk's largest, 0.991).
    expect(wide.outlier.bulkEdge).toBeLessThanOrEqual(0.991 + 1e-9);
  });

  it('m larger than the dimension runs dim steps', async () => {
    const r = await lanczos(diag([3, 1, 2]), 10, { seed: 1 });
    expect(r.steps).toBe(3);
    expect(Array.from(tridiagonalEigen(r.alphas, r.betas).values).map((x) => +x.toFixed(6))).toEqual([3, 2, 1]);
  });

  it('k > m is a ConfigError on topk', async () => {
    const op = diag([1, 2, 3, 4, 5, 6]);
    const err = await topEigenpairs(op, { k: 5, m: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe('topk');
    expect((err as Error).message).toContain('must be <= m');
    await expect(analyzeSpectrum(op, { topk: 6, lanczosSteps: 4 })).rejects.toThrow(ConfigError);
  });

  it('the outlier rule without a positive gap deflates nothing', async () => {
    const op = diag([-1, -2, -3, -4]);
    const top = await topEigenpairs(op, { k: 3, m: 4 });
    const r = await outlierRule(op, top);
    expect(r).toEqual({ count: 0, window: 3, capped: false, jStar: 0, gapRatio: 1, bulkEdge: top.values[0]! });
  });

  it('analyzeSpectrum reports topk values even when the outlier rule looks at fewer, and runs SLQ on request', async () => {
    const d = Array.from({ length: 60 }, (_, i) => (i < 3 ? 10 - i : 0.01 * i));
    const r = await analyzeSpectrum(diag(d), { topk: 5, lanczosSteps: 6, slq: { m: 20, runs: 2, gridPoints: 400 }, seed: 1 });
    expect(r.topk.length).toBe(5);
    expect(r.residuals.length).toBe(5);
    expect(Math.abs(r.topk[0]! - 10)).toBeLessThan(1e-3);
    expect(r.density!.grid.length).toBe(400);
    expect(r.density!.nodes.length).toBe(2);
  });

  it('a wrong-length or non-finite operator result is an error, not a silent NaN', async () => {
    await expect(lanczos({ dim: 3, apply: async () => new Float64Array(2) }, 2)).rejects.toThrow('returned 2 values');
    await expect(lanczos({ dim: 3, apply: async () => Float64Array.of(1, NaN, 0) }, 2)).rejects.toThrow('non-finite');
  });
});
