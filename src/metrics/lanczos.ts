/**
 * Spectra of symmetric operators known only through matrix-vector products (reference/hessian.md):
 * Lanczos with full reorthogonalisation, the eigen-decomposition of its tridiagonal matrix, power
 * iteration, Hutchinson's trace estimator, stochastic Lanczos quadrature (SLQ) for the spectral
 * density, and the gap rule that says which top eigenvalues are outliers.
 *
 * Everything here runs on the host in float64 and knows nothing about tensors: the operator is any
 * `LinearOperator` (a Hessian of a tfjs loss, see hessian.ts, or a test matrix). The one concession
 * to model size is the Lanczos basis, stored as float32 (m vectors of a million parameters would
 * otherwise take 8 MB each); dot products with it still accumulate in float64.
 */
import { ConfigError, OspError, ShapeError } from '../errors.ts';
import { Rng } from '../utils/rng.ts';

/** A symmetric linear map R^dim -> R^dim, e.g. v -> H v for a loss Hessian H. */
export type LinearOperator = {
  dim: number;
  apply(v: Float64Array): Promise<Float64Array>;
};

export interface LanczosOptions {
  /** Seed of the random (Gaussian) start vector; ignored when `start` is given. Default 0. */
  seed?: number;
  /** Start vector (any nonzero length-dim vector; it is normalised). */
  start?: Float64Array;
  /** Return the orthonormal basis (needed for Ritz vectors). Default false. */
  keepBasis?: boolean;
  /**
   * Stop when beta <= breakdownTol * (running estimate of ||T||). The basis is stored in float32,
   * so once the Krylov space is (numerically) invariant the remainder is rounding noise of relative
   * size ~1e-7, not 0: continuing would add Ritz values of noise directions. Default 1e-6.
   */
  breakdownTol?: number;
}

export interface LanczosResult {
  /** Diagonal of T (length `steps`). */
  alphas: Float64Array;
  /** Off-diagonal of T (length `steps - 1`). */
  betas: Float64Array;
  /** Norm of the remainder after the last step (residual of the Lanczos relation; ~0 on breakdown). */
  lastBeta: number;
  /** Steps done: m, or fewer on breakdown or when m exceeds the dimension. */
  steps: number;
  /** True when the run stopped early because beta was ~0 (an invariant subspace was found). */
  breakdown: boolean;
  /** The orthonormal Lanczos vectors q_0 .. q_{steps-1} (float32), when `keepBasis`. */
  basis?: Float32Array[];
}

/**
 * m steps of the Lanczos iteration with FULL reorthogonalisation: every new vector is
 * Gram-Schmidt-orthogonalised against all previous ones (a second pass when the first removed more
 * than 1 - 1/sqrt(2) of its norm, Kahan-Parlett's "twice is enough"). Without it, rounding makes
 * converged Ritz values reappear as spurious copies ("ghosts") and the outlier count is wrong.
 *
 * @example
 *   const { alphas, betas } = await lanczos(op, 80, { seed: 1 });
 *   const { values } = tridiagonalEigen(alphas, betas); // Ritz values, descending
 */
