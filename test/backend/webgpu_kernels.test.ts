/**
 * osp-lab's WGSL kernels (kernels/wgsl, registered by src/backend/webgpu/kernels.ts) against the
 * ops' plain-tfjs reference implementations run on the cpu backend: random inputs, shapes that are
 * not multiples of any workgroup or tile size, output buffers poisoned with NaN first (a kernel that
 * skips an element leaves NaN behind, and NaN fails every comparison). Then gradients through the
 * ops, flat tensor counts, and a 20-step training run that must match the cpu backend's losses.
 *
 * WebGPU runs on Mesa's lavapipe software adapter where there is no GPU; OSP_SKIP_WEBGPU=1 skips.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { currentBackend } from '../../src/backend/index.ts';
import { adamwMultiDispatchCount } from '../../src/backend/webgpu/adamw.ts';
import { attentionSubgroupSize } from '../../src/backend/webgpu/attention.ts';
import { registerWebGPUKernels } from '../../src/backend/webgpu/kernels.ts';
import { ShapeError } from '../../src/errors.ts';
import { adamwUpdate, adamwUpdateReference, type AdamWUpdateAttrs } from '../../src/ops/adamw_update.ts';
import { channelMoments, channelMomentsReference } from '../../src/ops/channel_moments.ts';
import { crossEntropy, crossEntropyBackwardReference, crossEntropyRowsReference } from '../../src/ops/cross_entropy.ts';
import { hasKernel, KERNELS, setKernelsEnabled, type KernelName } from '../../src/ops/dispatch.ts';
import { newtonSchulz, newtonSchulzReference, nsSchedule, type NsCoefficientKind } from '../../src/ops/newton_schulz.ts';
import { rmsNorm, rmsNormBackwardReference, rmsNormReference } from '../../src/ops/rms_norm.ts';
import { softmaxGradReference } from '../../src/ops/softmax_grad.ts';
import type { Callback } from '../../src/train/callback.ts';
import { train } from '../../src/train/run.ts';
import { Rng } from '../../src/utils/rng.ts';
import { lossesByStep, tempDir, tinyRun } from '../helpers/run.ts';

import { skipWebGPU as skip } from '../helpers/backends.ts';
import { compiledPrograms, poison, useWebGPU } from '../helpers/webgpu.ts';

function randn(n: number, seed: number, std = 1): Float32Array {
  return Float32Array.from(new Rng(seed).normals(n, std));
}

function randInts(n: number, max: number, seed: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: n }, () => r.int(max));
}

/** ||a - b|| / ||b||; NaN anywhere in a counts as an infinite error. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) return Infinity;
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Runs fn on the cpu backend and returns its outputs' values; webgpu is active again afterwards. */
async function onCpu(fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  try {
    const out = fn();
    const list = Array.isArray(out) ? out : [out];
    const values = list.map((t) => t.dataSync() as Float32Array);
    tf.dispose(list);
    return values;
  } finally {
    await tf.setBackend('webgpu');
  }
}

