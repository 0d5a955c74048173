/**
 * Exact Hadamard matrices of the FULL width, for QuaRot-style "FFN Had" (hadamard.ts has the older
 * block-diagonal substitute, which mixes only as many channels as the largest power of two dividing
 * the width: 32 of 352). A Hadamard matrix H of order n has entries +-1 and H H^T = n I, so H / sqrt(n)
 * is orthogonal and spreads every input channel over all n output channels with equal weight.
 *
 * Constructions (all computed here, no tables):
 * - Sylvester: order 2^k, H[i, j] = (-1)^popcount(i & j) (symmetric).
 * - Paley I: order q + 1 for a prime power q = 3 (mod 4) (primes AND prime powers, e.g. 27, 243, 343:
 *   GF(p^e) is built from an irreducible polynomial found by trial division), H = I + [[0, 1^T], [-1, Q]]
 *   with Q the Jacobsthal matrix Q[x, y] = chi(x - y), chi the quadratic character of GF(q).
 *   Orders 4, 8, 12, 20, 24, 28, 32, 44, 48, 60, 68, 72, 80, 84, 104, 108, 128, 132, 140, ...
 * - Paley II: order 2 (q + 1) for a prime power q = 1 (mod 4) (primes and prime powers: 9, 25, 49, ...):
 *   the symmetric conference matrix C = [[0, 1^T], [1, Q]] with each 0 replaced by [[1, -1], [-1, -1]]
 *   and each +-1 by +-[[1, 1], [1, -1]]. Orders 12, 20, 28, 36, 52, 60, 76, 84, 100, 108, 124, ...
 * - Kronecker products H_a (x) H_b of any two constructible orders (closure of the above and 2).
 *
 * Every Hadamard order above 2 is a multiple of 4; an order is "supported" here when it is 1, 2, or a
 * product of 2s and Paley orders: 198 of the 256 multiples of 4 up to 1024. The other 58 are
 *   92 116 156 172 184 188 232 236 260 268 292 324 356 372 376 404 412 428 436 452 472 476 508 520
 *   532 536 584 596 604 612 652 668 712 716 732 756 764 772 808 836 852 856 872 876 892 904 932 940
 *   944 952 956 964 980 988 996 1004 1012 1016
 * (they need Williamson, Goethals-Seidel or other search-found constructions, not included here).
 * Of QuaRot's special orders (12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172) all are covered
 * EXCEPT 156 = 4 * 39 and 172 = 4 * 43 (Williamson-type in QuaRot). Llama's widths do not need
 * 172 here: 5504 = 344 * 16 and 11008 = 344 * 32, 344 = 343 + 1 a Paley I order (343 = 7^3).
 * osp-lab's default intermediate size 352 (hiddenSize 128) IS supported: 352 = 44 * 8 (44 = 43 + 1,
 * Paley I), so every channel is mixed with all 352, not only 32 as with the block-diagonal rotation.
 *
 * Layout and convention: for a width n the chosen factorisation is n = m * P with P = 2^k as large as
 * possible and m (the "core", 1 or a product of Paley orders) constructible; the matrix is
 * H_n = H_m (x) S_P, so index i = a * P + b (a < m, b < P), H_n[i, j] = H_m[a, a'] S_P[b, b'].
 * applyHadamard / hadamardRotateExact compute each row x -> x H_n / sqrt(n) (or x H_n^T / sqrt(n)
 * with `transpose`) without forming H_n: a Walsh-Hadamard transform (or a matmul with S_P) over the
 * b axis and a dense m x m product over the a axis, O(n (k + m)) per row.
 *
 * FFN Had with these: rotate down_proj's weight rows offline, W' = W H / sqrt(n) (applyHadamard on
 * the rows of W [out, in]), and its input rows online, x' = x H / sqrt(n) (hadamardRotateExact);
 * then W' x'^T = W H H^T x^T / n = W x^T. (Equivalently use `transpose` on both sides.)
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.ts';
import { fwht } from './hadamard.ts';

// ---------------------------------------------------------------------------------------------------
// Number theory and finite fields.

/** The largest power of two dividing n (n a positive safe integer). */
function twoPart(n: number): number {
  let p = 1;
  while (n % (2 * p) === 0) p *= 2;
  return p;
}