export async function lanczos(op: LinearOperator, m: number, opts: LanczosOptions = {}): Promise<LanczosResult> {
  checkInt('m', m, 1);
  const n = checkDim(op);
  const breakdownTol = opts.breakdownTol ?? 1e-6;
  const steps = Math.min(m, n);

  let q: Float64Array;
  if (opts.start) {
    if (opts.start.length !== n) {
      throw new ConfigError('start', `start vector has length ${opts.start.length}, the operator's dimension is ${n}`);
    }
    q = Float64Array.from(opts.start);
  } else {
    q = new Rng(opts.seed ?? 0).normals(n);
  }
  const qNorm = norm(q);
  if (!(qNorm > 0) || !Number.isFinite(qNorm)) throw new ConfigError('start', 'start vector must be nonzero and finite');
  scale(q, 1 / qNorm);

  const basis: Float32Array[] = [];
  const alphas: number[] = [];
  const betas: number[] = [];
  let qPrev: Float64Array | undefined;
  let betaPrev = 0;
  let lastBeta = 0;
  let tNorm = 0;
  let breakdown = false;
  for (let j = 0; j < steps; j++) {
    // Store q_j in float32 and continue with exactly the stored values, so that the vectors the
    // operator sees, the ones T is built from and the ones later vectors are orthogonalised against
    // are the same (mixing a float64 q with its float32 copy would cost ~1e-7 in the Ritz values).
    const q32 = Float32Array.from(q);
    for (let i = 0; i < n; i++) q[i] = q32[i]!;
    basis.push(q32);

    const w = await applyChecked(op, q, 'lanczos');
    let alpha = dot(w, q);
    axpy(w, -alpha, q);
    if (qPrev) axpy(w, -betaPrev, qPrev);
    alpha += reorthogonalise(w, basis);
    alphas.push(alpha);

    const beta = norm(w);
    tNorm = Math.max(tNorm, Math.abs(alpha) + beta + betaPrev);
    lastBeta = beta;
    if (j === steps - 1) break;
    if (beta <= breakdownTol * tNorm) {
      breakdown = true;
      break;
    }
    betas.push(beta);
    qPrev = q;
    q = w;
    scale(q, 1 / beta);
    betaPrev = beta;
  }
  return {
    alphas: Float64Array.from(alphas),
    betas: Float64Array.from(betas),
    lastBeta,
    steps: alphas.length,
    breakdown,
    basis: opts.keepBasis ? basis : undefined,
  };
}

/**
 * Removes from w its components along every basis vector (classical Gram-Schmidt, repeated once when
 * the first pass cancelled most of w). Returns the total coefficient along the last basis vector,
 * which belongs to alpha_j (T's diagonal entry is q_j^T H q_j, the recurrence's alpha plus this).
 */
function reorthogonalise(w: Float64Array, basis: Float32Array[]): number {
  const last = basis.length - 1;
  let alphaCorrection = 0;
  for (let pass = 0; pass < 2; pass++) {
    const before = norm(w);
    const coef = basis.map((b) => dot32(w, b));
    basis.forEach((b, i) => axpy32(w, -coef[i]!, b));
    alphaCorrection += coef[last]!;
    if (norm(w) > before / Math.SQRT2) break;
  }
  return alphaCorrection;
}

export interface TridiagonalEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** vectors[k]: the unit eigenvector of values[k] (length n). */
  vectors: Float64Array[];
}

/**
 * All eigenvalues and eigenvectors of the symmetric tridiagonal matrix with diagonal `alphas` and
 * off-diagonal `betas` (length n - 1; a length-n array's last entry is ignored), in float64: the
 * implicit QL algorithm with Wilkinson-type shifts (Wilkinson & Reinsch's tql2). Float32 here would
 * limit Ritz values to ~1e-7 relative and merge close eigenvalues.
 *
 * @example
 *   const { values, vectors } = tridiagonalEigen(Float64Array.of(2, 2), Float64Array.of(1)); // 3, 1
 */
