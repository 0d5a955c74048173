/**
 * The fused ops on every backend (cpu, wasm, native, webgpu), forward and gradient, against float64 JS
 * re-computations. Sizes are deliberately odd (not multiples of any workgroup or SIMD width) so that
 * a kernel registered later for one backend is held to the same oracle.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import { adamwUpdate } from '../../src/ops/adamw_update.ts';
import { crossEntropy, crossEntropyBackwardReference, crossEntropyRowsReference } from '../../src/ops/cross_entropy.ts';
import { newtonSchulz } from '../../src/ops/newton_schulz.ts';
import { rmsNorm, rmsNormBackwardReference, rmsNormReference } from '../../src/ops/rms_norm.ts';
import { Rng } from '../../src/utils/rng.ts';
import { normRelErr } from '../helpers/model.ts';
import { testBackends } from '../helpers/backends.ts';

// WebGPU runs on the software adapter in CI; see test/backend/backends.test.ts for the skip switch.
const backends: ConcreteBackend[] = testBackends;

afterAll(async () => {
  await stopBackend();
});

function randn(n: number, seed: number, scale = 1): Float64Array {
  return new Rng(seed).normals(n, scale);
}

/** Float64 RMS norm of rows of x [n, d] with weight w ([d] or [1]) and its gradients for upstream dy. */
function rmsNorm64(x: Float64Array, w: Float64Array, n: number, d: number, eps: number, dy: Float64Array) {
  const y = new Float64Array(n * d);
  const dx = new Float64Array(n * d);
  const dw = new Float64Array(w.length);
  for (let r = 0; r < n; r++) {
    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[r * d + i]! ** 2;
    ms /= d;
    const inv = 1 / Math.sqrt(ms + eps);
    const wi = (i: number) => (w.length === 1 ? w[0]! : w[i]!);
    // dL/dx_i = inv * (w_i dy_i - x_i * inv^2 * mean_j(w_j dy_j x_j))
    let dot = 0;
    for (let i = 0; i < d; i++) dot += wi(i) * dy[r * d + i]! * x[r * d + i]!;
    for (let i = 0; i < d; i++) {
      const xi = x[r * d + i]!;
      y[r * d + i] = xi * inv * wi(i);
      dx[r * d + i] = inv * (wi(i) * dy[r * d + i]! - (xi * inv * inv * dot) / d);
      dw[w.length === 1 ? 0 : i]! += dy[r * d + i]! * xi * inv;
    }
  }
  return { y, dx, dw };
}

/** Float64 mean cross-entropy and its gradient w.r.t. the logits. */
function crossEntropy64(logits: Float64Array, targets: number[], V: number) {
  const n = targets.length;
  const grad = new Float64Array(n * V);
  let loss = 0;
  for (let r = 0; r < n; r++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[r * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[r * V + v]! - m);
    loss += m + Math.log(z) - logits[r * V + targets[r]!]!;
    for (let v = 0; v < V; v++) grad[r * V + v] = (Math.exp(logits[r * V + v]! - m) / z - (v === targets[r] ? 1 : 0)) / n;
  }
  return { loss: loss / n, grad };
}

const nsResults = new Map<ConcreteBackend, Float32Array>();

for (const backend of backends) {
  describe(`ops on ${backend}`, () => {
    it('starts', async () => {
      await startBackend(backend);
      expect(tf.getBackend()).toBe(backend);
    });

    for (const [n, d, wlen] of [
      [7, 33, 33],
      [5, 65, 1],
      [1, 3, 3],
    ] as const) {
      it(`rmsNorm [${n}, ${d}] weight [${wlen}]: value and gradients`, async () => {
        const x = randn(n * d, 1, 3);
        const w = randn(wlen, 2);
        const dy = randn(n * d, 3);
        const ref = rmsNorm64(x, w, n, d, 1e-6, dy);
        const X = tf.tensor2d(Float32Array.from(x), [n, d]);
        const W = tf.tensor1d(Float32Array.from(w));
        const DY = tf.tensor2d(Float32Array.from(dy), [n, d]);
        const y = rmsNorm(X, W, 1e-6);
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a, b, 1e-6), DY)))([X, W]);
        expect(normRelErr(await y.data(), ref.y)).toBeLessThan(1e-5);
        expect(normRelErr(await gx!.data(), ref.dx)).toBeLessThan(1e-5);
        expect(normRelErr(await gw!.data(), ref.dw)).toBeLessThan(1e-5);
        tf.dispose([X, W, DY, y, gx!, gw!]);
      });
    }

    for (const [n, V] of [
      [9, 258],
      [4, 7],
    ] as const) {
      it(`crossEntropy [${n}, ${V}]: value and gradient`, async () => {
        const logits = randn(n * V, 4, 4);
        const targets = Array.from({ length: n }, (_, i) => (i * 37 + 5) % V);
        const ref = crossEntropy64(logits, targets, V);
        const L = tf.tensor2d(Float32Array.from(logits), [n, V]);
        const Tg = tf.tensor1d(targets, 'int32');
        const { value, grads } = tf.valueAndGrads((l: tf.Tensor) => crossEntropy(l as tf.Tensor2D, Tg))([L]);
        expect(Math.abs((await value.data())[0]! - ref.loss) / ref.loss).toBeLessThan(1e-6);
        expect(normRelErr(await grads[0]!.data(), ref.grad)).toBeLessThan(1e-5);
        tf.dispose([L, Tg, value, ...grads]);
      });
    }

    it('newtonSchulz on a 37 x 23 matrix (agreement checked across backends below)', async () => {
      const G = tf.tensor2d(Float32Array.from(randn(37 * 23, 5)), [37, 23]);
      const O = newtonSchulz(G, { steps: 5, coefficients: 'quintic' });
      expect(O.shape).toEqual([37, 23]);
      nsResults.set(backend, (await O.data()) as Float32Array);
      tf.dispose([G, O]);
    });

    it('stops', async () => {
      await stopBackend();
    });
  });
}

