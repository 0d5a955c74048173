/** The outlier metric recomputed in float64 from the paper's definition: the oracle of the monitors. */

/** OSP excess kurtosis of rows of x [n, d]: raw fourth moment over the squared unbiased variance, minus 3, clipped at 0, averaged over rows. */
export function ospKurtosis64(x: Float64Array, n: number, d: number): number {
  let total = 0;
  for (let t = 0; t < n; t++) {
    const row = x.subarray(t * d, (t + 1) * d);
    const mean = row.reduce((a, b) => a + b, 0) / d;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / (d - 1);
    const m4 = row.reduce((a, b) => a + b ** 4, 0) / d;
    total += Math.max(0, m4 / variance ** 2 - 3);
  }
  return total / n;
}