export function tridiagonalEigen(alphas: ArrayLike<number>, betas: ArrayLike<number>): TridiagonalEigen {
  const n = alphas.length;
  if (n === 0) return { values: new Float64Array(0), vectors: [] };
  if (betas.length < n - 1) throw new ShapeError(`tridiagonalEigen: need ${n - 1} off-diagonal entries, got ${betas.length}`);
  const d = Float64Array.from(alphas);
  // e[i] couples rows i and i + 1; e[n - 1] = 0 terminates every search for a negligible coupling.
  const e = new Float64Array(n);
  for (let i = 0; i < n - 1; i++) e[i] = betas[i]!;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(d[i]!) || !Number.isFinite(e[i]!)) throw new OspError('tridiagonalEigen: non-finite entry in T');
  }
  // V (row-major, n x n) accumulates the rotations: column k ends up as the eigenvector of d[k].
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;

  const eps = 2 ** -52;
  let shiftSum = 0;
  let tst = 0;
  for (let l = 0; l < n; l++) {
    tst = Math.max(tst, Math.abs(d[l]!) + Math.abs(e[l]!));
    // Find the first negligible coupling at or below l: d[l..m] is the unreduced block to work on.
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst) m++;
    let iter = 0;
    while (m > l) {
      if (++iter > 60) throw new OspError(`tridiagonalEigen: QL did not converge for eigenvalue ${l} of ${n}`);
      // Shift: the eigenvalue of the leading 2x2 block [d_l, e_l; e_l, d_{l+1}] closer to d_l
      // (Wilkinson's choice; it makes convergence cubic for symmetric matrices). Subtracting it
      // from the whole block (tracked in shiftSum) keeps the rotations below shift-free.
      const g0 = d[l]!;
      let p = (d[l + 1]! - g0) / (2 * e[l]!);
      let r = Math.hypot(p, 1);
      if (p < 0) r = -r;
      d[l] = e[l]! / (p + r);
      d[l + 1] = e[l]! * (p + r);
      const dl1 = d[l + 1]!;
      let h = g0 - d[l]!;
      for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
      shiftSum += h;

      // Implicit QL sweep from the bottom of the block up: Givens rotations chase the bulge.
      p = d[m]!;
      let c = 1;
      let c2 = 1;
      let c3 = 1;
      const el1 = e[l + 1]!;
      let s = 0;
      let s2 = 0;
      for (let i = m - 1; i >= l; i--) {
        c3 = c2;
        c2 = c;
        s2 = s;
        const g = c * e[i]!;
        h = c * p;
        r = Math.hypot(p, e[i]!);
        e[i + 1] = s * r;
        s = e[i]! / r;
        c = p / r;
        p = c * d[i]! - s * g;
        d[i + 1] = h + s * (c * g + s * d[i]!);
        for (let k = 0; k < n; k++) {
          const row = k * n;
          const vi1 = V[row + i + 1]!;
          const vi = V[row + i]!;
          V[row + i + 1] = s * vi + c * vi1;
          V[row + i] = c * vi - s * vi1;
        }
      }
      p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
      e[l] = s * p;
      d[l] = c * p;
      if (Math.abs(e[l]!) <= eps * tst) break;
    }
    d[l] = d[l]! + shiftSum;
    e[l] = 0;
  }

  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[b]! - d[a]!);
  const values = Float64Array.from(order, (k) => d[k]!);
  const vectors = order.map((k) => {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = V[i * n + k]!;
    return v;
  });
  return { values, vectors };
}

export interface EigenpairOptions {
  /** Number of eigenpairs (largest algebraic eigenvalues). */
  k: number;
  /** Lanczos steps; k <= m. */
  m: number;
  seed?: number;
  /** Compute ||H y - theta y|| with one extra operator application per pair. Default true. */
  residuals?: boolean;
}

export interface Eigenpairs {
  /** Ritz values, descending (at most k; fewer if Lanczos broke down earlier). */
  values: Float64Array;
  /** Unit Ritz vectors y_i = Q s_i, float64. */
  vectors: Float64Array[];
  /** ||H y_i - theta_i y_i|| (when `residuals`, else the estimate below). */
  residuals: Float64Array;
  /** The free estimate |beta_m s_i[m-1]| of the same residual, from the Lanczos relation. */
  residualEstimates: Float64Array;
  /** All Ritz values of T_m, descending (more than k: useful for the outlier rule). */
  ritzValues: Float64Array;
  lanczos: Omit<LanczosResult, 'basis'>;
}

/**
 * The k largest eigenvalues of a symmetric operator and their eigenvectors, from m Lanczos steps.
 *
 * @example
 *   const top = await topEigenpairs(op, { k: 5, m: 30, seed: 0 });
 *   console.log(top.values, top.residuals);
 */
