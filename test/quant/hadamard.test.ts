/**
 * Hadamard rotations (FFN Had): orthogonality of the Sylvester and block-diagonal matrices, and the
 * invariance W x = (W H^T)(H x) that makes the rotation free in full precision. Oracles are float64 loops.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { blockHadamardMatrix, hadamardBlockSize, hadamardMatrix, hadamardRotate, rotateDownProj } from '../../src/quant/hadamard.ts';
import { Rng } from '../../src/utils/rng.ts';
import { testBackends } from '../helpers/backends.ts';
import { orthogonalityError } from '../helpers/model.ts';

// WebGPU runs on the software adapter in CI; OSP_SKIP_WEBGPU=1 is the explicit switch for machines without Vulkan.
const backends: ConcreteBackend[] = testBackends;

afterAll(async () => {
  await stopBackend();
});

/** Float64 y = A x for a row-major [rows, cols] A. */
function matVec(a: ArrayLike<number>, rows: number, cols: number, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[r]! += a[r * cols + c]! * x[c]!;
  return y;
}

describe('hadamard matrices', () => {
  it('H H^T = I and H is the Sylvester sign pattern for n = 1 .. 64', () => {
    for (let n = 1; n <= 64; n *= 2) {
      const h = hadamardMatrix(n);
      expect(h.length).toBe(n * n);
      expect(orthogonalityError(h, n)).toBeLessThan(1e-6);
      // Independent construction: H_2n = [[H, H], [H, -H]] from H_1 = [1], then scaled by 1/sqrt(n).
      let s: number[][] = [[1]];
      while (s.length < n) s = [...s.map((r) => [...r, ...r]), ...s.map((r) => [...r, ...r.map((v) => -v)])];
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) expect(h[i * n + j]).toBeCloseTo(s[i]![j]! / Math.sqrt(n), 7);
      }
    }
  });

  it('rejects sizes that are not powers of two', () => {
    for (const n of [0, 3, 12, 96, 2.5, -4]) expect(() => hadamardMatrix(n)).toThrow(ConfigError);
  });

  it('block size is the largest power of two dividing the width', () => {
    expect(hadamardBlockSize(96)).toBe(32);
    expect(hadamardBlockSize(352)).toBe(32);
    expect(hadamardBlockSize(11008)).toBe(256);
    expect(hadamardBlockSize(64)).toBe(64);
    expect(hadamardBlockSize(33)).toBe(1);
  });

  for (const width of [96, 352, 64, 12]) {
    it(`block-diagonal Hadamard of width ${width} is orthogonal and block-diagonal`, () => {
      const m = blockHadamardMatrix(width);
      const b = hadamardBlockSize(width);
      expect(orthogonalityError(m, width)).toBeLessThan(1e-6);
      // Entries inside a diagonal b x b block are +-1/sqrt(b); everything else is exactly 0.
      let worstIn = 0;
      let worstOut = 0;
      for (let i = 0; i < width; i++) {
        for (let j = 0; j < width; j++) {
          const v = m[i * width + j]!;
          if (Math.floor(i / b) === Math.floor(j / b)) worstIn = Math.max(worstIn, Math.abs(Math.abs(v) - 1 / Math.sqrt(b)));
          else worstOut = Math.max(worstOut, Math.abs(v));
        }
      }
      expect(worstIn).toBeLessThan(1e-7);
      expect(worstOut).toBe(0);
    });
  }
});

describe('rotateDownProj', () => {
  for (const [rows, cols] of [
    [32, 96],
    [5, 352],
    [3, 64],
  ] as const) {
    it(`[${rows}, ${cols}] equals W H^T with the dense block matrix`, () => {
      const w = Float32Array.from(new Rng(rows + cols).normals(rows * cols));
      const got = rotateDownProj(w, rows, cols);
      const h = blockHadamardMatrix(cols);
      // (W H^T)[r, j] = sum_k W[r, k] H[j, k]
      let worst = 0;
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) {
          let s = 0;
          for (let k = 0; k < cols; k++) s += w[r * cols + k]! * h[j * cols + k]!;
          worst = Math.max(worst, Math.abs(got[r * cols + j]! - s));
        }
      }
      expect(worst).toBeLessThan(1e-5);
    });
  }
});

for (const backend of backends) {
  describe(`hadamardRotate on ${backend}`, () => {
    it('starts', async () => {
      await startBackend(backend);
    });

    for (const [n, rows, cols] of [
      [7, 32, 96],
      [3, 5, 352],
      [4, 6, 64],
      [2, 3, 33],
    ] as const) {
      it(`W x = (W H^T)(H x) for x [${n}, ${cols}], W [${rows}, ${cols}]`, async () => {
        const rng = new Rng(n * 1000 + cols);
        const w = Float32Array.from(rng.normals(rows * cols));
        const x = Float32Array.from(rng.normals(n * cols));
        const before = tf.memory().numTensors;
        const xt = tf.tensor2d(x, [n, cols]);
        const hx = hadamardRotate(xt);
        const rotated = await hx.data();
        xt.dispose();
        hx.dispose();
        expect(tf.memory().numTensors).toBe(before);

        // H x against the dense matrix, then the invariance, both in float64.
        const h = blockHadamardMatrix(cols);
        const wRot = rotateDownProj(w, rows, cols);
        let worstRot = 0;
        let worstOut = 0;
        let scale = 0;
        for (let i = 0; i < n; i++) {
          const xi = x.subarray(i * cols, (i + 1) * cols);
          const hxi = rotated.subarray(i * cols, (i + 1) * cols);
          const want = matVec(h, cols, cols, xi);
          for (let c = 0; c < cols; c++) worstRot = Math.max(worstRot, Math.abs(hxi[c]! - want[c]!));
          const y = matVec(w, rows, cols, xi);
          const y2 = matVec(wRot, rows, cols, hxi);
          for (let r = 0; r < rows; r++) {
            worstOut = Math.max(worstOut, Math.abs(y2[r]! - y[r]!));
            scale = Math.max(scale, Math.abs(y[r]!));
          }
        }
        expect(worstRot).toBeLessThan(1e-5);
        expect(worstOut / scale).toBeLessThan(1e-5);
      });
    }
  });
}