describe('cross-backend', () => {
  it('newtonSchulz agrees with the cpu backend', () => {
    const ref = nsResults.get('cpu')!;
    expect(ref).toBeDefined();
    for (const b of backends) {
      expect(nsResults.get(b), b).toBeDefined();
      expect(normRelErr(nsResults.get(b)!, ref), b).toBeLessThan(1e-4);
    }
  });
});

describe('closed-form backwards (used when a backend has a forward kernel only)', () => {
  it('rmsNormBackwardReference equals autodiff of the reference, for weight [d] and [1]', async () => {
    await startBackend('cpu');
    for (const wlen of [9, 1]) {
      const x = tf.tensor(Array.from(randn(3 * 4 * 9, 11)), [3, 4, 9]);
      const w = tf.tensor(Array.from(randn(wlen, 12)), [wlen]);
      const dy = tf.tensor(Array.from(randn(3 * 4 * 9, 13)), [3, 4, 9]);
      const auto = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNormReference(a, b, 1e-5), dy)))([x, w]);
      const closed = rmsNormBackwardReference(dy, x, w, 1e-5);
      for (let i = 0; i < 2; i++) {
        expect(closed[i]!.shape).toEqual(auto[i]!.shape);
        expect(normRelErr(await closed[i]!.data(), await auto[i]!.data())).toBeLessThan(1e-5);
      }
      tf.dispose([x, w, dy, ...auto, ...closed]);
    }
  });

  it('crossEntropyBackwardReference equals autodiff of the per-row reference', async () => {
    await startBackend('cpu');
    const logits = tf.tensor2d(Array.from(randn(5 * 7, 21, 3)), [5, 7]);
    const targets = tf.tensor1d([0, 6, 3, 3, 1], 'int32');
    const dloss = tf.tensor1d(Array.from(randn(5, 22)));
    const auto = tf.grad((l: tf.Tensor) => tf.sum(tf.mul(crossEntropyRowsReference(l as tf.Tensor2D, targets), dloss)))(logits);
    const closed = crossEntropyBackwardReference(dloss, logits, targets);
    expect(normRelErr(await closed.data(), await auto.data())).toBeLessThan(1e-5);
    tf.dispose([logits, targets, dloss, auto, closed]);
  });

  it('adamwUpdate matches a float64 AdamW step', async () => {
    await startBackend('cpu');
    const n = 37;
    const [p, g, m, v] = [1, 2, 3, 4].map((s) => randn(n, 30 + s));
    for (let i = 0; i < n; i++) v[i] = Math.abs(v[i]!);
    const a = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1 - 0.01 * 0.1, bc1: 1 - 0.9 ** 3, bc2Sqrt: Math.sqrt(1 - 0.95 ** 3) };
    const t = [p, g, m, v].map((x) => tf.tensor1d(Array.from(x!)));
    const u = adamwUpdate(t[0]!, t[1]!, t[2]!, t[3]!, a);
    const [pu, mu, vu] = [await u.param.data(), await u.expAvg.data(), await u.expAvgSq.data()];
    for (let i = 0; i < n; i++) {
      const m1 = a.beta1 * m![i]! + (1 - a.beta1) * g![i]!;
      const v1 = a.beta2 * v![i]! + (1 - a.beta2) * g![i]! ** 2;
      const p1 = p![i]! * a.decay - (a.lr / a.bc1) * (m1 / (Math.sqrt(v1) / a.bc2Sqrt + a.eps));
      expect(mu[i]).toBeCloseTo(m1, 5);
      expect(vu[i]).toBeCloseTo(v1, 5);
      expect(pu[i]).toBeCloseTo(p1, 5);
    }
    tf.dispose([...t, u.param, u.expAvg, u.expAvgSq]);
  });
});