export async function topEigenpairs(op: LinearOperator, opts: EigenpairOptions): Promise<Eigenpairs> {
  const { k, m } = opts;
  checkInt('topk', k, 1);
  checkInt('lanczosSteps', m, 1);
  if (k > m) throw new ConfigError('topk', `k = ${k} must be <= m = ${m}, the number of Lanczos steps; raise m or lower k`);
  const run = await lanczos(op, m, { seed: opts.seed, keepBasis: true });
  const eig = tridiagonalEigen(run.alphas, run.betas);
  const count = Math.min(k, run.steps);
  const basis = run.basis!;
  const values = eig.values.slice(0, count);
  const vectors: Float64Array[] = [];
  const residualEstimates = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const s = eig.vectors[i]!;
    vectors.push(combine(basis, s));
    residualEstimates[i] = Math.abs(run.lastBeta * s[run.steps - 1]!);
  }
  let residuals = residualEstimates;
  if (opts.residuals !== false) {
    residuals = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const hy = await applyChecked(op, vectors[i]!, 'topEigenpairs');
      axpy(hy, -values[i]!, vectors[i]!);
      residuals[i] = norm(hy);
    }
  }
  const { basis: _dropped, ...info } = run;
  return { values, vectors, residuals, residualEstimates, ritzValues: eig.values, lanczos: info };
}

/** y = sum_j s_j q_j, accumulated in float64 and renormalised (the float32 basis is orthonormal to ~1e-7). */
function combine(basis: Float32Array[], s: Float64Array): Float64Array {
  const n = basis[0]!.length;
  const y = new Float64Array(n);
  for (let j = 0; j < basis.length; j++) axpy32(y, s[j]!, basis[j]!);
  scale(y, 1 / norm(y));
  return y;
}

export interface PowerIterationOptions {
  /** Default 100 (PyHessian). */
  maxIter?: number;
  /** Stop when the eigenvalue estimate changes by less than tol relative. Default 1e-3 (PyHessian). */
  tol?: number;
  seed?: number;
  /** Unit vectors to project out every iteration (deflation: find the next eigenvalue). */
  deflate?: Float64Array[];
}

export interface PowerIterationResult {
  /** Rayleigh quotient v^T H v of the final vector: the dominant eigenvalue, with its sign. */
  eigenvalue: number;
  vector: Float64Array;
  iterations: number;
  converged: boolean;
}

/**
 * Power iteration as in PyHessian: converges to the eigenvalue of largest |lambda|, at a rate set by
 * |lambda_2 / lambda_1| (slow when the gap is small; Lanczos is the better tool, this is the check).
 *
 * @example
 *   const { eigenvalue } = await powerIteration(op, { seed: 0 });
 */
export async function powerIteration(op: LinearOperator, opts: PowerIterationOptions = {}): Promise<PowerIterationResult> {
  const maxIter = opts.maxIter ?? 100;
  const tol = opts.tol ?? 1e-3;
  checkInt('maxIter', maxIter, 1);
  if (!(tol >= 0)) throw new ConfigError('tol', `must be a number >= 0, got ${tol}`);
  const n = checkDim(op);
  const deflate = opts.deflate ?? [];
  let v = new Rng(opts.seed ?? 0).normals(n);
  project(v, deflate);
  scale(v, 1 / norm(v));
  let eigenvalue = NaN;
  let iterations = 0;
  let converged = false;
  while (iterations < maxIter) {
    iterations++;
    const hv = await applyChecked(op, v, 'powerIteration');
    project(hv, deflate);
    const estimate = dot(v, hv);
    const hvNorm = norm(hv);
    if (hvNorm === 0) {
      // v is in the null space: 0 is an eigenvalue and nothing larger can be reached from here.
      eigenvalue = 0;
      converged = true;
      break;
    }
    scale(hv, 1 / hvNorm);
    v = hv;
    const change = Math.abs(estimate - eigenvalue) / (Math.abs(eigenvalue) + 1e-12);
    eigenvalue = estimate;
    if (change < tol) {
      converged = true;
      break;
    }
  }
  return { eigenvalue, vector: v, iterations, converged };
}

export interface TraceOptions {
  /** Number of Rademacher probes (>= 1). */
  probes: number;
  seed?: number;
}

export interface TraceResult {
  /** Mean of v^T H v over the probes. */
  trace: number;
  /** Standard error of that mean (sample std / sqrt(probes)); NaN with a single probe. */
  stderr: number;
  probes: number;
  /** The individual v^T H v. */
  samples: Float64Array;
}

