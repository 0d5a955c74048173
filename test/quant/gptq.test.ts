/**
 * GPTQ against a plain float64 OBS reference written here (column by column, no blocks, no lazy updates,
 * an explicit Gauss-Jordan inverse of H downdated after every column), the layer-output error against RTN
 * on correlated inputs with outlier channels, dead columns and damping, and the identity Hessian, where
 * GPTQ must reduce to RTN exactly.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, OspError, ShapeError } from '../../src/errors.ts';
import { accumulateHessian, gptqQuantize, inverseCholeskyUpper } from '../../src/quant/gptq.ts';
import { quantizeWeightRtn } from '../../src/quant/weights.ts';
import { Rng } from '../../src/utils/rng.ts';

function randomWeights(rows: number, cols: number, seed: number, std = 0.02): Float32Array {
  return Float32Array.from(new Rng(seed).normals(rows * cols, std));
}

/**
 * Calibration inputs [n, cols] with correlated columns (k shared factors plus independent noise) and a few
 * outlier channels scaled up, the situation in which GPTQ has something to gain over RTN.
 */
function correlatedInputs(n: number, cols: number, seed: number, outliers: number[] = [], k = 6): Float32Array {
  const rng = new Rng(seed);
  const mix = rng.normals(k * cols, 1);
  const x = new Float32Array(n * cols);
  for (let t = 0; t < n; t++) {
    const z = rng.normals(k, 1);
    for (let c = 0; c < cols; c++) {
      let s = 0.5 * rng.normal();
      for (let j = 0; j < k; j++) s += z[j]! * mix[j * cols + c]!;
      x[t * cols + c] = outliers.includes(c) ? 15 * s : s;
    }
  }
  return x;
}

function hessianOf(x: Float32Array, n: number, cols: number): Float64Array {
  const h = new Float64Array(cols * cols);
  accumulateHessian(h, x, n, cols);
  return h;
}

/** Inverse of a symmetric positive definite matrix by Gauss-Jordan elimination with partial pivoting. */
function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    if (p !== c) {
      for (let j = 0; j < n; j++) {
        [m[c * n + j], m[p * n + j]] = [m[p * n + j]!, m[c * n + j]!];
        [inv[c * n + j], inv[p * n + j]] = [inv[p * n + j]!, inv[c * n + j]!];
      }
    }
    const d = m[c * n + c]!;
    for (let j = 0; j < n; j++) {
      m[c * n + j] /= d;
      inv[c * n + j] /= d;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j] -= f * m[c * n + j]!;
        inv[r * n + j] -= f * inv[c * n + j]!;
      }
    }
  }
  return inv;
}

interface RefOptions {
  bits: 4 | 8;
  groupSize?: number;
  actOrder?: boolean;
  clipSearch?: boolean;
  damp?: number;
}

/**
 * The OBS update, plainly: columns one at a time in processing order; after quantizing column i (error
 * e = (w_i - q_i) / Hinv_ii on every row, w_j -= e Hinv_ij), Hinv <- Hinv - Hinv[:, i] Hinv[i, :] / Hinv_ii
 * over the remaining columns. Scales per the documented convention: per channel and static groups (act-order)
 * from the original weights, dynamic groups from the current weights at the group's first column; the
 * scale of a set of values is RTN's (quantizeWeightRtn on the values rounded to float32).
 * Records the pre-rounding value w / scale of every element (original layout).
 */