async function values(t: tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  const list = Array.isArray(t) ? t : [t];
  const out = await Promise.all(list.map(async (x) => (await x.data()) as Float32Array));
  tf.dispose(list);
  return out;
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** The kernels kernels/wgsl implements. */
const MINE: KernelName[] = [
  KERNELS.rmsNorm,
  KERNELS.rmsNormGrad,
  KERNELS.crossEntropy,
  KERNELS.crossEntropyGrad,
  KERNELS.adamwUpdate,
  KERNELS.adamwUpdateMulti,
  KERNELS.newtonSchulz,
  KERNELS.channelMoments,
  KERNELS.softmaxGrad,
  KERNELS.causalAttention,
  KERNELS.causalAttentionGrad,
];

describe.skipIf(skip)('WGSL kernels on webgpu', () => {
  useWebGPU();

  it('registers every fused kernel on webgpu', () => {
    const software = currentBackend()?.softwareAdapter === true;
    for (const name of MINE) {
      expect(tf.getKernel(name, 'webgpu'), name).toBeDefined();
      // Attention starts switched off on a software adapter only where it would run the tile kernels
      // (no faster there, slow to compile); with subgroups (lavapipe) it runs the generated ones, on.
      const off = software && name === KERNELS.causalAttention && attentionSubgroupSize() === undefined;
      expect(hasKernel(name), name).toBe(!off);
    }
    // The WGSL BatchMatMul replaces tfjs's only on a software adapter (lavapipe here).
    expect(hasKernel(KERNELS.batchMatMul)).toBe(currentBackend()?.softwareAdapter === true);
  });

  it('poisoning works: a program that writes one element leaves NaN in the rest', async () => {
    await poison(231);
    const x = tf.ones([231]);
    const backend = tf.backend() as unknown as {
      runWebGPUProgram(p: object, inputs: tf.TensorInfo[], dtype: tf.DataType): tf.TensorInfo;
    };
    const info = backend.runWebGPUProgram(
      {
        outputShape: [231],
        shaderKey: 'osp_test_poison_probe',
        dispatchLayout: { x: [0] },
        dispatch: [1, 1, 1],
        variableNames: ['x'],
        workgroupSize: [1, 1, 1],
        size: true,
        getUserCode: () => 'fn main(index : i32) { result[0] = x[0] * f32(uniforms.size); }',
      },
      [x],
      'float32',
    );
    const [v] = await values(tf.engine().makeTensorFromTensorInfo(info));
    x.dispose();
    expect(v![0]).toBe(231);
    expect(Number.isNaN(v![1]!) && Number.isNaN(v![230]!)).toBe(true);
  });

  const rmsShapes: number[][] = [
    [1, 1],
    [7, 3],
    [7, 33],
    [2, 3, 65],
    [1, 257],
    [7, 1000],
  ];
  for (const shape of rmsShapes) {
    const d = shape[shape.length - 1]!;
    for (const wd of d === 1 ? [1] : [d, 1]) {
      it(`OspRmsNorm and OspRmsNormGrad, x [${shape}], weight [${wd}]`, async () => {
        const xs = randn(numel(shape), 1 + d);
        const ws = Float32Array.from(randn(wd, 2 + d), (v) => 1 + 0.5 * v);
        const dys = randn(numel(shape), 3 + d);
        // With d = 1 and a tiny eps, dx = r g eps / (x^2 + eps) is the difference of two nearly equal
        // float32 numbers (g r and g r xh^2), pure rounding noise in any implementation; a larger eps
        // keeps that case meaningful.
        const eps = d === 1 ? 0.1 : 1e-6;
        const [yRef, dxRef, dwRef] = await onCpu(() => {
          const [x, w, dy] = [tf.tensor(xs, shape), tf.tensor1d(ws), tf.tensor(dys, shape)];
          return [rmsNormReference(x, w, eps), ...rmsNormBackwardReference(dy, x, w, eps)];
        });
        const [x, w, dy] = [tf.tensor(xs, shape), tf.tensor1d(ws), tf.tensor(dys, shape)];
        await poison(numel(shape));
        const [y] = await values(tf.engine().runKernel(KERNELS.rmsNorm, { x, weight: w }, { eps }) as tf.Tensor);
        expect(relErr(y!, yRef!)).toBeLessThan(1e-5);
        await poison(numel(shape), numel(shape), shape[0]!, d, wd);
        const g = tf.engine().runKernel(KERNELS.rmsNormGrad, { dy, x, weight: w }, { eps }) as tf.Tensor[];
        expect(g[0]!.shape).toEqual(shape);
        expect(g[1]!.shape).toEqual([wd]);
        const [dx, dw] = await values(g);
        expect(relErr(dx!, dxRef!), 'dx').toBeLessThan(1e-5);
        expect(relErr(dw!, dwRef!), 'dweight').toBeLessThan(1e-5);
        tf.dispose([x, w, dy]);
      });
    }
  }

  // V = 1 is left out: the reference's tf.oneHot needs depth >= 2.
  const ceShapes: [number, number][] = [
    [1, 2],
    [7, 3],
    [7, 33],
    [1, 257],
    [7, 1000],
    [3, 65],
  ];
  for (const [n, v] of ceShapes) {
    it(`OspCrossEntropy and OspCrossEntropyGrad, logits [${n}, ${v}]`, async () => {
      const ls = randn(n * v, 10 + v, 3);
      const ts = randInts(n, v, 11 + v);
      const dl = randn(n, 12 + v);
      const [lossRef, gradRef] = await onCpu(() => {
        const [l, t, d] = [tf.tensor2d(ls, [n, v]), tf.tensor1d(ts, 'int32'), tf.tensor1d(dl)];
        return [crossEntropyRowsReference(l, t), crossEntropyBackwardReference(d, l, t)];
      });
      const [l, t, d] = [tf.tensor2d(ls, [n, v]), tf.tensor1d(ts, 'int32'), tf.tensor1d(dl)];
      await poison(n);
      const [loss] = await values(tf.engine().runKernel(KERNELS.crossEntropy, { logits: l, targets: t }, {}) as tf.Tensor);
      expect(relErr(loss!, lossRef!)).toBeLessThan(1e-5);
      await poison(n * v);
      const [grad] = await values(tf.engine().runKernel(KERNELS.crossEntropyGrad, { dloss: d, logits: l, targets: t }, {}) as tf.Tensor);
      expect(relErr(grad!, gradRef!)).toBeLessThan(1e-5);
      tf.dispose([l, t, d]);
    });
  }

  const adamShapes: number[][] = [[1], [3], [33], [7, 65], [257, 3], [1000]];
  for (const shape of adamShapes) {
    it(`OspAdamWUpdate, [${shape}]`, async () => {
      const n = numel(shape);
      const [ps, gs, ms] = [randn(n, 20 + n), randn(n, 21 + n), randn(n, 22 + n, 0.1)];
      const vs = Float32Array.from(randn(n, 23 + n), (x) => x * x * 0.01);
      const step = 7;
      const attrs: AdamWUpdateAttrs = {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        decay: 1 - 3e-3 * 0.1,
        bc1: 1 - 0.9 ** step,
        bc2Sqrt: Math.sqrt(1 - 0.95 ** step),
      };
      const refs = await onCpu(() => {
        const u = adamwUpdateReference(tf.tensor(ps, shape), tf.tensor(gs, shape), tf.tensor(ms, shape), tf.tensor(vs, shape), attrs);
        return [u.param, u.expAvg, u.expAvgSq];
      });
      const ins = [ps, gs, ms, vs].map((a) => tf.tensor(a, shape));
      await poison(n, n, n);
      const out = tf
        .engine()
        .runKernel(KERNELS.adamwUpdate, { param: ins[0]!, grad: ins[1]!, expAvg: ins[2]!, expAvgSq: ins[3]! }, { ...attrs }) as tf.Tensor[];
      out.forEach((t) => expect(t.shape).toEqual(shape));
      const got = await values(out);
      ['param', 'expAvg', 'expAvgSq'].forEach((name, i) => expect(relErr(got[i]!, refs[i]!), name).toBeLessThan(1e-5));
      tf.dispose(ins);
    });
  }

  // Float32 products: each step chains three matrix products (inner sizes up to 130) and the
  // polynomial amplifies earlier rounding by up to its slope (3.4 for the quintic near 0, 8.2 for
  // Polar Express's first step), so two correct float32 implementations with different summation
  // orders differ by ~1e-6 after 5 steps: measured 0.8e-6 to 1.5e-6 (quintic) and 0.9e-6 to 3.2e-6
  // (Polar Express) on these shapes. 1e-4 leaves a 30x margin and still catches any indexing or
  // epilogue error (those give O(1) errors).
  const nsShapes: [number, number][] = [
    [5, 9],
    [9, 5],
    [33, 17],
    [17, 33],
    [64, 64],
    [65, 130],
    [130, 65],
  ];
  for (const [m, n] of nsShapes) {
    for (const kind of ['quintic', 'polar_express'] as NsCoefficientKind[]) {
      it(`OspNewtonSchulz, [${m}, ${n}], ${kind}`, async () => {
        const gs = randn(m * n, 30 + m * n, 0.02);
        const steps = 5;
        const { tuples, scale, eps } = nsSchedule(kind, steps);
        const [ref] = await onCpu(() => newtonSchulzReference(tf.tensor2d(gs, [m, n]), tuples, scale, eps));
        const g = tf.tensor2d(gs, [m, n]);
        await poison(m * n, m * n, Math.min(m, n) ** 2, Math.min(m, n) ** 2);
        const o = newtonSchulz(g, { steps, coefficients: kind });
        expect(o.shape).toEqual([m, n]);
        const [got] = await values(o);
        expect(relErr(got!, ref!)).toBeLessThan(1e-4);
        g.dispose();
      });
    }
  }

  const momentShapes: [number, number][] = [
    [1, 1],
    [7, 3],
    [7, 33],
    [65, 257],
    [1, 1000],
    [300, 5],
  ];
  for (const [n, d] of momentShapes) {
    it(`OspChannelMoments, x [${n}, ${d}]`, async () => {
      const xs = randn(n * d, 40 + n * d);
      const [tokRef, chRef] = await onCpu(() => {
        const r = channelMomentsReference(tf.tensor2d(xs, [n, d]));
        return [r.token, r.channel];
      });
      const x = tf.tensor2d(xs, [n, d]);
      await poison(n * 4, d * 4);
      const r = channelMoments(x);
      expect(r.token.shape).toEqual([n, 4]);
      expect(r.channel.shape).toEqual([d, 4]);
      const [tok, ch] = await values([r.token, r.channel]);
      expect(relErr(tok!, tokRef!), 'token').toBeLessThan(1e-5);
      expect(relErr(ch!, chRef!), 'channel').toBeLessThan(1e-5);
      x.dispose();
    });
  }

  const softmaxShapes: number[][] = [
    [1, 1],
    [7, 3],
    [2, 3, 33],
    [4, 257],
    [7, 1000],
  ];
  for (const shape of softmaxShapes) {
    it(`OspSoftmaxGrad, [${shape}]`, async () => {
      const n = numel(shape);
      const ls = randn(n, 70 + n, 2);
      const dys = randn(n, 71 + n);
      const [ref, gradRef] = await onCpu(() => {
        const [l, dy] = [tf.tensor(ls, shape), tf.tensor(dys, shape)];
        const y = tf.softmax(l);
        // The gradient through tf.softmax on cpu: tfjs's own formula (no kernel there).
        const [g] = tf.grads((z: tf.Tensor) => tf.sum(tf.mul(tf.softmax(z), dy)))([l]);
        return [softmaxGradReference(dy, y), g!];
      });
      const [l, dy] = [tf.tensor(ls, shape), tf.tensor(dys, shape)];
      const y = tf.softmax(l);
      await poison(n);
      const [got] = await values(tf.engine().runKernel(KERNELS.softmaxGrad, { dy, y }, {}) as tf.Tensor);
      expect(relErr(got!, ref!)).toBeLessThan(1e-5);
      // Through tf.grads: the Softmax gradient dispatches to the kernel on webgpu.
      const [g] = await values(tf.grads((z: tf.Tensor) => tf.sum(tf.mul(tf.softmax(z), dy)))([l]));
      expect(relErr(g!, gradRef!)).toBeLessThan(1e-5);
      tf.dispose([l, dy, y]);
    });
  }

  // BatchMatMul (batch_matmul.wgsl on software adapters, else tfjs's own kernel) through tf.matMul,
  // against a float64 oracle with tfjs-webgpu's batch indexing (out batch b reads a's batch
  // b % batchA and b's batch b % batchB, which is numpy broadcasting for every case below).
  // Tolerance, per element: the inputs are float32 and each product a_ik b_kj is exact in float64,
  // so the only error is the float32 summation of K terms, which any summation order bounds by
  // gamma_K S_ij ~ K u S_ij with u = 2^-24 and S_ij = sum_k |a_ik b_kj| (Higham, ch. 3). The test
  // allows 2 K u S_ij: rigorous for any correct float32 kernel, yet a single wrong, missing or
  // doubled term (an indexing or padding error) moves the sum by ~S_ij / K, at least 500x more for
  // K <= 130. NaN (an element not written after poisoning) fails the comparison.
  const U = 2 ** -24;
  const matmulCheck = async (sa: number[], sb: number[], ta: boolean, tb: boolean, seed: number) => {
    const ra = sa.length;
    const rb = sb.length;
    const M = ta ? sa[ra - 1]! : sa[ra - 2]!;
    const K = ta ? sa[ra - 2]! : sa[ra - 1]!;
    const N = tb ? sb[rb - 2]! : sb[rb - 1]!;
    const batchA = numel(sa.slice(0, -2));
    const batchB = numel(sb.slice(0, -2));
    const batches = Math.max(batchA, batchB);
    const as = randn(numel(sa), seed);
    const bs = randn(numel(sb), seed + 1);
    const ref = new Float64Array(batches * M * N);
    const bound = new Float64Array(batches * M * N);
    for (let bt = 0; bt < batches; bt++) {
      const oa = (bt % batchA) * M * K;
      const ob = (bt % batchB) * K * N;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let sum = 0;
          let abs = 0;
          for (let k = 0; k < K; k++) {
            const p = as[oa + (ta ? k * M + i : i * K + k)]! * bs[ob + (tb ? j * K + k : k * N + j)]!;
            sum += p;
            abs += Math.abs(p);
          }
          ref[(bt * M + i) * N + j] = sum;
          bound[(bt * M + i) * N + j] = 2 * K * U * abs;
        }
      }
    }
    const [cpuShape] = await onCpuShape(() => tf.matMul(tf.tensor(as, sa), tf.tensor(bs, sb), ta, tb));
    const [a, b] = [tf.tensor(as, sa), tf.tensor(bs, sb)];
    await poison(batches * M * N);
    const out = tf.matMul(a, b, ta, tb);
    expect(out.shape).toEqual(cpuShape);
    const [got] = await values(out);
    tf.dispose([a, b]);
    let worst = 0;
    for (let e = 0; e < ref.length; e++) {
      const err = Math.abs(got![e]! - ref[e]!);
      if (!(err <= bound[e]!)) throw new Error(`element ${e}: got ${got![e]}, float64 ${ref[e]}, bound ${bound[e]}`);
      worst = Math.max(worst, err);
    }
    return worst;
  };

  /** The shape of fn's output on the cpu backend. */
  async function onCpuShape(fn: () => tf.Tensor): Promise<number[][]> {
    await tf.setBackend('cpu');
    try {
      return [tf.tidy(() => fn().shape)];
    } finally {
      await tf.setBackend('webgpu');
    }
  }

  const stored = (rows: number, cols: number, t: boolean) => (t ? [cols, rows] : [rows, cols]);
  // Odd sizes around the 32 x 32 tile and the 8 x 8 lane block, and whole tiles (64, 96, 32).
  const mmSizes: [number, number, number][] = [
    [1, 1, 1],
    [3, 17, 33],
    [65, 130, 3],
    [33, 65, 17],
    [130, 33, 65],
    [1, 130, 1],
    [64, 96, 32],
    [17, 3, 130],
  ];
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      it(`BatchMatMul rank 2, transposeA ${ta}, transposeB ${tb}, sizes 1..130`, async () => {
        for (const [M, K, N] of mmSizes) await matmulCheck(stored(M, K, ta), stored(K, N, tb), ta, tb, M + 7 * K + 31 * N);
      });
      it(`BatchMatMul rank 3 and 4, equal and broadcast batches, transposeA ${ta}, transposeB ${tb}`, async () => {
        const [M, K, N] = [33, 17, 65];
        const A = stored(M, K, ta);
        const B = stored(K, N, tb);
        await matmulCheck([3, ...A], [3, ...B], ta, tb, 1);
        await matmulCheck([2, 3, ...A], [2, 3, ...B], ta, tb, 2);
        await matmulCheck([1, ...A], [4, ...B], ta, tb, 3); // a's batch broadcast
        await matmulCheck([4, ...A], [1, ...B], ta, tb, 4); // b's batch broadcast
        await matmulCheck([4, ...A], B, ta, tb, 5); // rank 3 x rank 2
        await matmulCheck(A, [2, 2, ...B], ta, tb, 6); // rank 2 x rank 4
        await matmulCheck([2, 3, ...A], [3, ...B], ta, tb, 7); // leading batch axis broadcast
        // Rows 7 mod 8 and columns 1 mod 8: a block write past the last row would land in the next batch.
        await matmulCheck([5, ...stored(23, 9, ta)], [5, ...stored(9, 41, tb)], ta, tb, 8);
      });
    }
  }

  it('BatchMatMul with K = 0 gives zeros, empty outputs stay empty', async () => {
    for (const [sa, sb] of [
      [
        [5, 0],
        [0, 7],
      ],
      [
        [2, 3, 0],
        [2, 0, 4],
      ],
    ] as const) {
      await poison(numel([...sa.slice(0, -1), sb[sb.length - 1]!]));
      const out = tf.matMul(tf.zeros([...sa]), tf.zeros([...sb]));
      const [got] = await values(out);
      expect(Array.from(got!)).toEqual(new Array(got!.length).fill(0));
      expect(got!.length).toBeGreaterThan(0);
    }
    const empty = tf.matMul(tf.ones([0, 4]), tf.ones([4, 3]));
    expect(empty.shape).toEqual([0, 3]);
    empty.dispose();
  });

  it('BatchMatMul hands int32 to tfjs and can be switched off', async () => {
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
    const b = tf.tensor2d([1, 0, -1, 2, 3, 1], [3, 2], 'int32');
    const p = tf.matMul(a, b);
    expect(p.dtype).toBe('int32');
    expect(Array.from(await p.data())).toEqual([8, 7, 17, 16]);
    tf.dispose([a, b, p]);
    setKernelsEnabled([KERNELS.batchMatMul], false);
    try {
      expect(hasKernel(KERNELS.batchMatMul)).toBe(false);
      // tfjs's own kernel, the same contract.
      await matmulCheck([2, 33, 17], [2, 17, 65], false, false, 9);
    } finally {
      setKernelsEnabled([KERNELS.batchMatMul], true);
    }
  });

  it('gradients through tf.matMul on webgpu match cpu', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[33, 17], [65, 17], false, true],
      [[17, 33], [17, 65], true, false],
      [[2, 3, 17, 33], [2, 3, 33, 5], false, false],
      // Equal batches only: tfjs 4.22's BatchMatMul gradient does not reduce a broadcast batch (it
      // throws on every backend).
      [[4, 17, 33], [4, 5, 33], false, true],
      [[4, 33, 17], [4, 5, 33], true, true],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const [as, bs] = [randn(numel(sa), 90 + sa[0]!), randn(numel(sb), 91 + sb[0]!)];
      const run = () =>
        tf.tidy(() => {
          const [a, b] = [tf.tensor(as, sa), tf.tensor(bs, sb)];
          const { value, grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.sin(tf.matMul(x, y, ta, tb))))([a, b]);
          return [value, ...grads];
        });
      const ref = await onCpu(run);
      const got = await values(run());
      ['value', 'da', 'db'].forEach((name, i) => expect(relErr(got[i]!, ref[i]!), `${name} ${sa} x ${sb}`).toBeLessThan(1e-5));
    }
  });

  it('on a hardware adapter tfjs keeps its BatchMatMul and ns_matmul stages its slabs', async () => {
    // What startWebGPU registers for a hardware adapter, exercised here on lavapipe.
    const software = currentBackend()?.softwareAdapter === true;
    const tfjsKernel = () => tf.getKernel('BatchMatMul', 'webgpu')!.kernelFunc;
    const before = tfjsKernel();
    const subgroupSize = attentionSubgroupSize();
    registerWebGPUKernels({ softwareAdapter: false, subgroupSize });
    try {
      expect(hasKernel(KERNELS.batchMatMul)).toBe(false);
      // The generated attention kernels are for software adapters only: a GPU runs the tile kernels.
      expect(attentionSubgroupSize()).toBeUndefined();
      if (software) expect(tfjsKernel()).not.toBe(before);
      await matmulCheck([3, 33, 17], [3, 65, 17], false, true, 10);
      // ns_matmul without DIRECT: the workgroup-memory path a GPU runs.
      const gs = randn(65 * 130, 11, 0.02);
      const { tuples, scale, eps } = nsSchedule('quintic', 5);
      const [ref] = await onCpu(() => newtonSchulzReference(tf.tensor2d(gs, [65, 130]), tuples, scale, eps));
      const g = tf.tensor2d(gs, [65, 130]);
      const [got] = await values(newtonSchulz(g, { steps: 5, coefficients: 'quintic' }));
      g.dispose();
      expect(relErr(got!, ref!)).toBeLessThan(1e-4);
    } finally {
      registerWebGPUKernels({ softwareAdapter: software, subgroupSize });
    }
    expect(attentionSubgroupSize()).toBe(subgroupSize);
    expect(tfjsKernel()).toBe(before);
    expect(hasKernel(KERNELS.batchMatMul)).toBe(software);
  });

  it('rejects bad shapes with the field named', () => {
    tf.tidy(() => rejectsBadShapes());
  });

  const rejectsBadShapes = () => {
    const x = tf.zeros([4, 8]);
    expect(() => tf.engine().runKernel(KERNELS.rmsNorm, { x, weight: tf.zeros([3]) }, { eps: 1e-6 })).toThrow(ShapeError);
    expect(() => tf.engine().runKernel(KERNELS.rmsNorm, { x, weight: tf.zeros([3]) }, { eps: 1e-6 })).toThrow(
      /weight must be \[8\] or \[1\]/,
    );
    expect(() => tf.engine().runKernel(KERNELS.crossEntropy, { logits: x, targets: tf.zeros([3], 'int32') }, {})).toThrow(
      /targets must be \[4\]/,
    );
    expect(() => tf.engine().runKernel(KERNELS.crossEntropy, { logits: x, targets: tf.zeros([4]) }, {})).toThrow(/targets must be int32/);
    expect(() => tf.engine().runKernel(KERNELS.adamwUpdate, { param: x, grad: tf.zeros([4, 7]), expAvg: x, expAvgSq: x }, {})).toThrow(
      /grad has shape \[4, 7\]/,
    );
    expect(() => tf.engine().runKernel(KERNELS.channelMoments, { x: tf.zeros([8]) }, {})).toThrow(/x must be 2-D/);
    expect(() =>
      tf.engine().runKernel(KERNELS.newtonSchulz, { x }, { steps: 2, a: [1], b: [1], c: [1], normScale: 1, normEps: 1e-7 }),
    ).toThrow(/a must hold one coefficient per step/);
  };

  it('gradients of rmsNorm and crossEntropy through the kernels match the cpu reference', async () => {
    const [n, d, v] = [6, 33, 65];
    const hs = randn(n * d, 50);
    const ws = Float32Array.from(randn(d, 51), (x) => 1 + 0.3 * x);
    const ps = randn(d * v, 52, 0.2);
    const ts = randInts(n, v, 53);
    const f = (h: tf.Tensor, w: tf.Tensor, p: tf.Tensor, t: tf.Tensor1D, ss: tf.Tensor) => {
      const y = tf.add(rmsNorm(h, w, 1e-6), rmsNorm(h, ss, 1e-6));
      return crossEntropy(tf.matMul(y, p) as tf.Tensor2D, t);
    };
    const run = () =>
      tf.tidy(() => {
        const ins = [tf.tensor2d(hs, [n, d]), tf.tensor1d(ws), tf.tensor2d(ps, [d, v]), tf.tensor1d([1.3])];
        const t = tf.tensor1d(ts, 'int32');
        const { value, grads } = tf.valueAndGrads((h: tf.Tensor, w: tf.Tensor, p: tf.Tensor, ss: tf.Tensor) => f(h, w, p, t, ss))(ins);
        return [value, ...grads];
      });
    const ref = await onCpu(run);
    const got = await values(run());
    expect(hasKernel(KERNELS.rmsNorm) && hasKernel(KERNELS.crossEntropyGrad)).toBe(true);
    ['loss', 'dh', 'dweight', 'dproj', 'dscale'].forEach((name, i) => expect(relErr(got[i]!, ref[i]!), name).toBeLessThan(1e-5));
  });

  it('leaves no tensors behind across repeated calls', async () => {
    const x = tf.tensor2d(randn(7 * 33, 60), [7, 33]);
    const w = tf.ones([33]);
    const t = tf.tensor1d(randInts(7, 33, 61), 'int32');
    const once = () => {
      tf.tidy(() => {
        tf.grads((a: tf.Tensor, b: tf.Tensor) => crossEntropy(rmsNorm(a, b, 1e-6) as tf.Tensor2D, t))([x, w]);
      });
      const u = adamwUpdate(x, x, x, x, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1, bc1: 0.1, bc2Sqrt: 0.2 });
      const o = newtonSchulz(x, { steps: 3, coefficients: 'quintic' });
      const c = channelMoments(x);
      tf.tidy(() => {
        tf.grads((a: tf.Tensor) => tf.sum(tf.mul(tf.softmax(a), x)))([x]);
      });
      const mm = tf.matMul(x, x, false, true);
      tf.tidy(() => {
        tf.grads((a: tf.Tensor) => tf.sum(tf.matMul(a, x, true, false)))([x]);
      });
      tf.dispose([u.param, u.expAvg, u.expAvgSq, o, c.token, c.channel, mm]);
    };
    once();
    const before = tf.memory().numTensors;
    const dataIds = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    for (let i = 0; i < 3; i++) once();
    const flush = tf.ones([1]);
    await flush.data();
    flush.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // tfjs's own count of live buffers (pending disposals excluded): intermediates were released.
    expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBeLessThanOrEqual(dataIds + 1);
    tf.dispose([x, w, t]);
  });
});

