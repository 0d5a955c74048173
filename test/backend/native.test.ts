/**
 * The native backend's kernels against tfjs's cpu kernels (the reference they replace), on random
 * inputs of odd shapes: every transpose combination and broadcast batch of the matrix products, the
 * broadcasting patterns of the elementwise ops, reductions over every axis set, and the layout ops.
 * The fused ops (rmsNorm, cross-entropy, AdamW, Newton-Schulz, channel moments) are held to float64
 * oracles in test/ops, which run on native too. Skipped only with OSP_SKIP_NATIVE=1.
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';
import { hessianOperator, modelLossFn } from '../../src/metrics/hessian.ts';
import { createModel } from '../../src/model/transformer.ts';
import { crossEntropy } from '../../src/ops/cross_entropy.ts';
import { rmsNorm } from '../../src/ops/rms_norm.ts';
import { Rng } from '../../src/utils/rng.ts';
import { skipNative } from '../helpers/backends.ts';

type Out = { shape: number[]; dtype: string; values: Float32Array | Int32Array | Uint8Array };

/** Runs f on cpu, then on native, with the same inputs (plain arrays, turned into tensors on each). */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<[Out[], Out[]]> {
  const run = async (backend: string): Promise<Out[]> => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const result = tf.tidy(f);
    const list = Array.isArray(result) ? result : [result];
    const out: Out[] = [];
    for (const t of list) out.push({ shape: t.shape, dtype: t.dtype, values: (await t.data()) as Out['values'] });
    tf.dispose(list);
    expect(tf.memory().numTensors).toBe(before);
    return out;
  };
  const ref = await run('cpu');
  const nat = await run('native');
  return [ref, nat];
}

/** Same shapes and dtypes; values within `tol` of max|ref| (NaN where the reference has NaN). */
async function expectSame(f: () => tf.Tensor | tf.Tensor[], tol = 1e-6): Promise<void> {
  const [ref, nat] = await onBoth(f);
  expect(nat.length).toBe(ref.length);
  ref.forEach((r, i) => {
    const n = nat[i]!;
    expect(n.shape).toEqual(r.shape);
    expect(n.dtype).toBe(r.dtype);
    let scale = 0;
    for (const v of r.values) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let j = 0; j < r.values.length; j++) {
      const a = n.values[j]!;
      const b = r.values[j]!;
      if (Number.isNaN(b)) {
        expect(Number.isNaN(a)).toBe(true);
        continue;
      }
      if (!Number.isFinite(b)) {
        expect(a).toBe(b);
        continue;
      }
      const e = Math.abs(a - b) / Math.max(scale, 1e-30);
      if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
    }
    expect(worst).toBeLessThanOrEqual(tol);
  });
}

const rng = new Rng(2024);
const rand = (shape: number[], scale = 1) =>
  tf.tensor(
    Array.from(
      rng.normals(
        shape.reduce((a, d) => a * d, 1),
        scale,
      ),
    ),
    shape,
  );
/** Random values, fixed per call site so that both backends see the same numbers. */
const fixed = (shape: number[], scale = 1, positive = false) => {
  const v = Array.from(
    rng.normals(
      shape.reduce((a, d) => a * d, 1),
      scale,
    ),
  ).map((x) => (positive ? Math.abs(x) + 0.1 : x));
  return () => tf.tensor(v, shape);
};

