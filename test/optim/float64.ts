/**
 * Float64 oracles for the optimizer tests, in plain JS loops. Nothing here imports the code under
 * test: coefficients are copied from shared/reference/muon.md and every formula is re-derived.
 */

/** Row-major m x n matrix. */
export interface Mat {
  m: number;
  n: number;
  d: Float64Array;
}

export const QUINTIC: [number, number, number][] = Array.from({ length: 5 }, () => [3.4445, -4.775, 2.0315]);
export const POLAR: [number, number, number][] = [
  [8.156554524902461, -22.48329292557795, 15.878769915207462],
  [4.042929935166739, -2.808917465908714, 0.5000178451051316],
  [3.8916678022926607, -2.772484153217685, 0.5060648178503393],
  [3.285753657755655, -2.3681294933425376, 0.46449024233003106],
  [2.3465413258596377, -1.7097828382687081, 0.42323551169305323],
];

export { rng } from '../helpers/prng.ts';

/** n standard normals (Box-Muller), rounded to float32 so tfjs and the oracle see the same input. */
export function randn(n: number, next: () => number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - next();
    const v = next();
    out[i] = Math.fround(scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  }
  return out;
}

export function mat(m: number, n: number, d: Float64Array = new Float64Array(m * n)): Mat {
  return { m, n, d };
}

export function matmul(a: Mat, b: Mat): Mat {
  const c = mat(a.m, b.n);
  for (let i = 0; i < a.m; i++)
    for (let k = 0; k < a.n; k++) {
      const aik = a.d[i * a.n + k]!;
      for (let j = 0; j < b.n; j++) c.d[i * b.n + j] += aik * b.d[k * b.n + j]!;
    }
  return c;
}

export function transpose(a: Mat): Mat {
  const t = mat(a.n, a.m);
  for (let i = 0; i < a.m; i++) for (let j = 0; j < a.n; j++) t.d[j * a.m + i] = a.d[i * a.n + j]!;
  return t;
}

export function frobenius(a: Mat): number {
  let s = 0;
  for (const x of a.d) s += x * x;
  return Math.sqrt(s);
}

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations, ascending. */
export function symmetricEigenvalues(s: Mat): number[] {
  const n = s.n;
  const a = Float64Array.from(s.d);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-26) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        // Rotation angle that zeroes a[p][q] (Golub & Van Loan, sym.schur2).
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - sn * akq;
          a[k * n + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - sn * aqk;
          a[q * n + k] = sn * apk + c * aqk;
        }
      }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]!).sort((x, y) => x - y);
}

/** Singular values of a, ascending: square roots of the eigenvalues of the smaller Gram matrix. */
export function singularValues(a: Mat): number[] {
  const gram = a.m <= a.n ? matmul(a, transpose(a)) : matmul(transpose(a), a);
  return symmetricEigenvalues(gram).map((e) => Math.sqrt(Math.max(e, 0)));
}

/** A random orthogonal n x n matrix (Gram-Schmidt on Gaussian columns, done twice for accuracy). */
export function orthogonal(n: number, next: () => number): Mat {
  const q = mat(n, n, randn(n * n, next));
  for (let j = 0; j < n; j++)
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q.d[i * n + j]! * q.d[i * n + k]!;
        for (let i = 0; i < n; i++) q.d[i * n + j] -= dot * q.d[i * n + k]!;
      }
      let norm = 0;
      for (let i = 0; i < n; i++) norm += q.d[i * n + j]! ** 2;
      for (let i = 0; i < n; i++) q.d[i * n + j] /= Math.sqrt(norm);
    }
  return q;
}

/** Newton-Schulz in float64, straight from muon.md. */
export function newtonSchulz64(g: Mat, tuples: [number, number, number][], normScale = 1, normEps = 1e-7): Mat {
  const tall = g.m > g.n;
  let x = tall ? transpose(g) : mat(g.m, g.n, Float64Array.from(g.d));
  const scale = frobenius(x) * normScale + normEps;
  x = mat(
    x.m,
    x.n,
    x.d.map((v) => v / scale),
  );
  for (const [a, b, c] of tuples) {
    const A = matmul(x, transpose(x));
    const AA = matmul(A, A);
    const B = mat(
      A.m,
      A.n,
      A.d.map((v, i) => b * v + c * AA.d[i]!),
    );
    const BX = matmul(B, x);
    x = mat(
      x.m,
      x.n,
      x.d.map((v, i) => a * v + BX.d[i]!),
    );
  }
  return tall ? transpose(x) : x;
}

/** max |a - b| / max |b|: error relative to the oracle's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / (den || 1);
}
