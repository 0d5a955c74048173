/**
 * Asymmetric fake quantization of activations and KV vectors on every backend, against a float64
 * re-computation: per token (odd widths, constant rows, one-signed rows), per group, per head vector.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { fakeQuantKvPerHead, fakeQuantPerGroupAsym, fakeQuantPerTokenAsym } from '../../src/quant/activations.ts';
import { Rng } from '../../src/utils/rng.ts';
import { testBackends } from '../helpers/backends.ts';

// WebGPU runs on the software adapter in CI; OSP_SKIP_WEBGPU=1 is the explicit switch for machines without Vulkan.
const backends: ConcreteBackend[] = testBackends;

afterAll(async () => {
  await stopBackend();
});

/**
 * Float64 asymmetric fake quantization of consecutive groups of `g` values over [min, max], widened to
 * include 0 when `zeroInRange` (QuaRot's convention, the quantizers' default). Returns the result,
 * each element's step (scale) and whether float32 arithmetic may round it to a neighbouring level
 * (x / scale or -min / scale within 1e-4 of a half).
 */
function fakeQuant64(x: ArrayLike<number>, g: number, bits: number, zeroInRange: boolean) {
  const levels = 2 ** bits - 1;
  const out = new Float64Array(x.length);
  const step = new Float64Array(x.length);
  const ambiguous = new Uint8Array(x.length);
  const nearHalf = (v: number) => Math.abs(Math.abs(v - Math.floor(v)) - 0.5) < 1e-4;
  for (let s = 0; s < x.length; s += g) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = s; i < s + g; i++) {
      lo = Math.min(lo, x[i]!);
      hi = Math.max(hi, x[i]!);
    }
    if (zeroInRange) {
      lo = Math.min(lo, 0);
      hi = Math.max(hi, 0);
    }
    const scale = (hi - lo) / levels;
    for (let i = s; i < s + g; i++) {
      if (scale === 0) {
        out[i] = x[i]!;
        continue;
      }
      const zp = Math.round(-lo / scale);
      const q = Math.min(levels, Math.max(0, Math.round(x[i]! / scale) + zp));
      out[i] = (q - zp) * scale;
      step[i] = scale;
      if (nearHalf(x[i]! / scale) || nearHalf(-lo / scale)) ambiguous[i] = 1;
    }
  }
  return { out, step, ambiguous };
}

/** Every element equals the oracle up to float32 rounding, or, in a boundary case, one step away. */
function expectMatches(got: ArrayLike<number>, x: ArrayLike<number>, g: number, bits: number, zeroInRange = true) {
  const want = fakeQuant64(x, g, bits, zeroInRange);
  let oneStep = 0;
  for (let i = 0; i < x.length; i++) {
    const err = Math.abs(got[i]! - want.out[i]!);
    const tol = 1e-5 * (want.step[i]! * 2 ** bits + Math.abs(x[i]!) + 1e-6);
    if (err > tol) {
      expect(want.ambiguous[i], `element ${i}: got ${got[i]}, want ${want.out[i]}`).toBe(1);
      expect(Math.abs(err - want.step[i]!)).toBeLessThan(tol);
      oneStep++;
    }
  }
  expect(oneStep).toBeLessThanOrEqual(2);
}

function data(n: number, seed: number, std = 1): Float32Array {
  return Float32Array.from(new Rng(seed).normals(n, std));
}

