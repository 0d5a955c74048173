/**
 * The fused causal attention (src/ops/attention.ts) on webgpu against a float64 oracle written from
 * the definitions (test/helpers/attention64.ts): outputs and all three gradients, on shapes that are
 * not multiples of the kernels' blocks (T = 37, 70, 7, 1), head dimensions 16, 18 (not a multiple of
 * 4: padded channels), 32 and 64, grouped key/value heads; freed buffers are poisoned with NaN
 * first, so an element a kernel forgets to write fails. On a software adapter with subgroups these
 * run the generated kernels (attention_subgroup.ts); the tile kernels a GPU runs
 * (kernels/wgsl/attention_*.wgsl) get their own cases (head dimension 84: the key-side kernel's
 * 16-row tiles). Shader compilation on lavapipe costs up to a minute or two per head dimension and
 * kind, so the cases are few. Then the reference path on the same backend, which kernels ran
 * (tf.profile and the compiled programs), the fallback without the backward kernel, flat memory, and
 * bad shapes.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentBackend } from '../../src/backend/index.ts';
import { attentionSubgroupSize, setAttentionSubgroupSize } from '../../src/backend/webgpu/attention.ts';
import { ShapeError } from '../../src/errors.ts';
import { causalAttention, causalAttentionReference } from '../../src/ops/attention.ts';
import { hasKernel, KERNELS, setKernelsEnabled } from '../../src/ops/dispatch.ts';
import {
  attention64,
  err,
  expectFusedMatchesReference,
  expectMatchesOracle,
  inputs,
  randn,
  results,
  run,
  type AttentionDims,
} from '../helpers/attention64.ts';
import { skipWebGPU as skip } from '../helpers/backends.ts';
import { compiledPrograms, poison, useWebGPU } from '../helpers/webgpu.ts';

describe.skipIf(skip)('fused causal attention on webgpu', () => {
  useWebGPU();
  // Switched off by default on a software adapter without subgroups: these tests are about it.
  beforeAll(() => setKernelsEnabled([KERNELS.causalAttention], true));

  it('is registered, forward and backward', () => {
    expect(hasKernel(KERNELS.causalAttention)).toBe(true);
    expect(hasKernel(KERNELS.causalAttentionGrad)).toBe(true);
  });

  // Three NaN buffers of every size an output or intermediate of the fused path has (out and dq: nq;
  // dk, dv: nk; the packed forward, the packed dk/dv, delta), so that each gets a poisoned one.
  const poisonFor = (d: AttentionDims) => (nq: number, nk: number) => {
    const sizes = [nq, nk, d.B * d.T * (d.H * d.hd + d.H), d.B * d.T * d.Hkv * 2 * d.hd, d.B * d.T * d.H];
    return poison(...sizes, ...sizes, ...sizes);
  };
  const shapes: AttentionDims[] = [
    { B: 2, T: 37, H: 4, Hkv: 2, hd: 16 },
    { B: 1, T: 70, H: 2, Hkv: 2, hd: 32 },
    { B: 2, T: 33, H: 4, Hkv: 1, hd: 64 },
    { B: 1, T: 21, H: 3, Hkv: 3, hd: 18 },
    { B: 2, T: 7, H: 4, Hkv: 2, hd: 16 },
    { B: 3, T: 1, H: 2, Hkv: 1, hd: 16 },
  ];
  for (const d of shapes) {
    it(`output and gradients match float64: B=${d.B} T=${d.T} H=${d.H} Hkv=${d.Hkv} hd=${d.hd}`, async () => {
      await expectMatchesOracle(d, poisonFor(d));
    });
  }

  it('runs the generated subgroup kernels on a software adapter with subgroups, the tile kernels otherwise', async () => {
    const software = currentBackend()?.softwareAdapter === true;
    const S = attentionSubgroupSize();
    // lavapipe reports one fixed subgroup size (its SIMD width) and the device gets the feature.
    if (software) expect(S).toBeDefined();
    const used = compiledPrograms();
    const kind = S === undefined ? 'attention' : 'attention_sg';
    for (const k of ['fwd', 'dq', 'dkv']) expect([...used]).toContain(`${kind}_${k}`);
  });

  describe('the tile kernels (what a GPU runs)', () => {
    let saved: number | undefined;
    beforeAll(() => {
      saved = attentionSubgroupSize();
      setAttentionSubgroupSize(undefined);
    });
    afterAll(() => setAttentionSubgroupSize(saved));
    const tileShapes: AttentionDims[] = [
      { B: 2, T: 37, H: 4, Hkv: 2, hd: 16 },
      { B: 1, T: 21, H: 3, Hkv: 3, hd: 84 },
    ];
    for (const d of tileShapes) {
      it(`output and gradients match float64: B=${d.B} T=${d.T} H=${d.H} Hkv=${d.Hkv} hd=${d.hd}`, async () => {
        await expectMatchesOracle(d, poisonFor(d));
        for (const k of ['fwd', 'dq', 'dkv']) expect([...compiledPrograms()]).toContain(`attention_${k}`);
      });
    }
  });

  it('agrees with the reference path on the same backend, and the fused kernels ran (only) where chosen', async () => {
    const d = { B: 2, T: 45, H: 4, Hkv: 2, hd: 32 };
    const nq = d.B * d.T * d.H * d.hd;
    const nk = d.B * d.T * d.Hkv * d.hd;
    const data = [randn(nq, 1), randn(nk, 2), randn(nk, 3), randn(nq, 4)] as const;
    await expectFusedMatchesReference(d, data);
  });

  it('runs the reference path, gradients included, when the backward kernel is switched off', async () => {
    const d = { B: 1, T: 9, H: 2, Hkv: 1, hd: 16 };
    const nq = d.T * d.H * d.hd;
    const nk = d.T * d.Hkv * d.hd;
    const [qs, ks, vs, ws] = [randn(nq, 13), randn(nk, 14), randn(nk, 15), randn(nq, 16)];
    const tensors = tf.memory().numTensors;
    setKernelsEnabled([KERNELS.causalAttentionGrad], false);
    let got: Float32Array[];
    try {
      const ins = inputs(d, qs, ks, vs, ws);
      got = await results(ins, run(ins));
    } finally {
      setKernelsEnabled([KERNELS.causalAttentionGrad], true);
    }
    expect(tf.memory().numTensors).toBe(tensors);
    const ref = attention64(d, qs, ks, vs, ws);
    [ref.out, ref.dq, ref.dk, ref.dv].forEach((r, i) => expect(err(got[i]!, r)).toBeLessThan(1e-5));
  });

  it('takes the reference path above the largest fused head dimension', async () => {
    const d = { B: 1, T: 5, H: 1, Hkv: 1, hd: 136 };
    const n = d.T * d.hd;
    const [qs, ks, vs, ws] = [randn(n, 5), randn(n, 6), randn(n, 7), randn(n, 8)];
    const ins = inputs(d, qs, ks, vs, ws);
    const got = await results(ins, run(ins));
    const ref = attention64(d, qs, ks, vs, ws);
    [ref.out, ref.dq, ref.dk, ref.dv].forEach((r, i) => expect(err(got[i]!, r)).toBeLessThan(1e-5));
  });

  it('leaves no tensors or buffers behind across repeated calls', async () => {
    const d = { B: 1, T: 20, H: 2, Hkv: 1, hd: 16 };
    const nq = d.T * d.H * d.hd;
    const nk = d.T * d.Hkv * d.hd;
    const [qs, ks, vs, ws] = [randn(nq, 9), randn(nk, 10), randn(nk, 11), randn(nq, 12)];
    const once = async () => {
      const ins = inputs(d, qs, ks, vs, ws);
      await results(ins, run(ins));
    };
    await once();
    const tensors = tf.memory().numTensors;
    const dataIds = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    for (let i = 0; i < 5; i++) await once();
    expect(tf.memory().numTensors).toBe(tensors);
    expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBeLessThanOrEqual(dataIds);
  });

  it('refuses shapes it cannot compute, naming the tensor', () => {
    const q = tf.zeros([1, 5, 4, 8]) as tf.Tensor4D;
    expect(() => causalAttention(q, tf.zeros([1, 5, 3, 8]) as tf.Tensor4D, tf.zeros([1, 5, 3, 8]) as tf.Tensor4D)).toThrow(ShapeError);
    expect(() => causalAttention(q, tf.zeros([1, 5, 2, 8]) as tf.Tensor4D, tf.zeros([1, 6, 2, 8]) as tf.Tensor4D)).toThrow(
      /v must be \[1, 5, Hkv, 8\]/,
    );
    expect(() =>
      tf.engine().runKernel(KERNELS.causalAttention, { q, k: tf.zeros([1, 5, 3, 8]), v: tf.zeros([1, 5, 3, 8]) }, { scale: 1 }),
    ).toThrow(/k must be \[1, 5, Hkv, 8\] with Hkv dividing 4/);
    expect(() => causalAttentionReference(q, q, tf.zeros([1, 5, 4, 9]) as tf.Tensor4D)).toThrow(ShapeError);
  });
});
