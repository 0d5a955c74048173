/**
 * The eigen-decomposition of a symmetric tridiagonal matrix (Lanczos' T) in float64: tridiagonalEigen,
 * the implicit QL algorithm.
 */
import { OspError, ShapeError } from '../../errors.ts';

export interface TridiagonalEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** vectors[k]: the unit eigenvector of values[k] (length n). */
  vectors: Float64Array[];
}

/**
 * All eigenvalues and eigenvectors of the symmetric tridiagonal matrix with diagonal `alphas` and
 * off-diagonal `betas` (length n - 1; a length-n array's last entry is ignored), in float64: the
 * implicit QL algorithm with Wilkinson-type shifts (Wilkinson & Reinsch's tql2). Float32 here would
 * limit Ritz values to ~1e-7 relative and merge close eigenvalues.
 *
 * @example
 *   const { values, vectors } = tridiagonalEigen(Float64Array.of(2, 2), Float64Array.of(1)); // 3, 1
 */
export function tridiagonalEigen(alphas: ArrayLike<number>, betas: ArrayLike<number>): TridiagonalEigen {
  const n = alphas.length;
  if (n === 0) return { values: new Float64Array(0), vectors: [] };
  if (betas.length < n - 1) throw new ShapeError(`tridiagonalEigen: need ${n - 1} off-diagonal entries, got ${betas.length}`);
  const d = Float64Array.from(alphas);
  // e[i] couples rows i and i + 1; e[n - 1] = 0 terminates every search for a negligible coupling.
  const e = new Float64Array(n);
  for (let i = 0; i < n - 1; i++) e[i] = betas[i]!;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(d[i]!) || !Number.isFinite(e[i]!)) throw new OspError('tridiagonalEigen: non-finite entry in T');
  }
  // V (row-major, n x n) accumulates the rotations: column k ends up as the eigenvector of d[k].
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;

  const eps = 2 ** -52;
  let shiftSum = 0;
  let tst = 0;
  for (let l = 0; l < n; l++) {
    tst = Math.max(tst, Math.abs(d[l]!) + Math.abs(e[l]!));
    // Find the first negligible coupling at or below l: d[l..m] is the unreduced block to work on.
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst) m++;
    let iter = 0;
    while (m > l) {
      if (++iter > 60) throw new OspError(`tridiagonalEigen: QL did not converge for eigenvalue ${l} of ${n}`);
      // Shift: the eigenvalue of the leading 2x2 block [d_l, e_l; e_l, d_{l+1}] closer to d_l
      // (Wilkinson's choice; it makes convergence cubic for symmetric matrices). Subtracting it
      // from the whole block (tracked in shiftSum) keeps the rotations below shift-free.
      const g0 = d[l]!;
      let p = (d[l + 1]! - g0) / (2 * e[l]!);
      let r = Math.hypot(p, 1);
      if (p < 0) r = -r;
      d[l] = e[l]! / (p + r);
      d[l + 1] = e[l]! * (p + r);
      const dl1 = d[l + 1]!;
      let h = g0 - d[l]!;
      for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
      shiftSum += h;

      // Implicit QL sweep from the bottom of the block up: Givens rotations chase the bulge.
      p = d[m]!;
      let c = 1;
      let c2 = 1;
      let c3 = 1;
      const el1 = e[l + 1]!;
      let s = 0;
      let s2 = 0;
      for (let i = m - 1; i >= l; i--) {
        c3 = c2;
        c2 = c;
        s2 = s;
        const g = c * e[i]!;
        h = c * p;
        r = Math.hypot(p, e[i]!);
        e[i + 1] = s * r;
        s = e[i]! / r;
        c = p / r;
        p = c * d[i]! - s * g;
        d[i + 1] = h + s * (c * g + s * d[i]!);
        for (let k = 0; k < n; k++) {
          const row = k * n;
          const vi1 = V[row + i + 1]!;
          const vi = V[row + i]!;
          V[row + i + 1] = s * vi + c * vi1;
          V[row + i] = c * vi - s * vi1;
        }
      }
      p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
      e[l] = s * p;
      d[l] = c * p;
      if (Math.abs(e[l]!) <= eps * tst) break;
    }
    d[l] = d[l]! + shiftSum;
    e[l] = 0;
  }

  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[b]! - d[a]!);
  const values = Float64Array.from(order, (k) => d[k]!);
  const vectors = order.map((k) => {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = V[i * n + k]!;
    return v;
  });
  return { values, vectors };
}