/**
 * Hutchinson's estimator tr(H) ~ mean of v^T H v over random sign vectors v (Rademacher: the
 * minimum-variance choice, Var = 2 sum_{i != j} H_ij^2).
 *
 * @example
 *   const { trace, stderr } = await hutchinsonTrace(op, { probes: 100, seed: 0 });
 */
export async function hutchinsonTrace(op: LinearOperator, opts: TraceOptions): Promise<TraceResult> {
  checkInt('traceProbes', opts.probes, 1);
  const n = checkDim(op);
  const rng = new Rng(opts.seed ?? 0);
  const samples = new Float64Array(opts.probes);
  for (let p = 0; p < opts.probes; p++) {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = rng.nextUint32() & 1 ? 1 : -1;
    samples[p] = dot(v, await applyChecked(op, v, 'hutchinsonTrace'));
  }
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  let ss = 0;
  for (const s of samples) ss += (s - mean) ** 2;
  const stderr = samples.length > 1 ? Math.sqrt(ss / (samples.length - 1) / samples.length) : NaN;
  return { trace: mean, stderr, probes: samples.length, samples };
}

export interface SlqOptions {
  /** Lanczos steps per run (80-100 in the literature). */
  m: number;
  /** Independent random start vectors (1-10). */
  runs: number;
  seed?: number;
  /** Default 10000. */
  gridPoints?: number;
  /** Gaussian kernel variance; default 1e-5 * max(1, lambda_max - lambda_min). */
  sigma2?: number;
}

export interface SlqResult {
  /** Evenly spaced points from lambda_min - 5 sigma to lambda_max + 5 sigma. */
  grid: Float64Array;
  /** The smoothed density on the grid; integrates to ~1. */
  density: Float64Array;
  /** nodes[r]: the Ritz values of run r (quadrature nodes). */
  nodes: Float64Array[];
  /** weights[r]: squared first components of T's eigenvectors (sum to 1 per run). */
  weights: Float64Array[];
  sigma2: number;
}

/**
 * Stochastic Lanczos quadrature: for a random unit v, v^T f(H) v = sum_k tau_k f(theta_k) with nodes
 * theta_k = eigenvalues of T_m and weights tau_k = (first component of eigenvector k)^2, so the
 * spectral density is approximated by Gaussians at the nodes, averaged over runs. An outlier carries
 * only ~1/n of the mass: count outliers with outlierRule, not from this density.
 *
 * @example
 *   const { grid, density } = await slqDensity(op, { m: 80, runs: 5, seed: 0 });
 */
export async function slqDensity(op: LinearOperator, opts: SlqOptions): Promise<SlqResult> {
  checkInt('slq.m', opts.m, 1);
  checkInt('slq.runs', opts.runs, 1);
  const gridPoints = opts.gridPoints ?? 10000;
  checkInt('slq.gridPoints', gridPoints, 2);
  if (opts.sigma2 !== undefined && !(opts.sigma2 > 0)) throw new ConfigError('slq.sigma2', `must be > 0, got ${opts.sigma2}`);
  const n = checkDim(op);
  const rng = new Rng(opts.seed ?? 0);
  const nodes: Float64Array[] = [];
  const weights: Float64Array[] = [];
  for (let r = 0; r < opts.runs; r++) {
    const run = await lanczos(op, opts.m, { start: rng.normals(n) });
    const eig = tridiagonalEigen(run.alphas, run.betas);
    nodes.push(eig.values);
    weights.push(Float64Array.from(eig.vectors, (s) => s[0]! * s[0]!));
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const run of nodes) for (const t of run) (lo = Math.min(lo, t)), (hi = Math.max(hi, t));
  const sigma2 = opts.sigma2 ?? 1e-5 * Math.max(1, hi - lo);
  const sigma = Math.sqrt(sigma2);
  // 5 sigma of padding keeps all but ~6e-7 of every Gaussian on the grid, so no renormalisation.
  const a = lo - 5 * sigma;
  const b = hi + 5 * sigma;
  const grid = Float64Array.from({ length: gridPoints }, (_, i) => a + ((b - a) * i) / (gridPoints - 1));
  const density = new Float64Array(gridPoints);
  const h = (b - a) / (gridPoints - 1);
  const norm0 = 1 / (opts.runs * Math.sqrt(2 * Math.PI * sigma2));
  for (let r = 0; r < nodes.length; r++) {
    const theta = nodes[r]!;
    const tau = weights[r]!;
    for (let k = 0; k < theta.length; k++) {
      // Only grid points within 8 sigma matter (exp(-32) ~ 1e-14): O(grid span) per node, not O(grid).
      const first = Math.max(0, Math.floor((theta[k]! - 8 * sigma - a) / h));
      const last = Math.min(gridPoints - 1, Math.ceil((theta[k]! + 8 * sigma - a) / h));
      const c = tau[k]! * norm0;
      for (let i = first; i <= last; i++) {
        const z = grid[i]! - theta[k]!;
        density[i] = density[i]! + c * Math.exp((-0.5 * z * z) / sigma2);
      }
    }
  }
  return { grid, density, nodes, weights, sigma2 };
}