const primePowerMemo = new Map<number, { p: number; e: number } | null>();
/** q = p^e with p prime and e >= 1, or null. */
function primePower(q: number): { p: number; e: number } | null {
  if (!Number.isSafeInteger(q) || q < 2) return null;
  let hit = primePowerMemo.get(q);
  if (hit !== undefined) return hit;
  let p = q;
  for (let d = 2; d * d <= q; d++) {
    if (q % d === 0) {
      p = d;
      break;
    }
  }
  let r = q;
  let e = 0;
  while (r % p === 0) {
    r /= p;
    e++;
  }
  hit = r === 1 ? { p, e } : null;
  primePowerMemo.set(q, hit);
  return hit;
}

/** Remainder of polynomial a modulo the monic polynomial f over GF(p); coefficients low degree first. */
function polyMod(a: number[], f: number[], p: number): number[] {
  const r = a.slice();
  const df = f.length - 1;
  for (let i = r.length - 1; i >= df; i--) {
    const c = r[i]! % p;
    if (c === 0) continue;
    for (let j = 0; j <= df; j++) r[i - df + j] = (((r[i - df + j]! - c * f[j]!) % p) + p) % p;
  }
  return r.slice(0, df).map((v) => ((v % p) + p) % p);
}

/** The first monic irreducible polynomial of degree e over GF(p) (trial division by all monic
 * polynomials of degree 1 .. e/2). Coefficients low degree first, length e + 1. */
function irreducible(p: number, e: number): number[] {
  const count = p ** e;
  for (let code = 0; code < count; code++) {
    const f: number[] = [];
    for (let i = 0, c = code; i < e; i++, c = Math.floor(c / p)) f.push(c % p);
    f.push(1);
    if (f[0] === 0) continue; // divisible by t
    let reducible = false;
    for (let d = 1; d <= Math.floor(e / 2) && !reducible; d++) {
      const n = p ** d;
      for (let g = 0; g < n && !reducible; g++) {
        const h: number[] = [];
        for (let i = 0, c = g; i < d; i++, c = Math.floor(c / p)) h.push(c % p);
        h.push(1);
        if (polyMod(f, h, p).every((v) => v === 0)) reducible = true;
      }
    }
    if (!reducible) return f;
  }
  throw new Error(`no irreducible polynomial of degree ${e} over GF(${p})`); // unreachable
}

/**
 * GF(q), q = p^e, with elements coded 0 .. q - 1 as base-p digit strings (polynomial coefficients, so
 * 0 is the zero element): returns sub(x, y) = x - y and the quadratic character chi (0, +1, -1).
 */
function finiteField(q: number): { sub: (x: number, y: number) => number; chi: Int8Array } {
  const pp = primePower(q);
  if (!pp) throw new Error(`${q} is not a prime power`);
  const { p, e } = pp;
  const chi = new Int8Array(q).fill(-1);
  chi[0] = 0;
  if (e === 1) {
    for (let x = 1; x < p; x++) chi[(x * x) % p] = 1;
    return { sub: (x, y) => (x - y + p) % p, chi };
  }
  const f = irreducible(p, e);
  const digits = (x: number) => {
    const d: number[] = [];
    for (let i = 0; i < e; i++, x = Math.floor(x / p)) d.push(x % p);
    return d;
  };
  const code = (d: number[]) => d.reduceRight((acc, v) => acc * p + v, 0);
  for (let x = 1; x < q; x++) {
    const d = digits(x);
    const sq = new Array<number>(2 * e - 1).fill(0);
    for (let i = 0; i < e; i++) for (let j = 0; j < e; j++) sq[i + j] = (sq[i + j]! + d[i]! * d[j]!) % p;
    chi[code(polyMod(sq, f, p))] = 1;
  }
  const sub = (x: number, y: number) => {
    let out = 0;
    for (let i = 0, w = 1; i < e; i++, w *= p, x = Math.floor(x / p), y = Math.floor(y / p)) {
      out += (((x % p) - (y % p) + p) % p) * w;
    }
    return out;
  };
  return { sub, chi };
}

