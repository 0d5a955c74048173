/**
 * RoPE (src/ops/rope.ts) on every backend against a float64 rotation written from the definition
 * (channel j and j + hd/2 of a head rotate by angle t theta^(-2j/hd)): value and gradient, odd sizes,
 * the model's own tables. On native the fused kernels (kernels/native/fused.cc) run on a NaN-poisoned
 * output pool, and are checked to have run; bad tables are refused by name.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';
import { ShapeError } from '../../src/errors.ts';
import { ropeTables } from '../../src/model/layers.ts';
import { KERNELS } from '../../src/ops/dispatch.ts';
import { rope } from '../../src/ops/rope.ts';
import { err, randn } from '../helpers/attention64.ts';
import { skipNative, testBackends } from '../helpers/backends.ts';
import { expectKernelsThenReference, poisonNative } from '../helpers/native.ts';

const theta = 10000;

/** y = R(t) x per pair (x_j, x_{j+h}) and the gradient of sum(y w): dx = R(t)^T w, in float64. */
function oracle(shape: number[], x: Float32Array, w: Float32Array) {
  const [B, T, heads, hd] = shape as [number, number, number, number];
  const h = hd / 2;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let n = 0; n < heads; n++) {
        const o = ((b * T + t) * heads + n) * hd;
        for (let j = 0; j < h; j++) {
          const a = t * Math.pow(theta, (-2 * j) / hd);
          const [c, s] = [Math.cos(a), Math.sin(a)];
          y[o + j] = x[o + j]! * c - x[o + j + h]! * s;
          y[o + j + h] = x[o + j + h]! * c + x[o + j]! * s;
          dx[o + j] = w[o + j]! * c + w[o + j + h]! * s;
          dx[o + j + h] = w[o + j + h]! * c - w[o + j]! * s;
        }
      }
  return { y, dx };
}

const cases = [
  [3, 37, 5, 6],
  [2, 70, 4, 34],
  [1, 9, 3, 2],
  [2, 128, 4, 32],
];

async function valueAndGrad(shape: number[], x: Float32Array, w: Float32Array): Promise<Float32Array[]> {
  const T = shape[1]!;
  const hd = shape[3]!;
  const { cos, sin } = ropeTables(T + 3, hd, theta);
  const [xt, wt] = [tf.tensor4d(x, shape as [number, number, number, number]), tf.tensor4d(w, shape as [number, number, number, number])];
  const outs = tf.tidy(() => {
    const c = tf.reshape(tf.slice(cos, [0, 0], [T, hd]), [T, 1, hd]) as tf.Tensor3D;
    const s = tf.reshape(tf.slice(sin, [0, 0], [T, hd]), [T, 1, hd]) as tf.Tensor3D;
    return [rope(xt, c, s), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(rope(a as tf.Tensor4D, c, s), wt)))(xt)];
  });
  const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose([cos, sin, xt, wt, ...outs]);
  return values;
}

describe('rope: rotary position embedding (rotate_half convention)', () => {
  afterAll(async () => {
    await stopBackend();
  });

  for (const backend of testBackends) {
    it(`value and gradient match float64 on ${backend}`, async () => {
      await startBackend(backend);
      for (const shape of cases) {
        const n = shape.reduce((a, b) => a * b, 1);
        const [x, w] = [randn(n, shape[1]!), randn(n, shape[3]! + 100)];
        const ref = oracle(shape, x, w);
        if (backend === 'native') poisonNative(...Array.from({ length: 8 }, () => n));
        const before = tf.memory().numTensors;
        const [y, dx] = await valueAndGrad(shape, x, w);
        expect(tf.memory().numTensors).toBe(before);
        // The tables are float32 roundings of cos and sin: 1e-6 of the largest entry.
        expect(err(y!, ref.y), `y [${shape}]`).toBeLessThan(1e-6);
        expect(err(dx!, ref.dx), `dx [${shape}]`).toBeLessThan(1e-6);
      }
    });
  }

  it.skipIf(skipNative)('runs the fused kernels on native, forward and backward, and the reference ops when switched off', async () => {
    await startBackend('native');
    const n = 2 * 9 * 3 * 8;
    await expectKernelsThenReference(() => valueAndGrad([2, 9, 3, 8], randn(n, 1), randn(n, 2)), [KERNELS.rope, KERNELS.ropeGrad], 'Neg');
  });

  it('refuses tables of the wrong shape or an odd head dimension, naming the table', async () => {
    await startBackend('cpu');
    const x = tf.zeros([1, 4, 2, 6]) as tf.Tensor4D;
    const good = tf.zeros([4, 1, 6]) as tf.Tensor3D;
    expect(() => rope(x, tf.zeros([5, 1, 6]) as tf.Tensor3D, good)).toThrow(ShapeError);
    expect(() => rope(x, good, tf.zeros([4, 6, 1]) as tf.Tensor3D)).toThrow(/sin must be \[4, 1, 6\]/);
    expect(() =>
      rope(tf.zeros([1, 4, 2, 5]) as tf.Tensor4D, tf.zeros([4, 1, 5]) as tf.Tensor3D, tf.zeros([4, 1, 5]) as tf.Tensor3D),
    ).toThrow(/even head dimension/);
  });
});