export interface OutlierOptions {
  /** Relative margin above the bulk edge. Default 0.05. */
  delta?: number;
  /** Lanczos steps on the deflated operator. Default 30. */
  m?: number;
  seed?: number;
}

export interface OutlierResult {
  /** Number of Ritz values above bulkEdge * (1 + delta), among the `window` values the rule saw. */
  count: number;
  /** How many top Ritz values the rule looked at: the count can never exceed it. */
  window: number;
  /**
   * The count (or the gap) reached the window's end: a gap needs the value after it, so the rule can
   * find at most window - 1 outliers, and the true count may be larger (raise the window).
   */
  capped: boolean;
  /** Position of the largest ratio lambda_j / lambda_{j+1} (1-based: the number of values above the gap); 0 when no ratio exists. */
  jStar: number;
  /** lambda_{j*} / lambda_{j*+1}; 1 when no positive consecutive pair exists. */
  gapRatio: number;
  /**
   * Largest eigenvalue of (I - V V^T) H (I - V V^T), V = the top j* Ritz vectors, as the largest Ritz
   * value of a short Lanczos run: a lower bound of the true edge (Ritz values approach the extreme
   * eigenvalues from inside), so a short run can only count more outliers than there are, never fewer.
   */
  bulkEdge: number;
}

/**
 * reference/hessian.md's outlier rule: j* = argmax_j lambda_j / lambda_{j+1} over the given top Ritz
 * values (consecutive pairs of positive values only: a ratio across or below zero says nothing about
 * a gap); deflate the top j* Ritz vectors; the largest Ritz value of the deflated operator is the bulk
 * edge; an eigenvalue is an outlier if it exceeds edge * (1 + delta) (edge + delta * |edge| when the
 * edge is negative). Give K ~ 2C + 5 values for C classes, 10-20 for a language model: the rule can
 * only find a gap inside the values it sees.
 *
 * @param ritz descending Ritz values with (at least the first j*) unit Ritz vectors, e.g. topEigenpairs' result
 * @example
 *   const top = await topEigenpairs(op, { k: 10, m: 80 });
 *   const { count, bulkEdge } = await outlierRule(op, top, { m: 80 });
 */
