/**
 * The Lanczos iteration with full reorthogonalisation: lanczos (m steps from a seeded or given start
 * vector, with the float32 basis on request) and its Gram-Schmidt pass.
 */
import { ConfigError } from '../../errors.ts';
import { Rng } from '../../utils/rng.ts';
import { applyChecked, axpy, axpy32, checkDim, checkInt, dot, dot32, norm, scale, type LinearOperator } from './operator.ts';

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
