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
//
// This file holds analyzeSpectrum and re-exports the rest; the code lives in ./lanczos/: operator.ts
// (LinearOperator, vector kernels, checks), iteration.ts (Lanczos), tridiagonal.ts (the eigen-solver of
// T), eigenpairs.ts (top eigenpairs, power iteration), trace.ts (Hutchinson), slq.ts (spectral density)
// and outlier_rule.ts (the gap rule).
import { ConfigError } from '../errors.ts';
import { combine } from './lanczos/eigenpairs.ts';
import { lanczos } from './lanczos/iteration.ts';
import { applyChecked, axpy, checkInt, norm, type LinearOperator } from './lanczos/operator.ts';
import { largestGap, outlierRule, type OutlierResult } from './lanczos/outlier_rule.ts';
import { slqDensity, type SlqResult } from './lanczos/slq.ts';
import { hutchinsonTrace, type TraceResult } from './lanczos/trace.ts';
import { tridiagonalEigen } from './lanczos/tridiagonal.ts';

export { type LinearOperator } from './lanczos/operator.ts';
export { type LanczosOptions, type LanczosResult, lanczos } from './lanczos/iteration.ts';
export { type TridiagonalEigen, tridiagonalEigen } from './lanczos/tridiagonal.ts';
export {
  type EigenpairOptions,
  type Eigenpairs,
  type PowerIterationOptions,
  type PowerIterationResult,
  powerIteration,
  topEigenpairs,
} from './lanczos/eigenpairs.ts';
export { type TraceOptions, type TraceResult, hutchinsonTrace } from './lanczos/trace.ts';
export { type SlqOptions, type SlqResult, slqDensity } from './lanczos/slq.ts';
export { type OutlierOptions, type OutlierResult, outlierRule } from './lanczos/outlier_rule.ts';

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
  if (topk > m)
    throw new ConfigError('topk', `k = ${topk} must be <= m = ${m}, the number of Lanczos steps; raise lanczosSteps or lower topk`);
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