for (const backend of backends) {
  describe(`activation fake quantization on ${backend}`, () => {
    it('starts', async () => {
      await startBackend(backend);
    });

    for (const [n, w, bits] of [
      [5, 7, 4],
      [3, 33, 4],
      [6, 33, 8],
      [4, 96, 4],
      [2, 1, 4],
    ] as const) {
      for (const zeroInRange of [true, false]) {
        it(`per token int${bits} [${n}, ${w}] with a constant row and a one-signed row (zeroInRange ${zeroInRange})`, async () => {
          const x = data(n * w, n * w + bits);
          x.fill(0.375, 0, w); // row 0 constant: passes through unchanged with a plain min/max range
          if (n > 2) for (let i = w; i < 2 * w; i++) x[i] = Math.abs(x[i]!) + 3; // row 1 all positive: zero point < 0
          const before = tf.memory().numTensors;
          const xt = tf.tensor2d(x, [n, w]);
          const y = fakeQuantPerTokenAsym(xt, bits, { zeroInRange });
          expect(y.shape).toEqual([n, w]);
          const got = await y.data();
          tf.dispose([xt, y]);
          expect(tf.memory().numTensors).toBe(before);
          expectMatches(got, x, w, bits, zeroInRange);
          if (!zeroInRange) for (let i = 0; i < w; i++) expect(got[i]).toBe(x[i]);
        });
      }
    }

    it('zeroInRange is the default and changes only one-signed groups', async () => {
      const x = Float32Array.from([0.5, 1, 2, 3.3, -1, 0.2, 2, 3.3]); // row 0 all positive, row 1 mixed
      const xt = tf.tensor2d(x, [2, 4]);
      // Read asynchronously: WebGPU in Node cannot read synchronously.
      const read = async (opts?: { zeroInRange: boolean }) => {
        const y = fakeQuantPerTokenAsym(xt, 4, opts);
        const v = await y.data();
        y.dispose();
        return v;
      };
      const [byDefault, widened, plain] = [await read(), await read({ zeroInRange: true }), await read({ zeroInRange: false })];
      xt.dispose();
      expect(byDefault).toEqual(widened);
      expect(plain.slice(0, 4)).not.toEqual(widened.slice(0, 4)); // [0.5, 3.3] vs [0, 3.3]: different steps
      expect(plain.slice(4)).toEqual(widened.slice(4)); // min < 0 < max already
    });

    it('per token: the error of every element is at most half a step', async () => {
      const n = 8;
      const w = 40;
      const x = data(n * w, 11, 3);
      const xt = tf.tensor2d(x, [n, w]);
      const y = fakeQuantPerTokenAsym(xt, 4);
      const got = await y.data();
      tf.dispose([xt, y]);
      const { step } = fakeQuant64(x, w, 4, true);
      // The rounded zero point shifts the grid by at most half a step against [min, max], so both ends of
      // the grid lie within half a step of min and max and every value in between has a level that close.
      for (let i = 0; i < x.length; i++) expect(Math.abs(got[i]! - x[i]!)).toBeLessThanOrEqual(step[i]! * 0.5001);
    });

    for (const [n, w, g, bits] of [
      [3, 24, 8, 4],
      [5, 32, 8, 8],
      [2, 21, 7, 4],
    ] as const) {
      it(`per group int${bits} [${n}, ${w}] in groups of ${g}`, async () => {
        const x = data(n * w, w * g);
        // One group with a large range: it must not affect the others (their steps stay small).
        for (let i = 0; i < g; i++) x[g + i]! *= 100;
        x.fill(-1.5, 2 * g, 3 * g); // a constant group passes through
        const xt = tf.tensor2d(x, [n, w]);
        const y = fakeQuantPerGroupAsym(xt, bits, g);
        const got = await y.data();
        tf.dispose([xt, y]);
        expectMatches(got, x, g, bits);
        for (let i = 2 * g; i < 3 * g; i++) expect(got[i]).toBe(-1.5);
      });
    }

    it('KV per head: each [b, h, t, :] vector is one group', async () => {
      const [B, H, T, hd] = [2, 3, 5, 8];
      const x = data(B * H * T * hd, 42);
      // A huge key at one position of one head: with per-(b, h) or per-tensor ranges it would wipe out
      // the other positions; per head vector only its own vector is coarse.
      for (let i = 0; i < hd; i++) x[(1 * H * T + 2 * T + 3) * hd + i]! *= 1000;
      const xt = tf.tensor4d(x, [B, H, T, hd]);
      const y = fakeQuantKvPerHead(xt, 4);
      expect(y.shape).toEqual([B, H, T, hd]);
      const got = await y.data();
      tf.dispose([xt, y]);
      expectMatches(got, x, hd, 4);
    });

    it('bad widths and groups are ConfigErrors', () => {
      const xt = tf.zeros([2, 10]) as tf.Tensor2D;
      expect(() => fakeQuantPerGroupAsym(xt, 4, 3)).toThrow(ConfigError);
      expect(() => fakeQuantPerTokenAsym(xt, 0)).toThrow(/bits/);
      expect(() => fakeQuantPerTokenAsym(xt, 2.5)).toThrow(ConfigError);
      xt.dispose();
    });
  });
}
