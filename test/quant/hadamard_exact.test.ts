/**
 * Exact full-width Hadamard matrices (hadamard_exact.ts): H H^T = n I checked in integer arithmetic for
 * every supported order up to 1024, the Kronecker layout against products built here, the fast
 * applications (JS and tfjs) against dense float64 products, the unsupported-width error, and tensor
 * hygiene. Oracles are independent loops in this file.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import { ConfigError } from '../../src/errors.ts';
import {
  applyHadamard,
  exactHadamard,
  exactHadamardOrderSupported,
  exactHadamardPlan,
  hadamardRotateExact,
  kronecker,
  nearestHadamardOrders,
} from '../../src/quant/hadamard_exact.ts';
import { Rng } from '../../src/utils/rng.ts';
import { testBackends } from '../helpers/backends.ts';

const backends: ConcreteBackend[] = testBackends;

afterAll(async () => {
  await stopBackend();
});

/**
 * Exact Hadamard check: every entry is exactly +-1 and every pair of distinct rows is orthogonal,
 * counted in integers (rows packed as bits, -1 -> 1: <r_i, r_j> = n - 2 popcount(r_i xor r_j)).
 * Returns a description of the first failure, or '' for a Hadamard matrix.
 */
function hadamardDefect(h: ArrayLike<number>, n: number): string {
  if (h.length !== n * n) return `length ${h.length}, expected ${n * n}`;
  const w = (n + 31) >>> 5;
  const bits = new Uint32Array(n * w);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = h[i * n + j];
      if (v === -1) bits[i * w + (j >>> 5)]! |= 1 << (j & 31);
      else if (v !== 1) return `entry (${i}, ${j}) = ${v}`;
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let c = 0;
      for (let k = 0; k < w; k++) {
        let x = bits[i * w + k]! ^ bits[j * w + k]!;
        x -= (x >>> 1) & 0x55555555;
        x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
        c += Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
      }
      if (2 * c !== n) return `rows ${i} and ${j}: inner product ${n - 2 * c}`;
    }
  }
  return '';
}

const isPrimePower = (q: number): boolean => {
  if (q < 2) return false;
  let p = 2;
  while (q % p !== 0) p++;
  while (q % p === 0) q /= p;
  return q === 1;
};

/** Independent Sylvester: H_2s = [[H_s, H_s], [H_s, -H_s]] as nested arrays, flattened. */
function sylvesterOracle(p: number): Float64Array {
  let s: number[][] = [[1]];
  while (s.length < p) s = [...s.map((r) => [...r, ...r]), ...s.map((r) => [...r, ...r.map((v) => -v)])];
  return Float64Array.from(s.flat());
}

/** Independent Kronecker product via the index formula on (i, j) of the result. */
function kronOracle(a: ArrayLike<number>, na: number, b: ArrayLike<number>, nb: number): Float64Array {
  const n = na * nb;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      out[i * n + j] = a[Math.floor(i / nb) * na + Math.floor(j / nb)]! * b[(i % nb) * nb + (j % nb)]!;
    }
  }
  return out;
}

/** Float64 Y = X M / sqrt(n) (M^T with transpose) for X [rows, n], M [n, n]; returns max |Y - got| / max |Y|. */
function relErrorVsDense(
  x: ArrayLike<number>,
  rows: number,
  n: number,
  m: Float64Array,
  got: ArrayLike<number>,
  transpose: boolean,
): number {
  const s = 1 / Math.sqrt(n);
  let worst = 0;
  let scale = 0;
  const y = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    y.fill(0);
    for (let k = 0; k < n; k++) {
      const xv = x[r * n + k]!;
      if (transpose) for (let j = 0; j < n; j++) y[j]! += xv * m[j * n + k]!;
      else for (let j = 0; j < n; j++) y[j]! += xv * m[k * n + j]!;
    }
    for (let j = 0; j < n; j++) {
      worst = Math.max(worst, Math.abs(y[j]! * s - got[r * n + j]!));
      scale = Math.max(scale, Math.abs(y[j]! * s));
    }
  }
  return worst / scale;
}

/** How many entries of two equal-length arrays differ (a cheap exact comparison for large arrays). */
function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let bad = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) bad++;
  return bad;
}

