/**
 * channelMoments on every backend against float64 sums of the same float32 inputs. Shapes are odd (not
 * multiples of a workgroup or SIMD width) so that a kernel registered later is held to the same oracle.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import { channelMoments } from '../../src/ops/channel_moments.ts';
import { ShapeError } from '../../src/errors.ts';
import { Rng } from '../../src/utils/rng.ts';
import { testBackends } from '../helpers/backends.ts';

// WebGPU runs on the software adapter in CI; where no adapter exists it is left out (test/helpers/backends.ts).
const backends: ConcreteBackend[] = testBackends;

afterAll(async () => {
  await stopBackend();
});

/** Float64 power sums of x [n, d]: token [n*4] and channel [d*4], row-major like the op's outputs. */
function moments64(x: Float64Array, n: number, d: number) {
  const token = new Float64Array(n * 4);
  const channel = new Float64Array(d * 4);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) {
      const v = x[t * d + i]!;
      let p = 1;
      for (let k = 0; k < 4; k++) {
        p *= v;
        token[t * 4 + k]! += p;
        channel[i * 4 + k]! += p;
      }
    }
  }
  return { token, channel };
}

/**
 * Norm-wise relative error of each power separately (column k of a [rows, 4] matrix): the x and x^3
 * sums cancel and are small next to the x^4 sums, so one norm over all four would hide their errors.
 */
function worstColumnErr(got: ArrayLike<number>, ref: Float64Array, rows: number): number {
  let worst = 0;
  for (let k = 0; k < 4; k++) {
    let num = 0;
    let den = 0;
    for (let r = 0; r < rows; r++) {
      num += (got[r * 4 + k]! - ref[r * 4 + k]!) ** 2;
      den += ref[r * 4 + k]! ** 2;
    }
    const e = Math.sqrt(num / den);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst;
}

for (const backend of backends) {
  describe(`channelMoments on ${backend}`, () => {
    it('starts', async () => {
      await startBackend(backend);
      expect(tf.getBackend()).toBe(backend);
    });

    for (const [n, d] of [
      [37, 29],
      [1, 5],
      [130, 256],
      [3, 1],
    ] as const) {
      it(`[${n}, ${d}] matches float64 sums`, async () => {
        // Rounded to float32 first so that the oracle sums exactly the values the backend sees.
        const x = Float64Array.from(Float32Array.from(new Rng(n * 1000 + d).normals(n * d, 2)));
        const ref = moments64(x, n, d);
        const X = tf.tensor2d(Float32Array.from(x), [n, d]);
        const before = tf.memory().numTensors;
        const { token, channel } = channelMoments(X);
        expect(token.shape).toEqual([n, 4]);
        expect(channel.shape).toEqual([d, 4]);
        expect(tf.memory().numTensors - before).toBe(2); // only the two outputs survive
        expect(worstColumnErr(await token.data(), ref.token, n)).toBeLessThanOrEqual(1e-5);
        expect(worstColumnErr(await channel.data(), ref.channel, d)).toBeLessThanOrEqual(1e-5);
        tf.dispose([X, token, channel]);
      });
    }

    it('rejects inputs that are not 2-D float32', () => {
      const x3 = tf.zeros([2, 3, 4]);
      const xi = tf.zeros([2, 3], 'int32');
      expect(() => channelMoments(x3 as tf.Tensor2D)).toThrow(ShapeError);
      expect(() => channelMoments(xi as tf.Tensor2D)).toThrow(/float32/);
      tf.dispose([x3, xi]);
    });

    it('stops', async () => {
      await stopBackend();
    });
  });
}