export async function outlierRule(
  op: LinearOperator,
  ritz: { values: ArrayLike<number>; vectors: Float64Array[] },
  opts: OutlierOptions = {},
): Promise<OutlierResult> {
  const delta = opts.delta ?? 0.05;
  if (!(delta >= 0)) throw new ConfigError('delta', `must be a number >= 0, got ${delta}`);
  const values = Array.from(ritz.values);
  for (let i = 1; i < values.length; i++) {
    if (values[i]! > values[i - 1]!) throw new ConfigError('ritz', 'Ritz values must be sorted in descending order');
  }
  const { jStar, gapRatio } = largestGap(values);
  if (ritz.vectors.length < jStar) {
    throw new ConfigError('ritz', `the rule deflates the top ${jStar} Ritz vectors but only ${ritz.vectors.length} were given`);
  }
  let bulkEdge: number;
  if (jStar === 0) {
    // No gap among positive values: nothing to deflate, the top value itself is the edge.
    bulkEdge = values.length > 0 ? values[0]! : NaN;
  } else {
    const V = ritz.vectors.slice(0, jStar);
    const deflated: LinearOperator = {
      dim: op.dim,
      apply: async (x) => {
        const px = Float64Array.from(x);
        project(px, V);
        const y = await applyChecked(op, px, 'outlierRule');
        project(y, V);
        return y;
      },
    };
    // Start in the complement of V: otherwise V's part of the start vector is an eigenvector of the
    // deflated operator (eigenvalue 0) that only wastes a step.
    const start = new Rng(opts.seed ?? 0).normals(op.dim);
    project(start, V);
    const run = await lanczos(deflated, opts.m ?? 30, { start });
    bulkEdge = tridiagonalEigen(run.alphas, run.betas).values[0]!;
  }
  const threshold = bulkEdge + delta * Math.abs(bulkEdge);
  const count = values.filter((v) => v > threshold).length;
  // A gap is a ratio of two neighbours, so the rule can place it after at most window - 1 values.
  const capped = values.length > 1 && (count >= values.length - 1 || jStar >= values.length - 1);
  return { count, window: values.length, capped, jStar, gapRatio, bulkEdge };
}

/** j* = argmax_j lambda_j / lambda_{j+1} over consecutive positive values (1-based), and that ratio. */
function largestGap(values: readonly number[]): { jStar: number; gapRatio: number } {
  let jStar = 0;
  let gapRatio = 1;
  for (let j = 0; j + 1 < values.length; j++) {
    if (values[j + 1]! <= 0) break;
    const ratio = values[j]! / values[j + 1]!;
    if (ratio > gapRatio) {
      gapRatio = ratio;
      jStar = j + 1;
    }
  }
  return { jStar, gapRatio };
}

export interface AnalyzeOptions {
  /** Eigenvalues to report. Default 5. */
  topk?: number;
  /** Lanczos steps for the top eigenvalues and for the deflated bulk edge. Default 30. */
  lanczosSteps?: number;
  /**
   * The outlier rule's window: how many top Ritz values it looks at (<= lanczosSteps), so the most
   * outliers it can count. Default min(lanczosSteps / 2, max(2 topk, 10)); a result with `capped` set
   * filled the window.
   */
  outlierK?: number;
  /** Outlier margin, see outlierRule. Default 0.05. */
  delta?: number;
  /** Hutchinson probes; 0 skips the trace. Default 0. */
  traceProbes?: number;
  /** Spectral density by SLQ; omitted skips it. */
  slq?: { m?: number; runs?: number; gridPoints?: number; sigma2?: number };
  seed?: number;
}

export interface SpectrumAnalysis {
  /** Top eigenvalues, descending. */
  topk: Float64Array;
  /** ||H y - theta y|| of each reported eigenpair. */
  residuals: Float64Array;
  outlier: OutlierResult;
  trace?: TraceResult;
  density?: SlqResult;
  /** Operator applications used (Hessian-vector products for a Hessian: the cost). */
  applies: number;
}

/**
 * Everything the Hessian probe reports, from one operator: top eigenvalues (Lanczos), the outlier
 * count, gap ratio and bulk edge (outlierRule), optionally the Hutchinson trace and the SLQ density.
 *
 * @example
 *   const op = await hessianOperator(modelLossFn(model, x, y), model.params);
 *   const r = await analyzeSpectrum(op, { topk: 5, lanczosSteps: 30, traceProbes: 20, seed: 0 });
 */
