/**
 * Causal grouped-query attention in float64, forward and backward, written from the definitions
 * (an oracle for src/ops/attention.ts and its kernels). Layout [B, T, heads, hd], flat arrays;
 * query head h reads key/value head floor(h / (H / Hkv)).
 *   s_ij = scale q_i . k_j (j <= i), p_i = softmax(s_i), out_i = sum_j p_ij v_j
 *   dp_ij = dy_i . v_j, ds_ij = p_ij (dp_ij - sum_l p_il dp_il)
 *   dq_i = scale sum_j ds_ij k_j, dk_j = scale sum_i ds_ij q_i, dv_j = sum_i p_ij dy_i
 *
 * Also the attention tests' shared pieces: inputs as tensors, one forward + backward run of the op,
 * and the error measure.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { causalAttention } from '../../src/ops/attention.ts';
import { KERNELS, withReferenceOps } from '../../src/ops/dispatch.ts';
import { Rng } from '../../src/utils/rng.ts';

export interface AttentionDims {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  hd: number;
}

export function attention64(
  d: AttentionDims,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dy?: ArrayLike<number>,
): { out: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, H, Hkv, hd } = d;
  const scale = 1 / Math.sqrt(hd);
  const qi = (b: number, t: number, h: number) => ((b * T + t) * H + h) * hd;
  const ki = (b: number, t: number, h: number) => ((b * T + t) * Hkv + h) * hd;
  const out = new Float64Array(B * T * H * hd);
  const dq = new Float64Array(out.length);
  const dk = new Float64Array(B * T * Hkv * hd);
  const dv = new Float64Array(dk.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(i + 1);
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let c = 0; c < hd; c++) dot += q[qi(b, i, h) + c]! * k[ki(b, j, g) + c]!;
          s[j] = dot * scale;
        }
        const mx = Math.max(...s);
        let z = 0;
        for (let j = 0; j <= i; j++) z += Math.exp(s[j]! - mx);
        const p = s.map((x) => Math.exp(x - mx) / z);
        for (let j = 0; j <= i; j++) for (let c = 0; c < hd; c++) out[qi(b, i, h) + c] += p[j]! * v[ki(b, j, g) + c]!;
        if (!dy) continue;
        const dp = new Float64Array(i + 1);
        let delta = 0;
        for (let j = 0; j <= i; j++) {
          for (let c = 0; c < hd; c++) dp[j] += dy[qi(b, i, h) + c]! * v[ki(b, j, g) + c]!;
          delta += p[j]! * dp[j]!;
        }
        for (let j = 0; j <= i; j++) {
          const ds = p[j]! * (dp[j]! - delta);
          for (let c = 0; c < hd; c++) {
            dq[qi(b, i, h) + c] += scale * ds * k[ki(b, j, g) + c]!;
            dk[ki(b, j, g) + c] += scale * ds * q[qi(b, i, h) + c]!;
            dv[ki(b, j, g) + c] += p[j]! * dy[qi(b, i, h) + c]!;
          }
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

/** n standard normal float32 values from a seed. */
export const randn = (n: number, seed: number) => Float32Array.from(new Rng(seed).normals(n, 1));

/** max |a - b| / max |b| (max |a - b| where b is all zero); NaN or infinity anywhere in a counts as an infinite error. */
export function err(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) return Infinity;
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

/** The inputs of one case as tensors: q, k, v and w (the upstream gradient dy). */
export function inputs(d: AttentionDims, qs: Float32Array, ks: Float32Array, vs: Float32Array, ws: Float32Array): tf.Tensor4D[] {
  return [
    tf.tensor4d(qs, [d.B, d.T, d.H, d.hd]),
    tf.tensor4d(ks, [d.B, d.T, d.Hkv, d.hd]),
    tf.tensor4d(vs, [d.B, d.T, d.Hkv, d.hd]),
    tf.tensor4d(ws, [d.B, d.T, d.H, d.hd]),
  ];
}

