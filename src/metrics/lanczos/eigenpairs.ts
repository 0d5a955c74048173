/**
 * The top eigenpairs of a symmetric operator: topEigenpairs (Ritz values and vectors from Lanczos, with
 * residuals), combine (a Ritz vector from the basis) and powerIteration (PyHessian's check).
 */
import { ConfigError } from '../../errors.ts';
import { Rng } from '../../utils/rng.ts';
import { lanczos, type LanczosResult } from './iteration.ts';
import { applyChecked, axpy, axpy32, checkDim, checkInt, dot, norm, project, scale, type LinearOperator } from './operator.ts';
import { tridiagonalEigen } from './tridiagonal.ts';

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
export function combine(basis: Float32Array[], s: Float64Array): Float64Array {
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