function obsReference(w0: Float32Array, rows: number, n: number, h0: Float64Array, o: RefOptions) {
  const qmax = 2 ** (o.bits - 1) - 1;
  const gs = o.groupSize ?? n;
  const groups = n / gs;
  const h = Float64Array.from(h0);
  const w = Float64Array.from(w0);
  for (let c = 0; c < n; c++) {
    if (h[c * n + c] === 0) {
      h[c * n + c] = 1;
      for (let r = 0; r < rows; r++) w[r * n + c] = 0;
    }
  }
  const order = Array.from({ length: n }, (_, i) => i);
  if (o.actOrder) order.sort((a, b) => h[b * n + b]! - h[a * n + a]! || a - b);
  const hp = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) hp[i * n + j] = h[order[i]! * n + order[j]!]!;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += hp[i * n + i]!;
  for (let i = 0; i < n; i++) hp[i * n + i] += (o.damp ?? 0.01) * (mean / n);
  const hinv = invert(hp, n);

  const rtnScales = (vals: Float64Array, r: number, g: number) =>
    quantizeWeightRtn(Float32Array.from(vals), r, g, { bits: o.bits, clipSearch: o.clipSearch }).scales;
  const scales = new Float32Array(rows * groups);
  const dynamic = o.groupSize !== undefined && !o.actOrder;
  if (!dynamic) {
    for (let g = 0; g < groups; g++) {
      const vals = new Float64Array(rows * gs);
      for (let r = 0; r < rows; r++) for (let k = 0; k < gs; k++) vals[r * gs + k] = w[r * n + g * gs + k]!;
      const s = rtnScales(vals, rows, gs);
      for (let r = 0; r < rows; r++) scales[r * groups + g] = s[r]!;
    }
  }
  const codes = new Int32Array(rows * n);
  const pre = new Float64Array(rows * n);
  const dequantized = new Float32Array(rows * n);
  for (let i = 0; i < n; i++) {
    const c = order[i]!;
    if (dynamic && c % gs === 0) {
      const vals = new Float64Array(rows * gs);
      for (let r = 0; r < rows; r++) for (let k = 0; k < gs; k++) vals[r * gs + k] = w[r * n + c + k]!;
      const s = rtnScales(vals, rows, gs);
      for (let r = 0; r < rows; r++) scales[r * groups + c / gs] = s[r]!;
    }
    const d = hinv[i * n + i]!;
    for (let r = 0; r < rows; r++) {
      const scale = scales[r * groups + Math.floor(c / gs)]!;
      const v = w[r * n + c]! / scale;
      pre[r * n + c] = v;
      let q = Math.round(v);
      if (Math.abs(v % 1) === 0.5 && q % 2 !== 0) q -= 1; // half to even
      q = Math.min(qmax, Math.max(-qmax - 1, q));
      codes[r * n + c] = q;
      const dq = Math.fround(q * scale);
      dequantized[r * n + c] = dq;
      const e = (w[r * n + c]! - dq) / d;
      for (let j = i + 1; j < n; j++) w[r * n + order[j]!] -= e * hinv[i * n + j]!;
    }
    // Downdate: drop column i from the inverse of the remaining Hessian.
    for (let j = i + 1; j < n; j++) {
      const f = hinv[j * n + i]! / d;
      if (f === 0) continue;
      for (let k = i + 1; k < n; k++) hinv[j * n + k] -= f * hinv[i * n + k]!;
    }
  }
  return { codes, pre, scales, dequantized, order };
}

/** ||X W^T - X Q^T||^2 over the calibration rows. */
function outputError(x: Float32Array, n: number, cols: number, w: Float32Array, q: Float32Array, rows: number): number {
  let s = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = w[r * cols + c]! - q[r * cols + c]!;
    for (let t = 0; t < n; t++) {
      let y = 0;
      for (let c = 0; c < cols; c++) y += x[t * cols + c]! * d[c]!;
      s += y * y;
    }
  }
  return s;
}

describe('accumulateHessian', () => {
  it('adds X^T X batch by batch, exactly symmetric, matching a float64 sum (odd sizes)', () => {
    const cols = 13;
    const a = correlatedInputs(70, cols, 1);
    const b = correlatedInputs(3, cols, 2);
    const h = new Float64Array(cols * cols);
    accumulateHessian(h, a, 70, cols);
    accumulateHessian(h, b, 3, cols);
    for (let i = 0; i < cols; i++) {
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let t = 0; t < 70; t++) s += a[t * cols + i]! * a[t * cols + j]!;
        for (let t = 0; t < 3; t++) s += b[t * cols + i]! * b[t * cols + j]!;
        expect(Math.abs(h[i * cols + j]! - s)).toBeLessThan(1e-9 * (Math.abs(s) + 1));
        expect(h[i * cols + j]).toBe(h[j * cols + i]);
      }
    }
  });

  it('rejects mismatched sizes', () => {
    expect(() => accumulateHessian(new Float64Array(16), new Float32Array(12), 3, 4)).not.toThrow();
    expect(() => accumulateHessian(new Float64Array(15), new Float32Array(12), 3, 4)).toThrow(ShapeError);
    expect(() => accumulateHessian(new Float64Array(16), new Float32Array(11), 3, 4)).toThrow(ShapeError);
  });
});