describe.skipIf(skipNative)('native backend kernels vs tfjs cpu', () => {
  beforeAll(async () => {
    await startBackend('cpu');
    await startBackend('native');
  });
  afterAll(async () => {
    await stopBackend();
  });

  it('reports the GEMM in use (OpenBLAS where built in, else the portable one) and its thread count', async () => {
    const { loadNativeAddon } = await import('../../src/backend/native/addon.ts');
    const addon = loadNativeAddon();
    const info = await startBackend('native');
    expect(info.name).toBe('native');
    if (addon.gemmKind() === 'openblas') expect(info.detail).toMatch(/over OpenBLAS \(OpenBLAS [\d.]+/);
    else expect(info.detail).toMatch(/over portable (AVX2|generic) GEMM/);
    // Without OSP_NATIVE_GEMM, OpenBLAS is the default wherever this build has it.
    if (!process.env.OSP_NATIVE_GEMM) expect(addon.gemmKind()).toBe(addon.gemmKinds()[0]);
    expect(info.detail).toMatch(/threads \d+/);
  });

  describe('matMul: every transpose combination, broadcast batches, odd sizes', () => {
    const cases: [number[], number[]][] = [
      [
        [7, 13],
        [13, 5],
      ],
      [
        [1, 1],
        [1, 1],
      ],
      [
        [33, 65],
        [65, 17],
      ],
      [
        [3, 7, 13],
        [3, 13, 5],
      ],
      [
        [5, 3, 8],
        [8, 4],
      ], // a batch against one matrix
      [
        [4, 0],
        [0, 3],
      ], // K = 0 gives zeros
    ];
    for (const [sa, sb] of cases) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          it(`[${sa}]${ta ? 'ᵀ' : ''} x [${sb}]${tb ? 'ᵀ' : ''}`, async () => {
            const swap = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!] : s);
            const a = fixed(swap(sa, ta));
            const b = fixed(swap(sb, tb));
            await expectSame(() => tf.matMul(a(), b(), ta, tb), 1e-5);
          });
        }
      }
    }

    it('broadcast batch dimensions follow numpy: [2, 1] x [3] -> [2, 3] (tfjs cpu differs: it cycles flat indices)', async () => {
      // Oracle: the same product with both batches tiled out explicitly, on the cpu backend.
      for (const [ta, tb] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const a = fixed(ta ? [2, 1, 9, 4] : [2, 1, 4, 9]);
        const b = fixed(tb ? [3, 6, 9] : [3, 9, 6]);
        await tf.setBackend('cpu');
        const expected = tf.tidy(() => tf.matMul(tf.tile(a(), [1, 3, 1, 1]), tf.tile(tf.expandDims(b(), 0), [2, 1, 1, 1]), ta, tb));
        const want = await expected.data();
        expected.dispose();
        await tf.setBackend('native');
        const got = tf.tidy(() => tf.matMul(a(), b(), ta, tb));
        expect(got.shape).toEqual([2, 3, 4, 6]);
        const have = await got.data();
        got.dispose();
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(have[i]! - want[i]!));
        expect(worst).toBeLessThan(1e-5);
      }
    });

    it('fused matMul with bias and each activation; prelu falls back to tfjs', async () => {
      const a = fixed([6, 11]);
      const b = fixed([11, 9]);
      const bias = fixed([9]);
      const alpha = fixed([9]);
      for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu'] as const) {
        await expectSame(() => tf.fused.matMul({ a: a(), b: b(), bias: bias(), activation, leakyreluAlpha: 0.3 }), 1e-5);
      }
      await expectSame(() => tf.fused.matMul({ a: a(), b: b(), transposeB: false, activation: 'relu' }), 1e-5);
      await expectSame(() => tf.fused.matMul({ a: a(), b: b(), bias: bias(), activation: 'prelu', preluActivationWeights: alpha() }), 1e-5);
    });

    it('gradients of a batched matMul match', async () => {
      const a = fixed([2, 5, 7]);
      const b = fixed([2, 7, 3]);
      await expectSame(() => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, false, false))))([a(), b()]), 1e-5);
    });
  });

  describe('elementwise', () => {
    const shapes: [number[], number[]][] = [
      [
        [2, 3, 5],
        [2, 3, 5],
      ],
      [[2, 3, 5], [5]],
      [[2, 3, 5], []],
      [[], [4, 3]],
      [
        [2, 1, 5],
        [3, 1],
      ],
      [
        [1, 3, 1],
        [2, 1, 7],
      ],
      [
        [4, 1],
        [1, 6],
      ],
      [[0, 3], [3]],
      [[70000], [70000]], // above the size split over threads
      [[300, 257], [257]],
    ];
    for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'squaredDifference'] as const) {
      it(`${op} with broadcasting`, async () => {
        for (const [sa, sb] of shapes) {
          const a = fixed(sa, 1, op === 'pow');
          const b = fixed(sb, 1, op === 'div');
          await expectSame(() => tf[op](a(), b()), 1e-6);
        }
      });
    }

    it('int32 operands take tfjs cpu kernels and stay int32', async () => {
      await expectSame(() => tf.add(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')));
      await expectSame(() => tf.mul(tf.tensor1d([1, 2, 3], 'int32'), tf.scalar(3, 'int32')));
    });

    it('NaN propagates through maximum, minimum and relu as in tfjs', async () => {
      await expectSame(() => tf.maximum(tf.tensor1d([NaN, 1, -1]), tf.tensor1d([0, NaN, 0])));
      await expectSame(() => tf.minimum(tf.tensor1d([NaN, 1, -1]), tf.tensor1d([0, NaN, 0])));
      await expectSame(() => tf.relu(tf.tensor1d([NaN, 1, -1])));
    });

    const unary: [string, (x: tf.Tensor) => tf.Tensor, boolean][] = [
      ['exp', tf.exp, false],
      ['log', tf.log, true],
      ['sqrt', tf.sqrt, true],
      ['rsqrt', tf.rsqrt, true],
      ['square', tf.square, false],
      ['neg', tf.neg, false],
      ['abs', tf.abs, false],
      ['sigmoid', tf.sigmoid, false],
      ['relu', tf.relu, false],
      ['tanh', tf.tanh, false],
      ['reciprocal', tf.reciprocal, true],
      ['elu', tf.elu, false],
      ['relu6', (x) => tf.relu6(tf.mul(x, 5)), false],
      ['leakyRelu', (x) => tf.leakyRelu(x, 0.15), false],
      ['softplus', tf.softplus, false],
      ['log1p', tf.log1p, true],
    ];
    for (const [name, f, positive] of unary) {
      it(`${name}`, async () => {
        for (const shape of [[3, 7], [1], [70001]]) {
          const x = fixed(shape, 2, positive);
          await expectSame(() => f(x()), 2e-6);
        }
      });
    }
  });

  describe('reductions, softmax, layout', () => {
    const x = fixed([3, 4, 5]);
    for (const op of ['sum', 'mean', 'max', 'min', 'prod'] as const) {
      it(`${op} over every axis set, with and without keepDims`, async () => {
        for (const axis of [undefined, 0, 1, 2, -1, [0, 2], [1, 2], [0, 1, 2]]) {
          for (const keepDims of [false, true]) await expectSame(() => tf[op](x(), axis, keepDims), 1e-6);
        }
      });
    }

    it('softmax on the last axis; other axes fall back', async () => {
      const y = fixed([2, 3, 257], 3);
      await expectSame(() => tf.softmax(y(), -1), 1e-6);
      await expectSame(() => tf.softmax(y()), 1e-6);
      await expectSame(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.softmax(t), t)))(y()), 1e-5);
    });

    it('transpose with every permutation of rank 3 and some of rank 5', async () => {
      const perms = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
      ];
      for (const p of perms) await expectSame(() => tf.transpose(x(), p));
      const y = fixed([2, 3, 1, 4, 5]);
      for (const p of [
        [4, 3, 2, 1, 0],
        [0, 2, 1, 4, 3],
        [3, 0, 4, 1, 2],
      ])
        await expectSame(() => tf.transpose(y(), p));
    });

    it('slice (one cut dimension natively, more via tfjs), splitV and concat, float32 and int32', async () => {
      await expectSame(() => tf.slice(x(), [0, 1, 0], [3, 2, 5]));
      await expectSame(() => tf.slice(x(), [1, 0, 0], [1, 4, 5]));
      await expectSame(() => tf.slice(x(), [0, 0, 2], [3, 4, 3]));
      await expectSame(() => tf.slice(x(), [1, 1, 1], [2, 2, 2]));
      for (const axis of [0, 1, 2]) await expectSame(() => tf.split(x(), axis === 2 ? [1, 3, 1] : axis === 1 ? 2 : 3, axis));
      for (const axis of [0, 1, 2, -1]) await expectSame(() => tf.concat([x(), tf.mul(x(), 2), tf.slice(x(), [0, 0, 0], [3, 4, 5])], axis));
      const ints = () => tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
      await expectSame(() => tf.concat([ints(), ints()], 1));
      await expectSame(() => tf.slice(ints(), [0, 1], [2, 2]));
    });

    it('gather on every axis, and unsortedSegmentSum (the gather gradient)', async () => {
      const idx = () => tf.tensor1d([3, 0, 3, 1], 'int32');
      for (const axis of [0, 1, 2]) await expectSame(() => tf.gather(x(), axis === 0 ? tf.tensor1d([2, 0, 2], 'int32') : idx(), axis));
      const data = fixed([6, 4]);
      await expectSame(() => tf.unsortedSegmentSum(data(), tf.tensor1d([0, 2, 2, 1, 0, 2], 'int32'), 4));
      const table = fixed([10, 3]);
      await expectSame(() => tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, tf.tensor1d([1, 7, 1, 9], 'int32')))))(table()), 1e-6);
    });
  });

  it('exact Hessian-vector products of the model are the same as on cpu (fused backwards are switched off inside)', async () => {
    const cfg = { vocabSize: 20, hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 8, norm: 'ssnorm', embedding: 'embproj' };
    const hv = async (backend: string) => {
      await startBackend(backend);
      const m = createModel(cfg, { seed: 3 });
      const x = tf.tensor2d([[1, 5, 7, 2, 9, 4, 3, 0]], undefined, 'int32');
      const y = tf.tensor2d([[5, 7, 2, 9, 4, 3, 0, 11]], undefined, 'int32');
      const op = await hessianOperator(modelLossFn(m, x, y), m.params, { method: 'exact' });
      const v = new Rng(5).normals(op.dim);
      const out = await op.apply(v);
      tf.dispose([x, y]);
      m.dispose();
      return out;
    };
    const ref = await hv('cpu');
    const nat = await hv('native');
    let num = 0;
    let den = 0;
    for (let i = 0; i < ref.length; i++) {
      num += (nat[i]! - ref[i]!) ** 2;
      den += ref[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-4);
  });

  describe('the output pool (recycled Float32Arrays) never hands out an array anything can still see', () => {
    const storage = (t: tf.Tensor) =>
      (tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }).data.get(t.dataId).values;

    it('recycles a disposed output of the same size (the point of the pool)', async () => {
      await tf.setBackend('native');
      const a = tf.randomNormal([64, 33]);
      const first = tf.add(a, 1);
      const arr = storage(first);
      first.dispose();
      const second = tf.mul(a, 2);
      expect(storage(second)).toBe(arr);
      tf.dispose([a, second]);
    });

    it('arrays returned by dataSync / data keep their values', async () => {
      await tf.setBackend('native');
      const a = tf.randomNormal([64, 33]);
      const t = tf.add(a, 1);
      const read = t.dataSync();
      const copy = Float32Array.from(read);
      t.dispose();
      const async = tf.add(a, 2);
      const readAsync = await async.data();
      const copyAsync = Float32Array.from(readAsync);
      async.dispose();
      for (let i = 0; i < 5; i++) tf.tidy(() => tf.sub(tf.mul(a, 7), 3).dataSync());
      tf.tidy(() => tf.mul(a, -5));
      expect(read).toEqual(copy);
      expect(readAsync).toEqual(copyAsync);
      a.dispose();
    });

    it('a user array given to tf.tensor is never written', async () => {
      await tf.setBackend('native');
      const mine = Float32Array.from({ length: 48 }, (_, i) => i);
      const t = tf.tensor2d(mine, [6, 8]);
      tf.tidy(() => tf.add(t, 1)).dispose();
      t.dispose();
      for (let i = 0; i < 3; i++) tf.tidy(() => tf.mul(tf.ones([6, 8]), 9)).dispose();
      expect(Array.from(mine)).toEqual(Array.from({ length: 48 }, (_, i) => i));
    });

    it('a view a tfjs cpu kernel keeps of a native output stays valid', async () => {
      await tf.setBackend('native');
      const a = tf.randomNormal([4, 6, 5]);
      const src = tf.add(a, 1); // a native output
      const expected = await tf.tidy(() => tf.slice(src, [2, 0, 0], [1, 6, 5]).reshape([6, 5])).data();
      // tfjs's cpu Unpack (not overridden) returns subarray views of src's storage; src is then
      // disposed and outputs of its size are written.
      const parts = tf.unstack(src);
      src.dispose();
      for (let i = 0; i < 3; i++) tf.tidy(() => tf.mul(a, 100)).dispose();
      expect(await parts[2]!.data()).toEqual(expected);
      tf.dispose([a, ...parts]);
    });
  });

  it('fused ops at training sizes, where the pool splits rows over threads, match the references on cpu', async () => {
    // 2048 rows x 128: far above the size split over threads (small test shapes run on one thread).
    const x = fixed([2048, 128]);
    const dy = fixed([2048, 128]);
    for (const wlen of [128, 1]) {
      const w = fixed([wlen]);
      await expectSame(() => rmsNorm(x(), w(), 1e-6), 1e-5);
      await expectSame(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a, b, 1e-6), dy())))([x(), w()]), 1e-5);
    }
    const logits = fixed([2048, 300], 3);
    const targets = () =>
      tf.tensor1d(
        Array.from({ length: 2048 }, (_, i) => (i * 37) % 300),
        'int32',
      );
    await expectSame(() => tf.grad((l: tf.Tensor) => crossEntropy(l as tf.Tensor2D, targets()))(logits()), 1e-5);
  });

  it('a training step keeps tensor memory flat', async () => {
    await tf.setBackend('native');
    const w = tf.variable(rand([16, 8]));
    const step = () =>
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => tf.mean(tf.square(tf.matMul(rand([4, 16]), w))) as tf.Scalar);
        w.assign(tf.sub(w, tf.mul(grads[w.name]!, 0.1)));
      });
    step();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(n);
    w.dispose();
  });

  it("the fused kernels' exponential (exp_approx.h) is within 2 float ulps of exp over the whole range", async () => {
    const { loadNativeAddon } = await import('../../src/backend/native/addon.ts');
    const addon = loadNativeAddon();
    // 2e5 points over [-87.3, 88.37] plus the edges; each result against exp in float64.
    const n = 200_001;
    const x = Float32Array.from({ length: n }, (_, i) => -87.3 + (175.67 * i) / (n - 1));
    const out = new Float32Array(n);
    addon.expApprox(x, out, n);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp(x[i]!);
      worst = Math.max(worst, Math.abs(out[i]! - e) / e);
    }
    expect(worst).toBeLessThanOrEqual(2 * 2 ** -23);
    const edges = Float32Array.from([0, -0, NaN, -Infinity, Infinity, -1000, 1000]);
    const got = new Float32Array(edges.length);
    addon.expApprox(edges, got, edges.length);
    expect(got[0]).toBe(1);
    expect(got[1]).toBe(1);
    expect(got[2]).toBeNaN();
    // Saturation instead of 0 and infinity: e^-87.3 and e^88.37 in float.
    for (const i of [3, 5]) expect(got[i]! / Math.exp(-87.3)).toBeCloseTo(1, 5);
    for (const i of [4, 6]) expect(got[i]! / Math.exp(88.37)).toBeCloseTo(1, 5);
  });

  it('bad buffers are refused by the addon, not read out of bounds', async () => {
    const { loadNativeAddon } = await import('../../src/backend/native/addon.ts');
    const addon = loadNativeAddon();
    const out = new Float32Array(4);
    expect(() => addon.gemm(new Float32Array(3), new Float32Array(4), out, 1, 2, 2, 2, 0, 0, new Int32Array(1), new Int32Array(1))).toThrow(
      /outside its operand/,
    );
    expect(() => addon.unary(0, new Float32Array(4), new Float32Array(3), 0)).toThrow(/length 3, expected 4/);
    expect(() => addon.crossEntropy(new Float32Array(4), Int32Array.from([0, 7]), new Float32Array(2), 2, 2)).toThrow(/target 7 outside/);
  });
});

describe('native backend without its kernel pack', () => {
  it('is reported unavailable with the command that builds it', () => {
    const code = `import('./src/backend/index.ts').then((m) => m.startBackend('native')).catch((e) => { console.log(e.message); })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      encoding: 'utf8',
      env: { ...process.env, OSP_NATIVE_ADDON: '/nonexistent/osp_native.node' },
    });
    expect(r.stdout).toMatch(
      /backend 'native' is unavailable: the native kernel pack is not built \(\/nonexistent\/osp_native.node is missing\)/,
    );
    expect(r.stdout).toMatch(/apt-get install g\+\+ make python3/);
    expect(r.stdout).toMatch(/npm run build:native/);
    expect(r.stdout).toMatch(/apt-get install libopenblas-dev/);
  });
});