/** The multiples of 4 up to 1024 with no construction here (documented in hadamard_exact.ts). */
const UNSUPPORTED_TO_1024 = [
  92, 116, 156, 172, 184, 188, 232, 236, 260, 268, 292, 324, 356, 372, 376, 404, 412, 428, 436, 452, 472, 476, 508, 520, 532, 536, 584, 596,
  604, 612, 652, 668, 712, 716, 732, 756, 764, 772, 808, 836, 852, 856, 872, 876, 892, 904, 932, 940, 944, 952, 956, 964, 980, 988, 996,
  1004, 1012, 1016,
];

describe('which orders are supported', () => {
  it('exactly 1, 2 and the multiples of 4 reachable by Sylvester, Paley I/II and Kronecker products', () => {
    // Independent closure: bases 2, q + 1 (q = 3 mod 4) and 2 (q + 1) (q = 1 mod 4), prime powers q.
    const max = 1024;
    const base = new Set<number>([2]);
    for (let q = 2; q < max; q++) {
      if (!isPrimePower(q)) continue;
      if (q % 4 === 3) base.add(q + 1);
      if (q % 4 === 1 && 2 * (q + 1) <= max) base.add(2 * (q + 1));
    }
    const reach = new Set<number>([1]);
    for (let n = 2; n <= max; n++) {
      for (const b of base) if (n % b === 0 && reach.has(n / b)) reach.add(n);
    }
    for (let n = 1; n <= max; n++) expect(exactHadamardOrderSupported(n), `order ${n}`).toBe(reach.has(n));
    const missing = [];
    for (let n = 4; n <= max; n += 4) if (!reach.has(n)) missing.push(n);
    expect(missing).toEqual(UNSUPPORTED_TO_1024);
    for (const bad of [0, -4, 3, 6, 2.5, Number.NaN]) expect(exactHadamardOrderSupported(bad)).toBe(false);
  });

  it("QuaRot's orders: all but 156 and 172; Llama's 5504 and 11008 through 344 = 7^3 + 1", () => {
    const quarot = [12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172];
    expect(quarot.filter((n) => !exactHadamardOrderSupported(n))).toEqual([156, 172]);
    expect(exactHadamardPlan(11008)).toEqual({ n: 11008, pow2: 32, core: 344, coreFactors: [344] });
    expect(exactHadamardPlan(5504)).toEqual({ n: 5504, pow2: 16, core: 344, coreFactors: [344] });
  });

  it('widths 256 .. 512: the default intermediate size 352 = 44 * 8 is supported', () => {
    const widths = [];
    for (let n = 256; n <= 512; n++) if (exactHadamardOrderSupported(n)) widths.push(n);
    expect(widths).toEqual([
      256, 264, 272, 276, 280, 284, 288, 296, 300, 304, 308, 312, 316, 320, 328, 332, 336, 340, 344, 348, 352, 360, 364, 368, 380, 384, 388,
      392, 396, 400, 408, 416, 420, 424, 432, 440, 444, 448, 456, 460, 464, 468, 480, 484, 488, 492, 496, 500, 504, 512,
    ]);
    expect(exactHadamardPlan(352)).toEqual({ n: 352, pow2: 8, core: 44, coreFactors: [44] });
    expect(exactHadamardPlan(384)).toEqual({ n: 384, pow2: 32, core: 12, coreFactors: [12] });
    expect(exactHadamardPlan(1024)).toEqual({ n: 1024, pow2: 1024, core: 1, coreFactors: [] });
  });

  it('an unsupported width throws a ConfigError naming the nearest supported widths', () => {
    expect(nearestHadamardOrders(356)).toEqual({ below: 352, above: 360 });
    expect(nearestHadamardOrders(172)).toEqual({ below: 168, above: 176 });
    expect(nearestHadamardOrders(33)).toEqual({ below: 32, above: 36 });
    expect(nearestHadamardOrders(352)).toEqual({ below: 352, above: 352 });
    const cases: [number, number, number][] = [
      [356, 352, 360],
      [156, 152, 160],
      [33, 32, 36],
      [350, 348, 352],
    ];
    for (const [n, below, above] of cases) {
      for (const call of [() => exactHadamard(n), () => applyHadamard(new Float32Array(n), 1, n), () => exactHadamardPlan(n)]) {
        expect(call).toThrow(ConfigError);
        expect(call).toThrow(`order ${n} `);
        expect(call).toThrow(`nearest supported orders: ${below} and ${above}`);
      }
    }
    expect(() => exactHadamard(0)).toThrow(ConfigError);
    expect(() => exactHadamard(1.5)).toThrow(ConfigError);
  });
});

