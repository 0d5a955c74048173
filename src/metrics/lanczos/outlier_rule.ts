/**
 * The gap rule that says which top eigenvalues are outliers (reference/hessian.md): outlierRule (the
 * largest ratio of neighbours, then the bulk edge of the deflated operator) and largestGap.
 */
import { ConfigError } from '../../errors.ts';
import { Rng } from '../../utils/rng.ts';
import { lanczos } from './iteration.ts';
import { applyChecked, project, type LinearOperator } from './operator.ts';
import { tridiagonalEigen } from './tridiagonal.ts';

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
export function largestGap(values: readonly number[]): { jStar: number; gapRatio: number } {
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
