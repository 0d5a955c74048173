/**
 * GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
 * Transformers") for one linear layer, on the CPU in float64: the optional "+GPTQ" of OSP's W4 setting
 * (damping 0.01 of the mean Hessian diagonal, block 128).
 *
 * Layout: osp-lab stores a linear weight as W [out, in], row-major, y = x W^T (see weights.ts). GPTQ
 * quantizes the columns of W (input features) one after another and, after each, moves the error it made
 * onto the columns not yet quantized so that the layer's output on the calibration inputs changes least:
 * the OBS update w_j -= (w_i - q_i) / [H^-1]_ii * [H^-1]_ij, with H^-1 downdated after every column.
 * With U the upper Cholesky factor of H^-1 (H^-1 = U^T U), row i of U is row i of the downdated inverse
 * divided by sqrt of its diagonal, so the update reads e = (w_i - q_i) / U_ii, w_j -= e U_ij.
 *
 * Conventions (all chosen here; the test file checks them against a plain column-by-column reference):
 * - Hessian: accumulateHessian adds the plain sum X^T X (no 2/N factor). GPTQ's result does not depend
 *   on a positive scale of H (the damping is relative to the mean diagonal), so any scaling gives the
 *   same quantized weights up to float64 rounding.
 * - Integer grid and scale: exactly RTN's (quantizeWeightRtn): symmetric, qmax = 2^(bits-1) - 1, codes
 *   clamped to [-qmax - 1, qmax], rounding half to even, scale = float32(max|w| / qmax) (1 for an all-zero
 *   row or group), dequantized value = float32(q * scale). The scales are obtained by calling
 *   quantizeWeightRtn itself on the weights they are taken from (rounded to float32), so the grid, the
 *   zero-group rule and, with `clipSearch`, QuaRot's MSE clip search are RTN's own code.
 * - Which weights the scales come from:
 *     per output channel (no groupSize): the rows of the original W (dead columns zeroed), before any
 *       update, as the reference implementation does;
 *     groups, no act-order (dynamic groups, the reference's default): group g's scales are taken when
 *       GPTQ reaches its first column, from the weights as they are at that moment, i.e. with every
 *       update from all earlier columns applied. (The reference implementation reads them from its
 *       lazily updated copy, which misses the updates of the current block's earlier columns when a
 *       group starts inside a block; here blocks are cut at group starts so the result does not depend
 *       on blockSize.)
 *     groups with act-order, or `staticGroups`: static groups: every group's scales come from the
 *       original W (dead columns zeroed) before any update, for the groups of consecutive ORIGINAL
 *       columns; a column processed at any point of the permuted order uses its original group's
 *       scale. The result keeps RTN's layout (scales [out, in / groupSize]), so it deploys like RTN.
 *       (Act-order with dynamic groups over permuted columns, the reference's non-static mode, is not
 *       offered: its groups would not be contiguous input ranges.)
 * - Dead columns (diag(H) = 0: an input that was always zero): diag set to 1, the weight column zeroed
 *   before the scales are computed, so it quantizes to 0 and never influences a scale.
 * - Damping: H += dampPercent * mean(diag(H)) I after the dead-column fix (0.01 by default).
 * - Act-order: columns are processed by decreasing diag(H) (after the dead fix, before damping), ties
 *   in input order (a stable sort); the results are returned in the original column order.
 * - Error feedback uses the value actually returned, w - float32(q * scale).
 */
import { ConfigError, OspError, ShapeError } from '../errors.ts';
import { quantizeWeightRtn } from './weights.ts';

export interface GptqOptions {
  /** Integer width of the quantized weights (RTN's grid). */
  bits: 4 | 8;
  /** Input columns sharing one scale; must divide the input width. Default: one scale per output channel. */
  groupSize?: number;
  /** QuaRot's MSE clip search for each scale, run where the scale is taken (see the file comment). Default false. */
  clipSearch?: boolean;
  /** Damping added to the Hessian's diagonal, as a fraction of its mean diagonal. Default 0.01. */
  dampPercent?: number;
  /** Columns per block of the lazy batch update (speed only; the result does not depend on it). Default 128. */
  blockSize?: number;
  /** Process columns by decreasing Hessian diagonal. Default false. With groups it implies static groups. */
  actOrder?: boolean;
  /** Group scales from the original weights before any update (always on with actOrder + groups). Default false. */
  staticGroups?: boolean;
}

