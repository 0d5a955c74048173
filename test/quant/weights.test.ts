/**
 * Symmetric RTN weight quantization against float64 re-computations: per output channel and per group,
 * int4 and int8, the half-step error bound, and the MSE clip search (never worse than plain RTN under
 * the 2.4-norm, strictly better where clipping pays).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { quantizeWeightRtn } from '../../src/quant/weights.ts';
import { Rng } from '../../src/utils/rng.ts';

function randomMatrix(rows: number, cols: number, seed: number, std = 0.02): Float32Array {
  return Float32Array.from(new Rng(seed).normals(rows * cols, std));
}

/**
 * Float64 symmetric RTN without clipping: scale = max|w| / qmax over each group, q in [-qmax-1, qmax].
 * Also flags elements whose w / scale lies within 1e-4 of a rounding boundary: there float32 and float64
 * scales may legitimately round to neighbouring integers.
 */
function rtn64(w: Float32Array, rows: number, cols: number, bits: number, gs: number) {
  const qmax = 2 ** (bits - 1) - 1;
  const groups = cols / gs;
  const deq = new Float64Array(rows * cols);
  const scales = new Float64Array(rows * groups);
  const ambiguous = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      let m = 0;
      for (let c = g * gs; c < (g + 1) * gs; c++) m = Math.max(m, Math.abs(w[r * cols + c]!));
      const scale = m / qmax;
      scales[r * groups + g] = scale;
      for (let c = g * gs; c < (g + 1) * gs; c++) {
        const i = r * cols + c;
        const v = w[i]! / scale;
        if (Math.abs(Math.abs(v - Math.trunc(v)) - 0.5) < 1e-4) ambiguous[i] = 1;
        deq[i] = Math.min(qmax, Math.max(-qmax - 1, Math.round(v))) * scale;
      }
    }
  }
  return { deq, scales, ambiguous };
}

/** Per-row sum |w - d|^2.4 in float64 (the clip search's objective). */
function rowErrors(w: Float32Array, d: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const e = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) e[r]! += Math.abs(w[r * cols + c]! - d[r * cols + c]!) ** 2.4;
  return e;
}