describe.skipIf(skip)('training on webgpu with the kernels', () => {
  it('20 steps match the cpu backend within 1e-3 and use the fused kernels', async () => {
    // The programs tfjs compiled for this backend: proof that the kernels ran, not just registered.
    const used = new Set<string>();
    const multiBefore = adamwMultiDispatchCount();
    let enabled = false;
    let softwareMatMul = false;
    let subgroupAttention = false;
    const probe: Callback = {
      name: 'kernel_probe',
      onStepEnd: () => {
        enabled ||= hasKernel(KERNELS.rmsNorm);
        softwareMatMul ||= hasKernel(KERNELS.batchMatMul);
        for (const name of compiledPrograms()) used.add(name);
        subgroupAttention ||= attentionSubgroupSize() !== undefined;
      },
    };
    const extra = {
      steps: 20,
      eval: { every: 20, batches: 1 },
      checkpoint: { every: 20, keep: 1 },
      logging: { every: 1, histogramsEvery: 20, console: 'quiet' },
    };
    const quiet = () => {};
    // Where the fused attention starts switched off (a software adapter without subgroups), this test wants it.
    setKernelsEnabled([KERNELS.causalAttention], true);
    const cpu = await train({ config: tinyRun(tempDir(), { ...extra, backend: 'cpu' }), log: quiet });
    const gpu = await train({ config: tinyRun(tempDir(), { ...extra, backend: 'webgpu' }), callbacks: [probe], log: quiet });
    expect(gpu.backend.name).toBe('webgpu');
    expect(enabled).toBe(true);
    const programs = [
      'rms_norm',
      'rms_norm_grad_dx',
      'rms_norm_grad_dw',
      'cross_entropy',
      'cross_entropy_grad',
      'ns_matmul',
      'channel_moments_rows',
    ];
    // On a software adapter with subgroups the generated attention kernels (attention_subgroup.ts), else the tile ones.
    programs.push(...['fwd', 'dq', 'dkv'].map((k) => (subgroupAttention ? `attention_sg_${k}` : `attention_${k}`)));
    // On a software adapter the model's matrix products run batch_matmul.wgsl as well.
    if (softwareMatMul) programs.push('batch_matmul');
    for (const program of programs) {
      expect([...used], program).toContain(program);
    }
    // AdamW's group ran as multi-tensor updates (its own pipeline, outside tfjs's cache): at least one
    // dispatch per step, and never the three per-parameter programs.
    expect(adamwMultiDispatchCount() - multiBefore).toBeGreaterThanOrEqual(20);
    expect([...used]).not.toContain('adamw_param');
    const a = lossesByStep(cpu.runDir);
    const b = lossesByStep(gpu.runDir);
    expect(b.size).toBe(20);
    for (const [step, loss] of a) {
      expect(Math.abs(b.get(step)! - loss) / loss, `step ${step}`).toBeLessThan(1e-3);
    }
  });
});