export interface GptqResult {
  /** Fake-quantized weights float32(q * scale), [out, in], original column order. */
  dequantized: Float32Array;
  /** Integer codes q in [-qmax - 1, qmax], [out, in], original column order. */
  codes: Int8Array;
  /** Scales [out, in / groupSize] (one column without groups), groups of consecutive original columns. */
  scales: Float32Array;
  /** With actOrder: perm[p] is the original column processed p-th; otherwise undefined. */
  perm?: Int32Array;
}

/** Round half to even (torch.round, tf.round, and quantizeWeightRtn). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Adds one batch of calibration inputs to a Hessian accumulator: H += X^T X, with X [rows, cols]
 * row-major (the layer's inputs, one token a row) and H [cols, cols] row-major float64 (start from
 * zeros). H stays exactly symmetric. Accumulates in float64 over chunks of tokens.
 *
 * @example const h = new Float64Array(256 * 256); for (const x of batches) accumulateHessian(h, x, x.length / 256, 256);
 */
export function accumulateHessian(h: Float64Array, x: Float32Array, rows: number, cols: number): void {
  if (h.length !== cols * cols) {
    throw new ShapeError(`accumulateHessian: H must hold ${cols} x ${cols} = ${cols * cols} values, got ${h.length}`);
  }
  if (x.length !== rows * cols) {
    throw new ShapeError(`accumulateHessian: expected ${rows} x ${cols} = ${rows * cols} inputs, got ${x.length}`);
  }
  const T = 64; // tokens per chunk: the transposed chunk (cols x T doubles) stays in cache
  const xt = new Float64Array(cols * T);
  for (let t0 = 0; t0 < rows; t0 += T) {
    const tn = Math.min(T, rows - t0);
    // Column-major copy of the chunk: feature i's tn values are contiguous.
    for (let t = 0; t < tn; t++) {
      const src = (t0 + t) * cols;
      for (let i = 0; i < cols; i++) xt[i * tn + t] = x[src + i]!;
    }
    // Upper triangle, two rows of H at a time (each loaded column is used twice).
    let i = 0;
    for (; i + 1 < cols; i += 2) {
      const a = i * tn;
      const b = a + tn;
      // (i, i), (i, i+1), (i+1, i+1)
      let s00 = 0;
      let s01 = 0;
      let s11 = 0;
      for (let t = 0; t < tn; t++) {
        const u = xt[a + t]!;
        const v = xt[b + t]!;
        s00 += u * u;
        s01 += u * v;
        s11 += v * v;
      }
      h[i * cols + i] += s00;
      h[i * cols + i + 1] += s01;
      h[(i + 1) * cols + i + 1] += s11;
      for (let j = i + 2; j < cols; j++) {
        const c = j * tn;
        let s0 = 0;
        let s1 = 0;
        for (let t = 0; t < tn; t++) {
          const w = xt[c + t]!;
          s0 += xt[a + t]! * w;
          s1 += xt[b + t]! * w;
        }
        h[i * cols + j] += s0;
        h[(i + 1) * cols + j] += s1;
      }
    }
    if (i < cols) {
      const a = i * tn;
      let s = 0;
      for (let t = 0; t < tn; t++) s += xt[a + t]! * xt[a + t]!;
      h[i * cols + i] += s;
    }
  }
  // Mirror the upper triangle (which holds the full sums) into the lower one.
  for (let i = 1; i < cols; i++) for (let j = 0; j < i; j++) h[i * cols + j] = h[j * cols + i]!;
}

/**
 * The upper Cholesky factor U of H^-1 (H^-1 = U^T U, U upper triangular with a positive diagonal) of a
 * symmetric positive definite H [n, n], row-major float64; H is not modified.
 *
 * Computed without forming H^-1: with J the order-reversing permutation, the lower Cholesky factor L of
 * J H J gives H = (J L J)(J L J)^T, hence H^-1 = (J L^-1 J)^T (J L^-1 J) and U = J L^-1 J.
 * Throws OspError when H is not (numerically) positive definite.
 */
