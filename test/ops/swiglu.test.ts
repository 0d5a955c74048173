/**
 * SwiGLU's gating, silu(gate) * up (src/ops/swiglu.ts), on every backend against a float64 oracle
 * written from the definition: value and both gradients. On native the fused kernels
 * (kernels/native/fused.cc) run, on a NaN-poisoned output pool, and are checked to have run; the
 * closed-form backward (the fallback without a backward kernel) matches autodiff of the reference.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';
import { ShapeError } from '../../src/errors.ts';
import { KERNELS } from '../../src/ops/dispatch.ts';
import { swigluBackwardReference, swigluGate, swigluReference } from '../../src/ops/swiglu.ts';
import { err, randn } from '../helpers/attention64.ts';
import { skipNative, testBackends } from '../helpers/backends.ts';
import { expectKernelsThenReference, poisonNative } from '../helpers/native.ts';

/** h = g sigmoid(g) u and the gradients of sum(h w) in float64: dg = w u s (1 + g (1 - s)), du = w g s. */
function oracle(g: Float32Array, u: Float32Array, w: Float32Array) {
  const h = new Float64Array(g.length);
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = 1 / (1 + Math.exp(-g[i]!));
    h[i] = g[i]! * s * u[i]!;
    dg[i] = w[i]! * u[i]! * (s + g[i]! * s * (1 - s));
    du[i] = w[i]! * g[i]! * s;
  }
  return { h, dg, du };
}

// Large enough that native splits it over its threads (more than 32k elements); gate values up to +-15
// reach sigmoid's flat tails. [37, 1031]: no dimension a multiple of a vector width.
const shape = [37, 1031];
const n = shape[0]! * shape[1]!;
const g = randn(n, 1).map((x) => 5 * x);
const u = randn(n, 2);
const w = randn(n, 3);
const ref = oracle(g, u, w);

async function valueAndGrads(): Promise<Float32Array[]> {
  const [gt, ut, wt] = [g, u, w].map((a) => tf.tensor(a, shape));
  const outs = tf.tidy(() => {
    const h = swigluGate(gt!, ut!);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swigluGate(a, b), wt!)))([gt!, ut!]);
    return [h, ...grads];
  });
  const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose([gt!, ut!, wt!, ...outs]);
  return values;
}

describe('swigluGate: silu(gate) * up', () => {
  afterAll(async () => {
    await stopBackend();
  });

  for (const backend of testBackends) {
    it(`value and gradients match float64 on ${backend}`, async () => {
      await startBackend(backend);
      if (backend === 'native') poisonNative(...Array.from({ length: 8 }, () => n));
      const before = tf.memory().numTensors;
      const [h, dg, du] = await valueAndGrads();
      expect(tf.memory().numTensors).toBe(before);
      // float32 rounding of a few products: 1e-6 of the largest entry.
      expect(err(h!, ref.h), 'h').toBeLessThan(1e-6);
      expect(err(dg!, ref.dg), 'dgate').toBeLessThan(1e-6);
      expect(err(du!, ref.du), 'dup').toBeLessThan(1e-6);
    });
  }

  it.skipIf(skipNative)('runs the fused kernels on native, forward and backward, and the reference ops when switched off', async () => {
    await startBackend('native');
    await expectKernelsThenReference(valueAndGrads, [KERNELS.swiglu, KERNELS.swigluGrad], 'Sigmoid');
  });

  it('the closed-form backward equals autodiff of the reference (cpu)', async () => {
    await startBackend('cpu');
    const [gt, ut, dh] = [g, u, w].map((a) => tf.tensor(a.subarray(0, 2000), [2000]));
    const auto = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swigluReference(a, b), dh!)))([gt!, ut!]);
    const closed = swigluBackwardReference(dh!, gt!, ut!);
    for (let i = 0; i < 2; i++) expect(err(await closed[i]!.data(), await auto[i]!.data())).toBeLessThan(1e-6);
    tf.dispose([gt!, ut!, dh!, ...auto, ...closed]);
  });

  it('refuses gate and up of different shapes, naming both', async () => {
    await startBackend('cpu');
    const [a, b] = [tf.zeros([2, 3]), tf.zeros([3, 2])];
    expect(() => swigluGate(a, b)).toThrow(ShapeError);
    expect(() => swigluGate(a, b)).toThrow(/gate \[2,3\] and up \[3,2\]/);
    tf.dispose([a, b]);
  });
});
