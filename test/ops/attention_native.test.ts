/**
 * The fused causal attention on the native backend (kernels/native/attention.cc) against the float64
 * oracle (test/helpers/attention64.ts): output and all three gradients on shapes that cross the
 * kernel's 64-row query blocks unevenly (T = 37, 70, 130, 64, 1), head dimensions 8 to 84, grouped
 * key/value heads, with the output pool's recycled arrays filled with NaN first (an element the kernel
 * does not write fails). Then: bit-identical results for 1, 2 and 3 threads (exact resume), the
 * reference path on the same backend and which kernels ran, no [B, H, T, T] tensor on the fused path,
 * flat memory, bad sizes refused by name, and another backend's kernel default not applying here.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';
import { loadNativeAddon } from '../../src/backend/native/addon.ts';
import { causalAttention } from '../../src/ops/attention.ts';
import { hasKernel, KERNELS, setKernelDefault } from '../../src/ops/dispatch.ts';
import {
  attentionData,
  expectFusedMatchesReference,
  expectMatchesOracle,
  inputs,
  results,
  run,
  type AttentionDims,
} from '../helpers/attention64.ts';
import { skipNative } from '../helpers/backends.ts';
import { poisonNative } from '../helpers/native.ts';

describe.skipIf(skipNative)('fused causal attention on native', () => {
  beforeAll(async () => {
    await startBackend('native');
  });
  afterAll(async () => {
    await stopBackend();
  });

  it('is registered, forward and backward, and on by default', () => {
    expect(hasKernel(KERNELS.causalAttention)).toBe(true);
    expect(hasKernel(KERNELS.causalAttentionGrad)).toBe(true);
  });

  it("keeps its kernels on when another backend's default switched them off (webgpu on a software adapter)", () => {
    // Before: one global default, so starting webgpu on lavapipe turned the native attention kernel off.
    setKernelDefault('webgpu', KERNELS.causalAttention, false);
    try {
      expect(hasKernel(KERNELS.causalAttention)).toBe(true);
      setKernelDefault('native', KERNELS.causalAttention, false);
      expect(hasKernel(KERNELS.causalAttention)).toBe(false);
    } finally {
      setKernelDefault('native', KERNELS.causalAttention, true);
    }
    expect(hasKernel(KERNELS.causalAttention)).toBe(true);
  });

  const shapes: AttentionDims[] = [
    { B: 2, T: 37, H: 4, Hkv: 2, hd: 16 },
    { B: 1, T: 70, H: 2, Hkv: 2, hd: 32 },
    { B: 2, T: 130, H: 4, Hkv: 1, hd: 64 },
    { B: 1, T: 64, H: 2, Hkv: 1, hd: 8 },
    { B: 1, T: 21, H: 3, Hkv: 3, hd: 84 },
    { B: 3, T: 1, H: 2, Hkv: 1, hd: 16 },
  ];
  for (const d of shapes) {
    it(`output and gradients match float64: B=${d.B} T=${d.T} H=${d.H} Hkv=${d.Hkv} hd=${d.hd}`, async () => {
      // NaN arrays of every size the fused path allocates (out and dq, dk and dv, the packed forward),
      // eight of each: the loss's own elementwise ops take some of them first.
      await expectMatchesOracle(d, (nq, nk) =>
        poisonNative(...Array.from({ length: 8 }, () => [nq, nk, d.B * d.T * (d.H * d.hd + d.H)]).flat()),
      );
    });
  }

  it('gives bit-identical results on 1, 2 and 3 threads', async () => {
    const addon = loadNativeAddon();
    const threads0 = addon.threads();
    const d = { B: 3, T: 90, H: 4, Hkv: 2, hd: 32 };
    const inputsOf = attentionData(d, 77);
    const byThreads: Float32Array[][] = [];
    try {
      for (const n of [1, 2, 3]) {
        addon.setPoolThreads(n);
        const ins = inputs(d, ...inputsOf);
        byThreads.push(await results(ins, run(ins)));
      }
    } finally {
      addon.setPoolThreads(threads0);
    }
    for (const other of byThreads.slice(1)) other.forEach((values, i) => expect(values).toEqual(byThreads[0]![i]));
  });

  it('agrees with the reference path, runs only its own kernels, and makes no [B, H, T, T] tensor', async () => {
    const d = { B: 2, T: 100, H: 4, Hkv: 2, hd: 32 };
    const inputsOf = attentionData(d, 5);
    const { fused, reference } = await expectFusedMatchesReference(d, inputsOf);
    const scoresLike = (shapes: number[][]) => shapes.filter((s) => s.length >= 2 && s.at(-1) === d.T && s.at(-2) === d.T).length;
    expect(scoresLike(fused.outputShapes)).toBe(0);
    expect(scoresLike(reference.outputShapes)).toBeGreaterThan(0);
    expect(fused.peakBytes).toBeLessThan(reference.peakBytes);
  });

  it('leaves no tensors behind across repeated calls', async () => {
    const d = { B: 1, T: 20, H: 2, Hkv: 1, hd: 16 };
    const inputsOf = attentionData(d, 9);
    const once = async () => {
      const ins = inputs(d, ...inputsOf);
      await results(ins, run(ins));
    };
    await once();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await once();
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('refuses bad sizes by name: the kernel (native) and the addon (buffer lengths)', () => {
    const q = tf.zeros([1, 5, 4, 8]);
    expect(() =>
      tf.engine().runKernel(KERNELS.causalAttention, { q, k: tf.zeros([1, 5, 3, 8]), v: tf.zeros([1, 5, 3, 8]) }, { scale: 1 }),
    ).toThrow(/OspCausalAttention \(native\): k must be \[1, 5, Hkv, 8\] with Hkv dividing 4/);
    const addon = loadNativeAddon();
    const f = (n: number) => new Float32Array(n);
    expect(() => addon.causalAttention(f(160), f(40), f(40), f(4), 1, 5, 4, 1, 8, 1)).toThrow(/fwd: length 4, expected 180/);
    expect(() => addon.causalAttention(f(160), f(40), f(40), f(180), 1, 5, 4, 3, 8, 1)).toThrow(/H must be a multiple of Hkv/);
    expect(() => causalAttention(q as tf.Tensor4D, q as tf.Tensor4D, tf.zeros([1, 5, 4, 9]) as tf.Tensor4D)).toThrow(/v must be/);
  });
});