// ---------------------------------------------------------------------------------------------------
// Which orders are constructible.

type Paley = { kind: 'I' | 'II'; q: number };

/** The Paley construction reaching order n directly, if any (Paley I preferred, then primes). */
function paleyFor(n: number): Paley | null {
  if (!Number.isSafeInteger(n) || n < 4 || n % 4 !== 0) return null;
  const q1 = n - 1;
  const q2 = n / 2 - 1;
  const i = q1 % 4 === 3 && primePower(q1) ? { kind: 'I' as const, q: q1 } : null;
  const ii = q2 % 4 === 1 && primePower(q2) ? { kind: 'II' as const, q: q2 } : null;
  if (i && ii && primePower(q1)!.e > 1 && primePower(q2)!.e === 1) return ii;
  return i ?? ii;
}

/** A base factor: 2 (the order-2 Sylvester matrix) or a Paley order. */
const isBase = (d: number) => d === 2 || paleyFor(d) !== null;

const supportedMemo = new Map<number, number[] | null>();
/** A list of base factors whose product is n ([] for n = 1), or null when n is not reachable. */
function baseFactors(n: number): number[] | null {
  if (n === 1) return [];
  if (!Number.isSafeInteger(n) || n < 1 || (n > 2 && n % 4 !== 0)) return null;
  let hit = supportedMemo.get(n);
  if (hit !== undefined) return hit;
  hit = null;
  if (n === 2 || paleyFor(n)) hit = [n];
  else {
    // Try base divisors d (largest first, so a product of few big Paley matrices comes first).
    const divisors: number[] = [];
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        divisors.push(d);
        if (d * d !== n) divisors.push(n / d);
      }
    }
    divisors.sort((a, b) => b - a);
    for (const d of divisors) {
      if (!isBase(d)) continue;
      const rest = baseFactors(n / d);
      if (rest) {
        hit = [d, ...rest];
        break;
      }
    }
  }
  supportedMemo.set(n, hit);
  return hit;
}

/**
 * Whether exactHadamard can build a Hadamard matrix of order n: n = 1, 2, or a product of 2s and
 * Paley I/II orders (every such order is a multiple of 4).
 * @example exactHadamardOrderSupported(352) // true (44 * 8); exactHadamardOrderSupported(356) // false
 */
export function exactHadamardOrderSupported(n: number): boolean {
  return baseFactors(n) !== null;
}

/** How a width is built: n = core * pow2, H_n = H_core (x) S_pow2, H_core the Kronecker product of
 * the Paley matrices of orders coreFactors (in that order; [] when core = 1). */
export interface ExactHadamardPlan {
  n: number;
  pow2: number;
  core: number;
  coreFactors: number[];
}

/**
 * The factorisation used for order n: the largest power of two P such that n / P is constructible
 * (so the core, applied densely, is as small as possible). Throws the unsupported-width ConfigError.
 * @example exactHadamardPlan(11008) // { n: 11008, pow2: 32, core: 344, coreFactors: [344] }
 */
export function exactHadamardPlan(n: number): ExactHadamardPlan {
  assertSupported(n);
  for (let p = twoPart(n); p >= 1; p /= 2) {
    const f = baseFactors(n / p);
    if (f) {
      // f holds Paley orders only: a factor 2 in the core would have gone into a larger P.
      return { n, pow2: p, core: n / p, coreFactors: f };
    }
  }
  throw new Error('unreachable');
}

/**
 * The nearest supported orders: below = the largest <= n (at least 1), above = the smallest >= n (both
 * n when n is supported).
 * @example nearestHadamardOrders(356) // { below: 352, above: 360 }
 */
export function nearestHadamardOrders(n: number): { below: number; above: number } {
  if (!Number.isFinite(n) || n < 1) return { below: 1, above: 1 };
  let below = Math.floor(n);
  while (below > 1 && !exactHadamardOrderSupported(below)) below--;
  let above = Math.ceil(n);
  while (!exactHadamardOrderSupported(above)) above++;
  return { below, above };
}

