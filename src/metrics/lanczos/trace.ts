/**
 * Hutchinson's trace estimator over Rademacher probes: hutchinsonTrace.
 */
import { Rng } from '../../utils/rng.ts';
import { applyChecked, checkDim, checkInt, dot, type LinearOperator } from './operator.ts';

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