/** Output and gradients of sum(attention(q, k, v) * w), i.e. with dy = w. */
export function run([q, k, v, w]: tf.Tensor4D[]): tf.Tensor[] {
  return tf.tidy(() => {
    const out = causalAttention(q!, k!, v!);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      tf.sum(tf.mul(causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D), w!)),
    )([q!, k!, v!]);
    return [out, ...grads];
  });
}

/** Values of the run's outputs (out, dq, dk, dv); everything is disposed. */
export async function results(ins: tf.Tensor4D[], outs: tf.Tensor[]): Promise<Float32Array[]> {
  const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose([...ins, ...outs]);
  return values;
}

/** The values f returns, the names and output shapes of the kernels it ran, and its peak tensor bytes (tf.profile). */
export async function kernelsOf(
  f: () => Promise<Float32Array[]>,
): Promise<{ values: Float32Array[]; kernels: Set<string>; outputShapes: number[][]; peakBytes: number }> {
  let values: Float32Array[] = [];
  const info = await tf.profile(async () => {
    values = await f();
  });
  return {
    values,
    kernels: new Set(info.kernels.map((k) => k.name)),
    outputShapes: info.kernels.flatMap((k) => k.outputShapes),
    peakBytes: info.peakBytes,
  };
}

/**
 * Runs the op forward and backward on the same inputs with its fused kernels and on the reference path
 * (withReferenceOps); checks that the two agree (1e-5 of the largest entry), that the fused run ran both
 * attention kernels and no Softmax, and the reference run the opposite. Returns both profiles.
 */
export async function expectFusedMatchesReference(
  d: AttentionDims,
  data: readonly [Float32Array, Float32Array, Float32Array, Float32Array],
) {
  const fused = await kernelsOf(async () => {
    const ins = inputs(d, ...data);
    return results(ins, run(ins));
  });
  const reference = await kernelsOf(async () => {
    const ins = inputs(d, ...data);
    return results(
      ins,
      withReferenceOps(() => run(ins)),
    );
  });
  ['out', 'dq', 'dk', 'dv'].forEach((name, i) => expect(err(fused.values[i]!, reference.values[i]!), name).toBeLessThan(1e-5));
  expect(fused.kernels.has(KERNELS.causalAttention) && fused.kernels.has(KERNELS.causalAttentionGrad)).toBe(true);
  expect(fused.kernels.has('Softmax')).toBe(false);
  expect(reference.kernels.has(KERNELS.causalAttention) || reference.kernels.has(KERNELS.causalAttentionGrad)).toBe(false);
  expect(reference.kernels.has('Softmax')).toBe(true);
  return { fused, reference };
}

/** The inputs of one case (q, k, v and the upstream gradient dy) from a seed. */
export function attentionData(d: AttentionDims, seed: number): [Float32Array, Float32Array, Float32Array, Float32Array] {
  const nq = d.B * d.T * d.H * d.hd;
  const nk = d.B * d.T * d.Hkv * d.hd;
  return [randn(nq, seed), randn(nk, seed + 1), randn(nk, seed + 2), randn(nq, seed + 3)];
}

/**
 * One oracle case of the op on the active backend: inputs from a seed set by the shape, `prepare` just
 * before the run (the backend's NaN poisoning; it gets the element counts of q and of k), then out, dq,
 * dk and dv within 1e-5 of the largest entry of the float64 oracle's (float32 sums of at most T * hd terms
 * of O(1) values).
 */
export async function expectMatchesOracle(d: AttentionDims, prepare: (nq: number, nk: number) => unknown): Promise<void> {
  const [qs, ks, vs, ws] = attentionData(d, d.T * 7 + d.hd);
  const ref = attention64(d, qs, ks, vs, ws);
  const ins = inputs(d, qs, ks, vs, ws);
  await prepare(qs.length, ks.length);
  const [out, dq, dk, dv] = await results(ins, run(ins));
  expect(err(out!, ref.out), 'out').toBeLessThan(1e-5);
  expect(err(dq!, ref.dq), 'dq').toBeLessThan(1e-5);
  expect(err(dk!, ref.dk), 'dk').toBeLessThan(1e-5);
  expect(err(dv!, ref.dv), 'dv').toBeLessThan(1e-5);
}