describe('exact Hadamard matrices', () => {
  it('H H^T = n I exactly for every supported order up to 512', () => {
    let count = 0;
    for (let n = 1; n <= 512; n++) {
      if (!exactHadamardOrderSupported(n)) continue;
      expect(hadamardDefect(exactHadamard(n), n), `order ${n}`).toBe('');
      count++;
    }
    expect(count).toBe(1 + 1 + 128 - UNSUPPORTED_TO_1024.filter((n) => n <= 512).length);
  });

  it('H H^T = n I exactly for every supported order in 516 .. 1024', () => {
    for (let n = 516; n <= 1024; n += 4) {
      if (exactHadamardOrderSupported(n)) expect(hadamardDefect(exactHadamard(n), n), `order ${n}`).toBe('');
    }
  });

  it('prime-power Paley orders (52: q = 25, 100: q = 49, 244: q = 243, 344: q = 343, 1332: q = 1331) are Hadamard', () => {
    for (const n of [52, 100, 244, 344, 1332]) {
      expect(exactHadamardPlan(n).coreFactors).toEqual([n]);
      expect(hadamardDefect(exactHadamard(n), n), `order ${n}`).toBe('');
    }
  });

  it('the layout is H_core (x) S_pow2, compared with products built in the test', () => {
    for (const n of [8, 40, 48, 96, 352, 384, 640]) {
      const { core, pow2, coreFactors } = exactHadamardPlan(n);
      expect(core * pow2).toBe(n);
      expect(coreFactors).toEqual(core === 1 ? [] : [core]);
      const want = core === 1 ? sylvesterOracle(pow2) : kronOracle(exactHadamard(core), core, sylvesterOracle(pow2), pow2);
      expect(mismatches(exactHadamard(n), want), `order ${n}`).toBe(0);
    }
    // Sylvester orders are the Sylvester matrix itself.
    expect(mismatches(exactHadamard(64), sylvesterOracle(64))).toBe(0);
  });

  it('kronecker(H_a, H_b) matches an independent product and is Hadamard for Paley x Paley', () => {
    for (const [a, b] of [
      [12, 20],
      [20, 12],
      [28, 4],
      [2, 36],
    ] as const) {
      const got = kronecker(exactHadamard(a), a, exactHadamard(b), b);
      expect(got.length).toBe(a * a * b * b);
      expect(mismatches(got, kronOracle(exactHadamard(a), a, exactHadamard(b), b))).toBe(0);
      expect(hadamardDefect(got, a * b)).toBe('');
    }
    // Non-square or mismatched inputs are refused.
    expect(() => kronecker(new Float64Array(3), 2, new Float64Array(4), 2)).toThrow(ConfigError);
  });

  it('returns a copy: mutating the result does not corrupt the cache', () => {
    const a = exactHadamard(12);
    a.fill(7);
    expect(hadamardDefect(exactHadamard(12), 12)).toBe('');
  });

  it('large orders 5504 and 11008: sampled rows of H / sqrt(n) are +-1/sqrt(n) and orthonormal', () => {
    const rng = new Rng(11008);
    for (const n of [5504, 11008]) {
      const picks = Array.from({ length: 24 }, () => rng.int(n));
      picks.push(0, n - 1);
      // Row i of H is e_i H.
      const e = new Float32Array(picks.length * n);
      picks.forEach((i, r) => (e[r * n + i] = 1));
      const rows = applyHadamard(e, picks.length, n);
      const s = Math.sqrt(n);
      const signs = Float64Array.from(rows, (v) => Math.sign(v));
      let worst = 0;
      for (const v of rows) worst = Math.max(worst, Math.abs(Math.abs(v) * s - 1));
      expect(worst).toBeLessThan(1e-6);
      for (let r = 0; r < picks.length; r++) {
        for (let t = r + 1; t < picks.length; t++) {
          if (picks[r] === picks[t]) continue;
          let dot = 0;
          for (let j = 0; j < n; j++) dot += signs[r * n + j]! * signs[t * n + j]!;
          expect(dot, `rows ${picks[r]} and ${picks[t]} of order ${n}`).toBe(0);
        }
      }
    }
  });
});

