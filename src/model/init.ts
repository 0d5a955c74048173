/**
 * Parameter specs and their initial values. Values are drawn in JS from the seeded Rng (in float64,
 * stored as float32), so a given seed gives bit-identical initial weights on every backend.
 */
import { Rng } from '../utils/rng.ts';

export type Init =
  | { kind: 'normal'; std: number }
  | { kind: 'ones' }
  | { kind: 'zeros' }
  /** A random orthogonal matrix (QR of a Gaussian matrix, signs fixed as in torch.nn.init.orthogonal_). */
  | { kind: 'orthogonal' };

/** One learnable tensor of the model: its Hugging Face-style name, shape and init. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
}

/** Draws the initial values of `spec` from `rng`. */
export function initialValues(spec: ParamSpec, rng: Rng): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  switch (spec.init.kind) {
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'zeros':
      return new Float32Array(n);
    case 'normal':
      return Float32Array.from(rng.normals(n, spec.init.std));
    case 'orthogonal': {
      if (spec.shape.length !== 2) throw new Error(`orthogonal init needs a matrix, ${spec.name} is [${spec.shape}]`);
      return Float32Array.from(orthogonal(spec.shape[0]!, spec.shape[1]!, rng));
    }
  }
}

/**
 * A rows x cols matrix with orthonormal rows (rows <= cols) or columns (rows > cols), row-major.
 * Modified Gram-Schmidt in float64 on a Gaussian matrix; each vector keeps the sign convention of a
 * QR with positive diagonal of R, which makes the distribution uniform (Haar).
 */
export function orthogonal(rows: number, cols: number, rng: Rng): Float64Array {
  const k = Math.min(rows, cols);
  const len = Math.max(rows, cols);
  // Build k orthonormal vectors of length `len`.
  const q: Float64Array[] = [];
  for (let i = 0; i < k; i++) {
    const v = rng.normals(len);
    for (const u of q) {
      let dot = 0;
      for (let j = 0; j < len; j++) dot += u[j]! * v[j]!;
      for (let j = 0; j < len; j++) v[j]! -= dot * u[j]!;
    }
    let norm = 0;
    for (let j = 0; j < len; j++) norm += v[j]! * v[j]!;
    norm = Math.sqrt(norm);
    for (let j = 0; j < len; j++) v[j]! /= norm;
    q.push(v);
  }
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < len; j++) {
      // rows <= cols: vector i is row i; otherwise vector i is column i.
      if (rows <= cols) out[i * cols + j] = q[i]![j]!;
      else out[j * cols + i] = q[i]![j]!;
    }
  }
  return out;
}