export async function analyzeSpectrum(op: LinearOperator, opts: AnalyzeOptions = {}): Promise<SpectrumAnalysis> {
  const topk = opts.topk ?? 5;
  const m = opts.lanczosSteps ?? 30;
  const seed = opts.seed ?? 0;
  checkInt('topk', topk, 1);
  checkInt('lanczosSteps', m, 1);
  if (topk > m) throw new ConfigError('topk', `k = ${topk} must be <= m = ${m}, the number of Lanczos steps; raise lanczosSteps or lower topk`);
  // Past ~m/2 the Ritz values are unconverged interior values; near zero they make huge, meaningless
  // ratios lambda_j / lambda_{j+1}, so the rule does not look that far by default.
  const K = opts.outlierK ?? Math.max(1, Math.min(Math.floor(m / 2), Math.max(2 * topk, 10)));
  checkInt('outlierK', K, 1);
  if (K > m) throw new ConfigError('outlierK', `${K} must be <= lanczosSteps = ${m}`);
  const traceProbes = opts.traceProbes ?? 0;
  checkInt('traceProbes', traceProbes, 0);

  let applies = 0;
  const counted: LinearOperator = {
    dim: op.dim,
    apply: (v) => {
      applies++;
      return op.apply(v);
    },
  };
  // Seeds are offset per stage so that the stages use independent random vectors.
  const run = await lanczos(counted, m, { seed, keepBasis: true });
  const eig = tridiagonalEigen(run.alphas, run.betas);
  const values = eig.values.slice(0, Math.min(Math.max(topk, K), run.steps));
  const ruleValues = values.slice(0, K);
  // Ritz vectors only for what is reported or deflated: each is dim float64 numbers.
  const { jStar } = largestGap(Array.from(ruleValues));
  const vectors = eig.vectors.slice(0, Math.min(values.length, Math.max(topk, jStar))).map((s) => combine(run.basis!, s));
  const shown = Math.min(topk, values.length);
  const residuals = new Float64Array(shown);
  for (let i = 0; i < shown; i++) {
    const hy = await applyChecked(counted, vectors[i]!, 'analyzeSpectrum');
    axpy(hy, -values[i]!, vectors[i]!);
    residuals[i] = norm(hy);
  }
  const outlier = await outlierRule(counted, { values: ruleValues, vectors }, { delta: opts.delta, m, seed: seed + 1 });
  const trace = traceProbes > 0 ? await hutchinsonTrace(counted, { probes: traceProbes, seed: seed + 2 }) : undefined;
  const density = opts.slq
    ? await slqDensity(counted, {
        m: opts.slq.m ?? 80,
        runs: opts.slq.runs ?? 1,
        gridPoints: opts.slq.gridPoints,
        sigma2: opts.slq.sigma2,
        seed: seed + 3,
      })
    : undefined;
  return { topk: values.slice(0, shown), residuals, outlier, trace, density, applies };
}

// ---- small float64 vector kernels (dot products with float32 vectors accumulate in float64) ----

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function dot32(a: Float64Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function norm(a: Float64Array): number {
  return Math.sqrt(dot(a, a));
}

function scale(a: Float64Array, s: number): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * s;
}

/** y += a x */
function axpy(y: Float64Array, a: number, x: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

function axpy32(y: Float64Array, a: number, x: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

/** x -= V V^T x for orthonormal V (twice: the Ritz vectors are orthonormal only to ~1e-7). */
function project(x: Float64Array, V: Float64Array[]): void {
  for (let pass = 0; pass < 2; pass++) for (const v of V) axpy(x, -dot(x, v), v);
}

async function applyChecked(op: LinearOperator, v: Float64Array, who: string): Promise<Float64Array> {
  const y = await op.apply(v);
  if (y.length !== op.dim) throw new ShapeError(`${who}: operator returned ${y.length} values for dimension ${op.dim}`);
  for (let i = 0; i < y.length; i++) {
    if (!Number.isFinite(y[i]!)) throw new OspError(`${who}: operator returned a non-finite value at index ${i}`);
  }
  // A copy: callers update the result in place, and an operator may hand back a buffer it reuses.
  return Float64Array.from(y);
}

function checkDim(op: LinearOperator): number {
  if (!Number.isInteger(op.dim) || op.dim < 1) throw new ConfigError('dim', `operator dimension must be a positive integer, got ${op.dim}`);
  return op.dim;
}

function checkInt(field: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(field, `must be an integer >= ${min}, got ${value}`);
}