describe('applyHadamard', () => {
  for (const n of [1, 2, 12, 40, 52, 64, 100, 344, 352, 384]) {
    for (const transpose of [false, true]) {
      it(`x H${transpose ? '^T' : ''} / sqrt(n) for width ${n} matches the dense float64 product`, () => {
        const rng = new Rng(n + (transpose ? 1 : 0));
        for (const rows of [1, 3, 7]) {
          const x = Float32Array.from(rng.normals(rows * n));
          x[0] = 40; // an outlier channel
          const got = applyHadamard(x, rows, n, { transpose });
          expect(relErrorVsDense(x, rows, n, exactHadamard(n), got, transpose)).toBeLessThan(1e-5);
        }
      });
    }
  }

  it('is orthogonal: the transpose undoes it, norms are kept, an outlier spreads over all n channels', () => {
    const n = 352;
    const x = new Float32Array(3 * n);
    const rng = new Rng(5);
    x.set(rng.normals(3 * n));
    x[17] = 100;
    const y = applyHadamard(x, 3, n);
    const back = applyHadamard(y, 3, n, { transpose: true });
    for (let i = 0; i < x.length; i++) expect(Math.abs(back[i]! - x[i]!)).toBeLessThan(1e-4);
    const unit = new Float32Array(n);
    unit[17] = 1;
    const spread = applyHadamard(unit, 1, n);
    for (const v of spread) expect(Math.abs(Math.abs(v) - 1 / Math.sqrt(n))).toBeLessThan(1e-7);
  });

  it('rejects a buffer of the wrong length', () => {
    expect(() => applyHadamard(new Float32Array(10), 1, 12)).toThrow(ConfigError);
  });
});

for (const backend of backends) {
  describe(`hadamardRotateExact on ${backend}`, () => {
    it('starts', async () => {
      await startBackend(backend);
    });

    for (const [rows, n] of [
      [3, 12],
      [5, 64],
      [7, 352],
      [1, 384],
      [3, 100],
      [3, 2048],
    ] as const) {
      for (const transpose of [false, true]) {
        it(`[${rows}, ${n}]${transpose ? ' transposed' : ''} matches the dense float64 product and applyHadamard`, async () => {
          const x = Float32Array.from(new Rng(rows * 7919 + n).normals(rows * n));
          x[1] = -30;
          const before = tf.memory().numTensors;
          const xt = tf.tensor2d(x, [rows, n]);
          const yt = hadamardRotateExact(xt, { transpose });
          expect(yt.shape).toEqual([rows, n]);
          const got = await yt.data();
          xt.dispose();
          yt.dispose();
          expect(tf.memory().numTensors).toBe(before);
          expect(relErrorVsDense(x, rows, n, exactHadamard(n), got, transpose)).toBeLessThan(1e-5);
          const js = applyHadamard(x, rows, n, { transpose });
          let worst = 0;
          for (let i = 0; i < js.length; i++) worst = Math.max(worst, Math.abs(js[i]! - got[i]!));
          expect(worst).toBeLessThan(1e-4);
        });
      }
    }

    it('tf.memory() stays flat over repeated calls', async () => {
      const xt = tf.tensor2d(Float32Array.from(new Rng(1).normals(5 * 352)), [5, 352]);
      const warm = hadamardRotateExact(xt);
      warm.dispose();
      const before = tf.memory();
      for (let i = 0; i < 5; i++) {
        const y = hadamardRotateExact(xt, { transpose: i % 2 === 1 });
        await y.data();
        y.dispose();
      }
      const after = tf.memory();
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      xt.dispose();
    });
  });
}
