/** The per-token OSP kurtosis in float64, shared by the statistics' oracle and the Gaussian floor. */

/**
 * OSP kurtosis of one token in float64, centred two-pass variance (the oracle's own formula; the tensor
 * path derives the variance from raw sums instead). Returns max(0, kappa); 0 for a zero-variance token.
 */
export function tokenKurtosis64(x: Float64Array | number[], offset: number, d: number): number {
  let mean = 0;
  for (let i = 0; i < d; i++) mean += x[offset + i]!;
  mean /= d;
  let c2 = 0;
  let m4 = 0;
  for (let i = 0; i < d; i++) {
    const v = x[offset + i]!;
    c2 += (v - mean) * (v - mean);
    m4 += v * v * v * v;
  }
  const variance = c2 / (d - 1);
  if (!(variance > 0)) return 0;
  return Math.max(0, m4 / d / (variance * variance) - 3);
}