export function inverseCholeskyUpper(h: Float64Array, n: number): Float64Array {
  if (h.length !== n * n) throw new ShapeError(`inverseCholeskyUpper: expected ${n * n} values, got ${h.length}`);
  // L = chol(J H J), row-major lower triangle, row by row (Cholesky-Banachiewicz).
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    const hi = (n - 1 - i) * n + (n - 1);
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = h[hi - j]!; // (J H J)[i, j] = H[n-1-i, n-1-j]
      for (let k = 0; k < j; k++) s -= l[ri + k]! * l[rj + k]!;
      if (j === i) {
        if (!(s > 0) || !Number.isFinite(s)) {
          throw new OspError(
            `GPTQ: the (damped) Hessian is not positive definite (pivot ${s} at column ${n - 1 - i}); ` +
              `increase dampPercent or use more calibration data`,
          );
        }
        l[ri + i] = Math.sqrt(s);
      } else {
        l[ri + j] = s / l[rj + j]!;
      }
    }
  }
  // M = L^-1 (lower), row by row: M[i, :] = (e_i - sum_{k<i} L[i, k] M[k, :]) / L[i, i].
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let k = 0; k < i; k++) {
      const c = l[ri + k]!;
      if (c === 0) continue;
      const rk = k * n;
      for (let j = 0; j <= k; j++) m[ri + j] -= c * m[rk + j]!;
    }
    m[ri + i] += 1;
    const inv = 1 / l[ri + i]!;
    for (let j = 0; j <= i; j++) m[ri + j] *= inv;
  }
  // U = J M J.
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n + (n - 1);
    for (let j = i; j < n; j++) u[i * n + j] = m[src - j]!;
  }
  return u;
}

/**
 * GPTQ of one linear weight W [rows = out, cols = in] (row-major, y = x W^T) against the calibration
 * Hessian H [cols, cols] (accumulateHessian: X^T X; any positive scale of it gives the same result).
 * Neither input is modified. See the file comment for the conventions.
 *
 * @example
 *   const h = new Float64Array(256 * 256);
 *   accumulateHessian(h, inputs, tokens, 256);
 *   const { dequantized } = gptqQuantize(w, 704, 256, h, { bits: 4 });
 */
