/**
 * The LinearOperator every spectral method of ../lanczos.ts takes, and what they share: small float64
 * vector kernels (dot products with the float32 Lanczos basis accumulate in float64), deflation by
 * projection, and the checks of an operator's output and of integer options.
 */
import { ConfigError, OspError, ShapeError } from '../../errors.ts';

/** A symmetric linear map R^dim -> R^dim, e.g. v -> H v for a loss Hessian H. */
export type LinearOperator = {
  dim: number;
  apply(v: Float64Array): Promise<Float64Array>;
};

// ---- small float64 vector kernels (dot products with float32 vectors accumulate in float64) ----

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function dot32(a: Float64Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function norm(a: Float64Array): number {
  return Math.sqrt(dot(a, a));
}

export function scale(a: Float64Array, s: number): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * s;
}

/** y += a x */
export function axpy(y: Float64Array, a: number, x: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

export function axpy32(y: Float64Array, a: number, x: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

/** x -= V V^T x for orthonormal V (twice: the Ritz vectors are orthonormal only to ~1e-7). */
export function project(x: Float64Array, V: Float64Array[]): void {
  for (let pass = 0; pass < 2; pass++) for (const v of V) axpy(x, -dot(x, v), v);
}

export async function applyChecked(op: LinearOperator, v: Float64Array, who: string): Promise<Float64Array> {
  const y = await op.apply(v);
  if (y.length !== op.dim) throw new ShapeError(`${who}: operator returned ${y.length} values for dimension ${op.dim}`);
  for (let i = 0; i < y.length; i++) {
    if (!Number.isFinite(y[i]!)) throw new OspError(`${who}: operator returned a non-finite value at index ${i}`);
  }
  // A copy: callers update the result in place, and an operator may hand back a buffer it reuses.
  return Float64Array.from(y);
}

export function checkDim(op: LinearOperator): number {
  if (!Number.isInteger(op.dim) || op.dim < 1) throw new ConfigError('dim', `operator dimension must be a positive integer, got ${op.dim}`);
  return op.dim;
}

export function checkInt(field: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(field, `must be an integer >= ${min}, got ${value}`);
}