function assertSupported(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError('hadamard.width', `expected a positive integer order, got ${n}`);
  }
  if (exactHadamardOrderSupported(n)) return;
  const { below, above } = nearestHadamardOrders(n);
  const p = twoPart(n);
  const why =
    n % 4 !== 0
      ? 'a Hadamard order above 2 must be a multiple of 4'
      : `${n} = ${p} * ${n / p} and no core ${n / p} * 2^j, 2^j <= ${p}, is reachable`;
  throw new ConfigError(
    'hadamard.width',
    `no known Hadamard matrix of order ${n} (${why}; constructions here: Sylvester 2^k, Paley I q+1, ` +
      `Paley II 2(q+1) and Kronecker products); nearest supported orders: ${below} and ${above}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Matrices. Caches hold +-1 Float64Arrays and are never handed out (callers get copies).

/** Least-recently-used cache with a budget in bytes; the newest entry is always kept. */
class Lru {
  private map = new Map<number, Float64Array>();
  private bytes = 0;
  constructor(private readonly budget: number) {}
  get(k: number): Float64Array | undefined {
    const v = this.map.get(k);
    if (v) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: number, v: Float64Array): void {
    const old = this.map.get(k);
    if (old) this.bytes -= old.byteLength;
    this.map.delete(k);
    this.map.set(k, v);
    this.bytes += v.byteLength;
    for (const [key, val] of this.map) {
      if (this.bytes <= this.budget || key === k) break;
      this.map.delete(key);
      this.bytes -= val.byteLength;
    }
  }
}

const coreCache = new Lru(64 << 20);
const denseCache = new Lru(64 << 20);

/** Paley I or II matrix of order n, +-1, row-major. */
function paleyMatrix(n: number, pal: Paley): Float64Array {
  const { q, kind } = pal;
  const { sub, chi } = finiteField(q);
  const prime = primePower(q)!.e === 1;
  // Jacobsthal row x: jac[y] = chi(x - y) (0 on the diagonal).
  const jac = new Int8Array(q);
  const jacobsthalRow = (x: number) => {
    if (prime) for (let y = 0; y < q; y++) jac[y] = chi[x >= y ? x - y : x - y + q]!;
    else for (let y = 0; y < q; y++) jac[y] = chi[sub(x, y)]!;
  };
  const h = new Float64Array(n * n);
  if (kind === 'I') {
    // H = I + S, S = [[0, 1^T], [-1, Q]] skew (chi(-1) = -1 for q = 3 mod 4), S S^T = q I.
    h[0] = 1;
    for (let j = 1; j < n; j++) {
      h[j] = 1;
      h[j * n] = -1;
    }
    for (let x = 0; x < q; x++) {
      jacobsthalRow(x);
      const row = (x + 1) * n + 1;
      for (let y = 0; y < q; y++) h[row + y] = jac[y]!;
      h[row + x] = 1;
    }
    return h;
  }
  // Paley II: conference C = [[0, 1^T], [1, Q]] (symmetric, C C^T = q I); 0 -> [[1, -1], [-1, -1]],
  // +-1 -> +-[[1, 1], [1, -1]].
  const m = q + 1;
  const put = (i: number, j: number, v: number) => {
    const r0 = 2 * i * n + 2 * j;
    const r1 = r0 + n;
    if (v === 0) {
      h[r0] = 1;
      h[r0 + 1] = -1;
      h[r1] = -1;
      h[r1 + 1] = -1;
    } else {
      h[r0] = v;
      h[r0 + 1] = v;
      h[r1] = v;
      h[r1 + 1] = -v;
    }
  };
  put(0, 0, 0);
  for (let j = 1; j < m; j++) {
    put(0, j, 1);
    put(j, 0, 1);
  }
  for (let x = 0; x < q; x++) {
    jacobsthalRow(x);
    for (let y = 0; y < q; y++) put(x + 1, y + 1, jac[y]!);
  }
  return h;
}

/**
 * Kronecker product A (x) B of row-major square matrices of orders a and b: entry (ia * b + ib,
 * ja * b + jb) is A[ia, ja] * B[ib, jb].
 * @example kronecker(h2, 2, h2, 2) // the 4 x 4 Sylvester matrix
 */
export function kronecker(am: ArrayLike<number>, a: number, bm: ArrayLike<number>, b: number): Float64Array {
  if (am.length !== a * a || bm.length !== b * b) {
    throw new ConfigError('hadamard.kronecker', `expected ${a} x ${a} and ${b} x ${b} matrices, got ${am.length} and ${bm.length} values`);
  }
  const n = a * b;
  const out = new Float64Array(n * n);
  for (let ia = 0; ia < a; ia++) {
    for (let ja = 0; ja < a; ja++) {
      const v = am[ia * a + ja]!;
      for (let ib = 0; ib < b; ib++) {
        const row = (ia * b + ib) * n + ja * b;
        for (let jb = 0; jb < b; jb++) out[row + jb] = v * bm[ib * b + jb]!;
      }
    }
  }
  return out;
}

/** The unscaled Sylvester matrix of order p (a power of two): entry (-1)^popcount(i & j). */
function sylvester(p: number): Float64Array {
  const h = new Float64Array(p * p);
  h[0] = 1;
  // Doubling in place: the top-left s x s block is S_s; fill the other three blocks from it.
  for (let s = 1; s < p; s *= 2) {
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < s; j++) {
        const v = h[i * p + j]!;
        h[i * p + j + s] = v;
        h[(i + s) * p + j] = v;
        h[(i + s) * p + j + s] = -v;
      }
    }
  }
  return h;
}

/** A single base matrix: order 2 (Sylvester) or Paley. */
function baseMatrix(d: number): Float64Array {
  if (d === 1 || d === 2) return sylvester(d);
  return paleyMatrix(d, paleyFor(d)!);
}

/** The +-1 core matrix of the plan (Kronecker product of its factors), cached. */
function coreMatrix(plan: ExactHadamardPlan): Float64Array {
  let c = coreCache.get(plan.core);
  if (!c) {
    c = new Float64Array([1]);
    let order = 1;
    for (const d of plan.coreFactors) {
      c = kronecker(c, order, baseMatrix(d), d);
      order *= d;
    }
    coreCache.set(plan.core, c);
  }
  return c;
}

/**
 * The exact Hadamard matrix of order n: entries +-1 (unscaled: divide by sqrt(n) for an orthogonal
 * matrix), row-major, H H^T = n I. Built as H_core (x) S_pow2 (see exactHadamardPlan); a fresh copy
 * of an LRU-cached matrix (64 MiB budget). Dense: n^2 doubles, so prefer applyHadamard for large n.
 * Throws a ConfigError naming the nearest supported orders for an unsupported n.
 * @example exactHadamard(12) // a 12 x 12 Paley I matrix (q = 11)
 */
export function exactHadamard(n: number): Float64Array {
  const plan = exactHadamardPlan(n);
  let h = denseCache.get(n);
  if (!h) {
    h = plan.pow2 === 1 ? coreMatrix(plan) : kronecker(coreMatrix(plan), plan.core, sylvester(plan.pow2), plan.pow2);
    denseCache.set(n, h);
  }
  return h.slice();
}

// ---------------------------------------------------------------------------------------------------
// Applying H without forming it (fwht: the Walsh-Hadamard transform of hadamard.ts).

/**
 * Each row x of a row-major [rows, n] matrix becomes x H_n / sqrt(n) (x H_n^T / sqrt(n) with
 * `transpose`), H_n = exactHadamard(n). Float64 inside, one rounding to float32: a Walsh-Hadamard
 * transform over the power-of-two factor and a dense core product, O(n (log2 P + core)) per row.
 * Use it offline on down_proj's weight rows (W [out, in]: W' = W H / sqrt(n)).
 * @example applyHadamard(x, 3, 384) // x: Float32Array of 3 * 384 values
 */
export function applyHadamard(x: Float32Array, rows: number, n: number, opts: { transpose?: boolean } = {}): Float32Array {
  const plan = exactHadamardPlan(n);
  if (!Number.isSafeInteger(rows) || rows < 0 || x.length !== rows * n) {
    throw new ConfigError('hadamard.x', `expected ${rows} x ${n} = ${rows * n} values, got ${x.length}`);
  }
  const { core: m, pow2: p } = plan;
  const c = coreMatrix(plan);
  const t = opts.transpose === true;
  const s = 1 / Math.sqrt(n);
  const buf = new Float64Array(n);
  const acc = new Float64Array(n);
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    for (let i = 0; i < n; i++) buf[i] = x[base + i]!;
    if (p > 1) for (let a = 0; a < m; a++) fwht(buf, a * p, p);
    let res = buf;
    if (m > 1) {
      // out[a', b] = sum_a C[a, a'] buf[a, b]  (C^T for transpose: C[a', a]).
      acc.fill(0);
      for (let a2 = 0; a2 < m; a2++) {
        const o = a2 * p;
        for (let a = 0; a < m; a++) {
          const w = t ? c[a2 * m + a]! : c[a * m + a2]!;
          const i0 = a * p;
          if (w > 0) for (let b = 0; b < p; b++) acc[o + b]! += buf[i0 + b]!;
          else for (let b = 0; b < p; b++) acc[o + b]! -= buf[i0 + b]!;
        }
      }
      res = acc;
    }
    for (let i = 0; i < n; i++) out[base + i] = res[i]! * s;
  }
  return out;
}

/** Sylvester pieces of at most 1024 for the tf path (S_P = S_a (x) S_b for P = a b). */
function sylvesterPieces(p: number): number[] {
  const pieces: number[] = [];
  while (p > 1024) {
    pieces.push(1024);
    p /= 1024;
  }
  if (p > 1) pieces.push(p);
  return pieces;
}

/**
 * The online half of exact FFN Had with tf ops: each row x of [rows, n] becomes x H_n / sqrt(n)
 * (x H_n^T / sqrt(n) with `transpose`), the same map as applyHadamard. Implemented as matmuls along
 * the axes of x reshaped to [rows, core, P]: the dense core (scaled by 1/sqrt(n)) on the core axis,
 * Sylvester matrices (pieces of at most 1024) on the P axis; intermediates live in one tf.tidy, so the
 * only tensor left is the result.
 * @example const y = hadamardRotateExact(h); // h: down_proj's input [N, intermediate]
 */
export function hadamardRotateExact(x: tf.Tensor2D, opts: { transpose?: boolean } = {}): tf.Tensor2D {
  const [rows, n] = x.shape;
  const plan = exactHadamardPlan(n);
  if (n === 1) return tf.clone(x);
  const t = opts.transpose === true;
  const scale = 1 / Math.sqrt(n);
  const factors: { order: number; mat: Float32Array; transposeB: boolean }[] = [];
  if (plan.core > 1) {
    const c = coreMatrix(plan);
    factors.push({ order: plan.core, mat: Float32Array.from(c, (v) => v * scale), transposeB: t });
  }
  for (const piece of sylvesterPieces(plan.pow2)) {
    // Sylvester matrices are symmetric, so transpose is a no-op for them.
    factors.push({ order: piece, mat: Float32Array.from(sylvester(piece)), transposeB: false });
  }
  if (plan.core === 1) factors[0]!.mat = factors[0]!.mat.map((v) => v * scale);
  return tf.tidy(() => {
    let y: tf.Tensor = x;
    let outer = rows; // product of the axes before the current factor (rows included)
    let inner = n; // product of the axes after it
    for (const f of factors) {
      inner /= f.order;
      const m = tf.tensor2d(f.mat, [f.order, f.order]);
      if (inner === 1) {
        y = tf.matMul(tf.reshape(y, [outer, f.order]) as tf.Tensor2D, m, false, f.transposeB);
      } else {
        // Contract the middle axis of [outer, order, inner]: move it last, multiply, move it back.
        const moved = tf.reshape(tf.transpose(tf.reshape(y, [outer, f.order, inner]), [0, 2, 1]), [outer * inner, f.order]);
        const prod = tf.matMul(moved as tf.Tensor2D, m, false, f.transposeB);
        y = tf.transpose(tf.reshape(prod, [outer, inner, f.order]), [0, 2, 1]);
      }
      outer *= f.order;
    }
    return tf.reshape(y, [rows, n]) as tf.Tensor2D;
  });
}