export function gptqQuantize(w: Float32Array, rows: number, cols: number, hessian: Float64Array, opts: GptqOptions): GptqResult {
  if (opts.bits !== 4 && opts.bits !== 8) {
    throw new ConfigError('bits', `GPTQ supports 4 or 8 bits, got ${String(opts.bits)}`);
  }
  if (w.length !== rows * cols) {
    throw new ShapeError(`gptqQuantize: expected ${rows} x ${cols} = ${rows * cols} weights, got ${w.length}`);
  }
  if (hessian.length !== cols * cols) {
    throw new ShapeError(`gptqQuantize: the Hessian must be ${cols} x ${cols} = ${cols * cols} values, got ${hessian.length}`);
  }
  const grouped = opts.groupSize !== undefined;
  const gs = opts.groupSize ?? cols;
  if (!Number.isInteger(gs) || gs < 1 || cols % gs !== 0) {
    throw new ConfigError('groupSize', `must be a positive integer dividing the input width ${cols}, got ${gs}`);
  }
  const damp = opts.dampPercent ?? 0.01;
  if (!(damp >= 0) || !Number.isFinite(damp)) {
    throw new ConfigError('dampPercent', `must be a finite number >= 0, got ${damp}`);
  }
  const blockSize = opts.blockSize ?? 128;
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new ConfigError('blockSize', `must be a positive integer, got ${blockSize}`);
  }
  const actOrder = opts.actOrder ?? false;
  const clipSearch = opts.clipSearch ?? false;
  const staticGroups = grouped && (actOrder || (opts.staticGroups ?? false));
  const dynamicGroups = grouped && !staticGroups;
  const n = cols;
  const groups = cols / gs;
  const qmax = 2 ** (opts.bits - 1) - 1;
  const qmin = -qmax - 1;

  // Dead columns: diag 1, weights zeroed.
  const h = Float64Array.from(hessian);
  const wz = Float32Array.from(w);
  for (let c = 0; c < n; c++) {
    const d = h[c * n + c]!;
    if (!Number.isFinite(d) || d < 0) {
      throw new OspError(`GPTQ: Hessian diagonal ${c} is ${d}; expected a finite value >= 0 (H = X^T X)`);
    }
    if (d === 0) {
      h[c * n + c] = 1;
      for (let r = 0; r < rows; r++) wz[r * cols + c] = 0;
    }
  }

  // Scales known before the loop: per channel, or static groups, from the original (dead-zeroed) weights.
  const scales = new Float32Array(rows * groups);
  if (!dynamicGroups) {
    scales.set(quantizeWeightRtn(wz, rows, cols, { bits: opts.bits, groupSize: gs, clipSearch }).scales);
  }

  // Processing order.
  let perm: Int32Array | undefined;
  if (actOrder) {
    const diag = new Float64Array(n);
    for (let c = 0; c < n; c++) diag[c] = h[c * n + c]!;
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((a, b) => diag[b]! - diag[a]! || a - b);
    perm = Int32Array.from(idx);
  }
  const orig = (p: number) => (perm ? perm[p]! : p);

  // Permuted, damped Hessian, then U = chol_upper(H^-1).
  const hp = perm ? new Float64Array(n * n) : h;
  if (perm) {
    for (let i = 0; i < n; i++) {
      const src = perm[i]! * n;
      for (let j = 0; j < n; j++) hp[i * n + j] = h[src + perm[j]!]!;
    }
  }
  let meanDiag = 0;
  for (let c = 0; c < n; c++) meanDiag += hp[c * n + c]!;
  meanDiag /= n;
  for (let c = 0; c < n; c++) hp[c * n + c] += damp * meanDiag;
  const u = inverseCholeskyUpper(hp, n);

  // Working weights in float64, columns in processing order.
  const wk = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) for (let p = 0; p < n; p++) wk[r * n + p] = wz[r * cols + orig(p)]!;
  // Scale column (group index in `scales`) of each processing position.
  const colGroup = new Int32Array(n);
  for (let p = 0; p < n; p++) colGroup[p] = Math.floor(orig(p) / gs);

  const codes = new Int8Array(rows * cols);
  const dequantized = new Float32Array(rows * cols);
  const errBuf = new Float64Array(rows * blockSize);
  const groupBuf = dynamicGroups ? new Float32Array(rows * gs) : undefined;

  for (let b1 = 0; b1 < n;) {
    let b2 = Math.min(b1 + blockSize, n);
    if (dynamicGroups) {
      // Cut blocks at group starts so that a group's first column starts a block: all earlier updates,
      // lazy ones included, are then applied to the whole group when its scales are taken.
      b2 = Math.min(b2, (Math.floor(b1 / gs) + 1) * gs);
      if (b1 % gs === 0) {
        const g = b1 / gs;
        for (let r = 0; r < rows; r++) for (let k = 0; k < gs; k++) groupBuf![r * gs + k] = wk[r * n + b1 + k]!;
        const s = quantizeWeightRtn(groupBuf!, rows, gs, { bits: opts.bits, clipSearch }).scales;
        for (let r = 0; r < rows; r++) scales[r * groups + g] = s[r]!;
      }
    }
    const bn = b2 - b1;
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      const eb = r * blockSize - b1;
      const sb = r * groups;
      for (let i = b1; i < b2; i++) {
        const x = wk[base + i]!;
        const scale = scales[sb + colGroup[i]!]!;
        const q = Math.min(qmax, Math.max(qmin, roundHalfEven(x / scale)));
        const dq = Math.fround(q * scale);
        const o = r * cols + orig(i);
        codes[o] = q;
        dequantized[o] = dq;
        const ui = i * n;
        const e = (x - dq) / u[ui + i]!;
        errBuf[eb + i] = e;
        if (e !== 0) for (let j = i + 1; j < b2; j++) wk[base + j] -= e * u[ui + j]!;
      }
    }
    // Lazy batch update of the columns after the block: W[:, b2:] -= E U[b1:b2, b2:].
    if (b2 < n) {
      for (let r = 0; r < rows; r++) {
        const base = r * n;
        for (let k = 0; k < bn; k++) {
          const e = errBuf[r * blockSize + k]!;
          if (e === 0) continue;
          const ur = (b1 + k) * n;
          for (let j = b2; j < n; j++) wk[base + j] -= e * u[ur + j]!;
        }
      }
    }
    b1 = b2;
  }
  return { dequantized, codes, scales, perm };
}