describe('quantizeWeightRtn', () => {
  for (const [bits, rows, cols, gs] of [
    [4, 24, 40, undefined],
    [8, 24, 40, undefined],
    [4, 9, 64, 16],
    [8, 9, 64, 8],
    [4, 5, 33, 11],
  ] as const) {
    it(`int${bits} [${rows}, ${cols}] ${gs ? `groups of ${gs}` : 'per output channel'} matches float64 RTN`, () => {
      const w = randomMatrix(rows, cols, bits * 100 + cols);
      const { dequantized, scales } = quantizeWeightRtn(w, rows, cols, { bits, groupSize: gs });
      const want = rtn64(w, rows, cols, bits, gs ?? cols);
      expect(scales.length).toBe(rows * (cols / (gs ?? cols)));
      for (let i = 0; i < scales.length; i++) expect(Math.abs(scales[i]! - want.scales[i]!) / want.scales[i]!).toBeLessThan(1e-6);
      const qmax = 2 ** (bits - 1) - 1;
      let mismatches = 0;
      for (let i = 0; i < w.length; i++) {
        const scale = want.scales[Math.floor(i / (gs ?? cols))]!;
        const err = Math.abs(dequantized[i]! - want.deq[i]!);
        if (err > 1e-6 * scale * qmax) {
          // Only a boundary case may round the other way, and then by exactly one step.
          expect(want.ambiguous[i]).toBe(1);
          expect(err).toBeCloseTo(scale, 6);
          mismatches++;
        }
        // In range (no clipping here): every element is within half a step.
        expect(Math.abs(dequantized[i]! - w[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-6 * scale);
        // Values are integers times the group's scale, inside [-qmax - 1, qmax].
        const q = dequantized[i]! / scales[Math.floor(i / (gs ?? cols))]!;
        expect(Math.abs(q - Math.round(q))).toBeLessThan(1e-4);
        expect(Math.round(q)).toBeGreaterThanOrEqual(-qmax - 1);
        expect(Math.round(q)).toBeLessThanOrEqual(qmax);
      }
      expect(mismatches).toBeLessThanOrEqual(1);
    });
  }

  it('int4 per channel: the row maximum maps to +-7 (scale = max / 7) and -8 is unused without clipping', () => {
    const w = randomMatrix(16, 48, 5);
    const { dequantized, scales } = quantizeWeightRtn(w, 16, 48, { bits: 4 });
    for (let r = 0; r < 16; r++) {
      const qs: number[] = [];
      for (let c = 0; c < 48; c++) qs.push(Math.round(dequantized[r * 48 + c]! / scales[r]!));
      expect(Math.max(...qs.map(Math.abs))).toBe(7);
      expect(Math.min(...qs)).toBeGreaterThanOrEqual(-7);
    }
  });

  it('groups: smaller groups never have a larger total error than per-channel scales on these matrices', () => {
    const w = randomMatrix(16, 128, 9);
    const per = quantizeWeightRtn(w, 16, 128, { bits: 4 });
    const grouped = quantizeWeightRtn(w, 16, 128, { bits: 4, groupSize: 32 });
    const sum = (e: Float64Array) => e.reduce((a, b) => a + b, 0);
    expect(sum(rowErrors(w, grouped.dequantized, 16, 128))).toBeLessThan(sum(rowErrors(w, per.dequantized, 16, 128)));
  });

  it('clip search is never worse than plain RTN (2.4-norm, per row), and strictly better on Gaussian rows', () => {
    for (const bits of [4, 8] as const) {
      const rows = 32;
      const cols = 256;
      const w = randomMatrix(rows, cols, 77 + bits);
      const plain = rowErrors(w, quantizeWeightRtn(w, rows, cols, { bits }).dequantized, rows, cols);
      const clipped = rowErrors(w, quantizeWeightRtn(w, rows, cols, { bits, clipSearch: true }).dequantized, rows, cols);
      for (let r = 0; r < rows; r++) expect(clipped[r]).toBeLessThanOrEqual(plain[r]!);
      if (bits === 4) {
        // A Gaussian row's maximum (~3 sigma at 256 values) is rarely worth a full int4 step range.
        const total = (e: Float64Array) => e.reduce((a, b) => a + b, 0);
        expect(total(clipped)).toBeLessThan(0.9 * total(plain));
      }
    }
  });

  it('clip search strictly helps every row with one moderate outlier, clipping the outlier', () => {
    const rows = 16;
    const cols = 512;
    const w = randomMatrix(rows, cols, 3, 1);
    // One outlier per row at 8 sigma: plain RTN spends its whole range on it (scale = 8/7 sigma).
    for (let r = 0; r < rows; r++) w[r * cols + ((r * 37) % cols)] = r % 2 ? 8 : -8;
    const plainQ = quantizeWeightRtn(w, rows, cols, { bits: 4 });
    const clipQ = quantizeWeightRtn(w, rows, cols, { bits: 4, clipSearch: true });
    const plain = rowErrors(w, plainQ.dequantized, rows, cols);
    const clipped = rowErrors(w, clipQ.dequantized, rows, cols);
    for (let r = 0; r < rows; r++) {
      expect(clipped[r]).toBeLessThan(0.9 * plain[r]!);
      expect(clipQ.scales[r]).toBeLessThan(plainQ.scales[r]!);
      // Clipped: the outlier saturates at 7 (positive) or -8 (negative) steps.
      const i = r * cols + ((r * 37) % cols);
      expect(Math.round(clipQ.dequantized[i]! / clipQ.scales[r]!)).toBe(r % 2 ? 7 : -8);
    }
  });

  it('clip search barely shrinks the range when clipping the outlier would cost more than it saves (50 sigma)', () => {
    const rows = 8;
    const cols = 64;
    const w = randomMatrix(rows, cols, 4, 1);
    for (let r = 0; r < rows; r++) w[r * cols + r] = 50;
    const plainQ = quantizeWeightRtn(w, rows, cols, { bits: 4 });
    const clipQ = quantizeWeightRtn(w, rows, cols, { bits: 4, clipSearch: true });
    const plain = rowErrors(w, plainQ.dequantized, rows, cols);
    const clipped = rowErrors(w, clipQ.dequantized, rows, cols);
    for (let r = 0; r < rows; r++) {
      // Cutting a 50-sigma weight down costs |50 - 7 * scale|^2.4, more than the small weights can gain:
      // the best clip factor stays within a few grid points of 1.
      expect(clipQ.scales[r]! / plainQ.scales[r]!).toBeGreaterThan(0.95);
      expect(clipped[r]).toBeLessThanOrEqual(plain[r]!);
    }
  });

  it('a zero row stays zero', () => {
    const w = randomMatrix(3, 8, 1);
    w.fill(0, 8, 16);
    const { dequantized } = quantizeWeightRtn(w, 3, 8, { bits: 4, clipSearch: true });
    expect(Array.from(dequantized.subarray(8, 16))).toEqual(new Array(8).fill(0));
  });

  it('bad options are ConfigErrors naming the field', () => {
    const w = randomMatrix(4, 12, 1);
    expect(() => quantizeWeightRtn(w, 4, 12, { bits: 4, groupSize: 5 })).toThrow(ConfigError);
    expect(() => quantizeWeightRtn(w, 4, 12, { bits: 4, groupSize: 5 })).toThrow(/groupSize/);
    expect(() => quantizeWeightRtn(w, 4, 12, { bits: 3 as 4 })).toThrow(/bits/);
  });
});