describe('inverseCholeskyUpper', () => {
  it('gives the upper factor U of H^-1 = U^T U with a positive diagonal', () => {
    const n = 11;
    const h = hessianOf(correlatedInputs(40, n, 5), 40, n);
    for (let i = 0; i < n; i++) h[i * n + i] += 0.1;
    const u = inverseCholeskyUpper(h, n);
    const inv = invert(h, n);
    for (let i = 0; i < n; i++) {
      expect(u[i * n + i]).toBeGreaterThan(0);
      for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += u[k * n + i]! * u[k * n + j]!;
        expect(Math.abs(s - inv[i * n + j]!)).toBeLessThan(1e-9 * Math.abs(inv[i * n + i]!));
      }
    }
  });

  it('throws an OspError for a matrix that is not positive definite', () => {
    expect(() => inverseCholeskyUpper(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(OspError);
  });
});

describe('gptqQuantize', () => {
  const cases: { name: string; rows: number; cols: number; opts: RefOptions; dead?: number[] }[] = [
    { name: 'int4 per channel', rows: 13, cols: 37, opts: { bits: 4 } },
    { name: 'int4 per channel, act-order', rows: 13, cols: 37, opts: { bits: 4, actOrder: true } },
    { name: 'int8 per channel, act-order, dead columns', rows: 13, cols: 37, opts: { bits: 8, actOrder: true }, dead: [0, 20] },
    { name: 'int4 dynamic groups of 12 (groups span blocks)', rows: 13, cols: 36, opts: { bits: 4, groupSize: 12 } },
    { name: 'int4 dynamic groups of 5 (groups start inside blocks)', rows: 11, cols: 35, opts: { bits: 4, groupSize: 5 } },
    { name: 'int4 groups of 12, act-order (static groups)', rows: 13, cols: 36, opts: { bits: 4, groupSize: 12, actOrder: true } },
    { name: 'int4 groups of 9, clip search, dead column', rows: 7, cols: 27, opts: { bits: 4, groupSize: 9, clipSearch: true }, dead: [9] },
  ];
  for (const { name, rows, cols, opts, dead } of cases) {
    it(`${name} [${rows}, ${cols}], blockSize 8: same codes as the plain OBS reference`, () => {
      const n = 300;
      const x = correlatedInputs(n, cols, rows * 100 + cols, [3, 17 % cols]);
      for (const c of dead ?? []) for (let t = 0; t < n; t++) x[t * cols + c] = 0;
      const h = hessianOf(x, n, cols);
      const w = randomWeights(rows, cols, cols * 7 + rows);
      const got = gptqQuantize(w, rows, cols, h, { ...opts, blockSize: 8 });
      const want = obsReference(w, rows, cols, h, opts);
      const gs = opts.groupSize ?? cols;
      const groups = cols / gs;

      expect(got.scales.length).toBe(rows * groups);
      if (opts.actOrder) expect(Array.from(got.perm!)).toEqual(want.order);
      let tieRows = 0;
      let checked = 0;
      for (let r = 0; r < rows; r++) {
        // Walk the row in processing order; a rounding tie may legitimately go either way, after which
        // the row's later columns see different updates: stop comparing that row there.
        let diverged = false;
        for (const c of want.order) {
          const i = r * cols + c;
          if (got.codes[i] !== want.codes[i]) {
            const v = want.pre[i]!;
            expect(Math.abs(Math.abs(v - Math.trunc(v)) - 0.5)).toBeLessThan(1e-6);
            tieRows++;
            diverged = true;
            break;
          }
          checked++;
          expect(Math.abs(got.dequantized[i]! - want.dequantized[i]!)).toBeLessThanOrEqual(1e-6 * Math.abs(want.dequantized[i]!));
        }
        if (!diverged) {
          for (let g = 0; g < groups; g++) {
            const s = want.scales[r * groups + g]!;
            expect(Math.abs(got.scales[r * groups + g]! - s)).toBeLessThanOrEqual(1e-6 * s);
          }
        }
      }
      expect(tieRows).toBeLessThanOrEqual(1);
      expect(checked).toBeGreaterThan((rows - 1) * cols);
      // GPTQ really moved weights: the codes differ from RTN's somewhere.
      const rtn = quantizeWeightRtn(w, rows, cols, { bits: opts.bits, groupSize: opts.groupSize });
      let differ = 0;
      for (let i = 0; i < w.length; i++) if (got.dequantized[i] !== rtn.dequantized[i]) differ++;
      expect(differ).toBeGreaterThan(0);
      for (const c of dead ?? []) for (let r = 0; r < rows; r++) expect(got.dequantized[r * cols + c]).toBe(0);
    });
  }

  it('the result does not depend on blockSize (1, 8, 128; dynamic groups of 6)', () => {
    const rows = 9;
    const cols = 42;
    const h = hessianOf(correlatedInputs(200, cols, 8, [4]), 200, cols);
    const w = randomWeights(rows, cols, 8);
    const ref = gptqQuantize(w, rows, cols, h, { bits: 4, groupSize: 6, blockSize: 1 });
    for (const blockSize of [8, 128]) {
      const got = gptqQuantize(w, rows, cols, h, { bits: 4, groupSize: 6, blockSize });
      let diff = 0;
      for (let i = 0; i < w.length; i++) if (got.codes[i] !== ref.codes[i]) diff++;
      expect(diff).toBe(0);
    }
  });

  it('layer-output error on the calibration data is <= RTN on every layer and much lower on average', () => {
    const ratios: number[] = [];
    const n = 512;
    const cols = 64;
    const rows = 24;
    for (const seed of [1, 2, 3]) {
      const x = correlatedInputs(n, cols, 1000 + seed, [2, 31, 50], 8);
      const h = hessianOf(x, n, cols);
      const w = randomWeights(rows, cols, 2000 + seed);
      for (const opts of [
        { bits: 4 as const },
        { bits: 4 as const, actOrder: true },
        { bits: 4 as const, groupSize: 16 },
        { bits: 4 as const, groupSize: 16, actOrder: true },
        { bits: 8 as const },
      ]) {
        const q = gptqQuantize(w, rows, cols, h, opts).dequantized;
        const rtn = quantizeWeightRtn(w, rows, cols, { bits: opts.bits, groupSize: opts.groupSize }).dequantized;
        const eg = outputError(x, n, cols, w, q, rows);
        const er = outputError(x, n, cols, w, rtn, rows);
        expect(eg).toBeLessThanOrEqual(er);
        ratios.push(eg / er);
      }
    }
    const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
    expect(mean).toBeLessThan(0.5);
  });

  it('identity Hessian: exactly RTN (same grid, scales and values), with and without groups and clip search', () => {
    const rows = 10;
    const cols = 48;
    const h = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) h[i * cols + i] = 1;
    const w = randomWeights(rows, cols, 11);
    for (const bits of [4, 8] as const) {
      for (const groupSize of [undefined, 16]) {
        for (const clipSearch of [false, true]) {
          for (const actOrder of [false, true]) {
            const got = gptqQuantize(w, rows, cols, h, { bits, groupSize, clipSearch, actOrder, blockSize: 7 });
            const rtn = quantizeWeightRtn(w, rows, cols, { bits, groupSize, clipSearch });
            expect(got.dequantized).toEqual(rtn.dequantized);
            expect(got.scales).toEqual(rtn.scales);
            const gsz = groupSize ?? cols;
            for (let i = 0; i < w.length; i++) {
              const s = rtn.scales[Math.floor(i / gsz)]!;
              // == : a code cannot hold RTN's -0 for a small negative weight.
              expect(Math.fround(got.codes[i]! * s) === rtn.dequantized[i]).toBe(true);
            }
          }
        }
      }
    }
  });

  it('dead columns give zero weights and no NaN, also with act-order and an all-zero Hessian', () => {
    const rows = 6;
    const cols = 20;
    const n = 100;
    const x = correlatedInputs(n, cols, 4);
    for (let t = 0; t < n; t++) x[t * cols + 7] = 0;
    const w = randomWeights(rows, cols, 4);
    // Give the dead column the largest weights: they must not widen the scales.
    for (let r = 0; r < rows; r++) w[r * cols + 7] = 1;
    for (const actOrder of [false, true]) {
      const got = gptqQuantize(w, rows, cols, hessianOf(x, n, cols), { bits: 4, actOrder });
      for (const v of got.dequantized) expect(Number.isFinite(v)).toBe(true);
      for (let r = 0; r < rows; r++) {
        expect(got.dequantized[r * cols + 7]).toBe(0);
        expect(got.codes[r * cols + 7]).toBe(0);
        expect(got.scales[r]).toBeLessThan(0.1 / 7);
      }
    }
    const zero = gptqQuantize(w, rows, cols, new Float64Array(cols * cols), { bits: 4 });
    expect(Array.from(zero.dequantized)).toEqual(new Array(rows * cols).fill(0));
  });

  it('damping makes a rank-deficient Hessian usable; without damping it throws a clear OspError', () => {
    const rows = 5;
    const cols = 24;
    const n = 10; // fewer tokens than inputs: X^T X has rank 10
    const h = hessianOf(correlatedInputs(n, cols, 9), n, cols);
    const w = randomWeights(rows, cols, 9);
    const got = gptqQuantize(w, rows, cols, h, { bits: 4 });
    for (const v of got.dequantized) expect(Number.isFinite(v)).toBe(true);
    expect(() => gptqQuantize(w, rows, cols, h, { bits: 4, dampPercent: 0 })).toThrow(/positive definite.*dampPercent/);
  });

  it('a positive scale of the Hessian (2/N X^T X vs X^T X) gives the same codes', () => {
    const rows = 8;
    const cols = 30;
    const n = 150;
    const h = hessianOf(correlatedInputs(n, cols, 12, [5]), n, cols);
    const h2 = h.map((v) => (2 * v) / n);
    const w = randomWeights(rows, cols, 12);
    const a = gptqQuantize(w, rows, cols, h, { bits: 4, blockSize: 8 });
    const b = gptqQuantize(w, rows, cols, h2, { bits: 4, blockSize: 8 });
    let diff = 0;
    for (let i = 0; i < w.length; i++) if (a.codes[i] !== b.codes[i]) diff++;
    expect(diff).toBe(0);
  });

  it('does not modify its inputs', () => {
    const rows = 4;
    const cols = 12;
    const x = correlatedInputs(50, cols, 3);
    for (let t = 0; t < 50; t++) x[t * cols + 2] = 0;
    const h = hessianOf(x, 50, cols);
    const w = randomWeights(rows, cols, 3);
    const h0 = Float64Array.from(h);
    const w0 = Float32Array.from(w);
    gptqQuantize(w, rows, cols, h, { bits: 4, actOrder: true, groupSize: 4 });
    expect(h).toEqual(h0);
    expect(w).toEqual(w0);
  });

  it('bad options are ConfigErrors naming the field, bad sizes ShapeErrors', () => {
    const w = randomWeights(4, 12, 1);
    const h = new Float64Array(144);
    for (let i = 0; i < 12; i++) h[i * 12 + i] = 1;
    expect(() => gptqQuantize(w, 4, 12, h, { bits: 4, groupSize: 5 })).toThrow(ConfigError);
    expect(() => gptqQuantize(w, 4, 12, h, { bits: 4, groupSize: 5 })).toThrow(/groupSize/);
    expect(() => gptqQuantize(w, 4, 12, h, { bits: 3 as 4 })).toThrow(/bits/);
    expect(() => gptqQuantize(w, 4, 12, h, { bits: 4, blockSize: 0 })).toThrow(/blockSize/);
    expect(() => gptqQuantize(w, 4, 12, h, { bits: 4, dampPercent: -1 })).toThrow(/dampPercent/);
    expect(() => gptqQuantize(w, 4, 12, new Float64Array(143), { bits: 4 })).toThrow(ShapeError);
    expect(() => gptqQuantize(w, 4, 11, h, { bits: 4 })).toThrow(ShapeError);
  });
});
