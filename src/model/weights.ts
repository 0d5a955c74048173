/**
 * A model's parameters on the host, as export and folding see them: Hugging Face names, [out, in]
 * layout, row-major float32 values. Also the float64 products that folding needs.
 */

/** Parameters by name, [out, in] layout, row-major values. */
export type Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** The tensor `name` of `weights`; a clear error when it is missing. */
export function weight(weights: Weights, name: string): { shape: number[]; data: Float32Array } {
  const w = weights.get(name);
  if (!w) throw new Error(`fold: missing parameter '${name}'`);
  return w;
}

/** a [n, k] times b^T where b is [m, k]: [n, m], float64 accumulation, rounded once to float32. */
export function matmulBT(a: Float32Array, n: number, k: number, b: Float32Array, m: number): Float32Array {
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t]! * b[j * k + t]!;
      out[i * m + j] = s;
    }
  }
  return out;
}

/** a [n, k] times b [k, m]: [n, m], float64 accumulation, rounded once to float32. */
export function matmul(a: Float32Array, n: number, k: number, b: Float32Array, m: number): Float32Array {
  const out = new Float32Array(n * m);
  const row = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t]!;
      for (let j = 0; j < m; j++) row[j]! += av * b[t * m + j]!;
    }
    out.set(row, i * m);
  }
  return out;
}
