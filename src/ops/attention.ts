/**
 * Causal self-attention with grouped key/value heads, in the [B, T, heads, hd] layout a projection
 * produces: q [B, T, H, hd], k and v [B, T, Hkv, hd] (after RoPE); query head h reads key/value head
 * floor(h / (H / Hkv)), as Hugging Face's repeat_kv. Returns [B, T, H, hd].
 *
 *   out[b, i, h] = sum_{j <= i} softmax_j(scale q[b, i, h] . k[b, j, kvh]) v[b, j, kvh]
 *
 * Where the backend registered OspCausalAttention and OspCausalAttentionGrad and both are enabled
 * (native: kernels/native/attention.cc; webgpu: kernels/wgsl/attention_*.wgsl, switched off by default
 * on a software adapter, see src/backend/webgpu/kernels.ts), one fused kernel computes it block by block
 * and saves each row's log-sum-exp, and the backward recomputes the probabilities from it, so the
 * [B, H, T, T] scores and probabilities are never stored. Elsewhere (cpu, wasm), and under
 * withReferenceOps, the reference path below runs: plain tfjs ops (scores, additive mask, softmax,
 * product), differentiable twice.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

/** The largest head dimension of the fused kernels; above it the reference path runs. */
export const ATTENTION_MAX_HEAD_DIM = 128;

/** Additive causal mask [T, T]: 0 on and below the diagonal, a large negative number above it. */
export function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/** The sizes of one attention call. */
export interface AttentionSizes {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  hd: number;
}

/**
 * Checks q [B, T, H, hd] and k, v [B, T, Hkv, hd] with Hkv dividing H (the op and every backend's kernel
 * use it) and returns the sizes; `where` starts the error message.
 */
export function attentionShapes(
  where: string,
  q: { shape: readonly number[] },
  k: { shape: readonly number[] },
  v: { shape: readonly number[] },
): AttentionSizes {
  if (q.shape.length !== 4) throw new ShapeError(`${where}: q must be [B, T, H, hd], got [${q.shape}]`);
  const [B, T, H, hd] = q.shape as [number, number, number, number];
  for (const [name, t] of [
    ['k', k],
    ['v', v],
  ] as const) {
    const [b, t2, hkv, hd2] = t.shape;
    if (t.shape.length !== 4 || b !== B || t2 !== T || hd2 !== hd || !hkv || H % hkv !== 0 || t.shape[2] !== k.shape[2]) {
      throw new ShapeError(`${where}: ${name} must be [${B}, ${T}, Hkv, ${hd}] with Hkv dividing ${H} (k and v alike), got [${t.shape}]`);
    }
  }
  return { B, T, H, Hkv: k.shape[2]!, hd };
}

const checkShapes = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => attentionShapes('causalAttention', q, k, v);

/**
 * Reference path in plain tfjs ops (the model's attention before the fused kernel, and the oracle for
 * it): heads to the front, repeat_kv, masked softmax of the scaled scores, product, heads back.
 * @param mask the additive causal mask [T, T] (causalMask); built and freed here when not given
 */
export function causalAttentionReference(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask?: tf.Tensor2D): tf.Tensor4D {
  const { B, T, H, Hkv, hd } = checkShapes(q, k, v);
  return tf.tidy(() => {
    const heads = (y: tf.Tensor4D) => tf.transpose(y, [0, 2, 1, 3]) as tf.Tensor4D; // [B, heads, T, hd]
    let kh = heads(k);
    let vh = heads(v);
    if (Hkv !== H) {
      // Rank-4 tile: tfjs has no tile gradient for rank 5.
      const repeat = (y: tf.Tensor4D) =>
        tf.reshape(tf.tile(tf.reshape(y, [B, Hkv, 1, T * hd]), [1, 1, H / Hkv, 1]), [B, H, T, hd]) as tf.Tensor4D;
      kh = repeat(kh);
      vh = repeat(vh);
    }
    const m = mask ?? causalMask(T);
    const scores = tf.add(tf.mul(tf.matMul(heads(q), kh, false, true), 1 / Math.sqrt(hd)), m); // [B, H, T, T]
    return heads(tf.matMul(tf.softmax(scores, -1), vh)); // [B, T, H, hd]
  });
}

/**
 * @param q [B, T, H, hd]
 * @param k [B, T, Hkv, hd]
 * @param v [B, T, Hkv, hd]
 * @param mask the reference path's additive mask [T, T], when the caller caches one
 * @example const out = causalAttention(q, k, v); // [B, T, H, hd]
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask?: tf.Tensor2D): tf.Tensor4D {
  const { B, T, H, hd } = checkShapes(q, k, v);
  // The fused path needs both kernels; the choice is made here, at the forward, so that the backward
  // matches it whatever is switched later.
  const fusedPath = hasKernel(KERNELS.causalAttention) && hasKernel(KERNELS.causalAttentionGrad) && hd <= ATTENTION_MAX_HEAD_DIM;
  if (!fusedPath) return causalAttentionReference(q, k, v, mask);
  const scale = 1 / Math.sqrt(hd);
  const fused = tf.customGrad(((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor, save: tf.GradSaveFunc) => {
    const packed = tf.engine().runKernel(KERNELS.causalAttention, { q: qi, k: ki, v: vi }, { scale }) as tf.Tensor2D;
    save([qi, ki, vi, packed]);
    const value = tf.tidy(() => tf.reshape(tf.slice(packed, [0, 0], [B * T, H * hd]), [B, T, H, hd]));
    packed.dispose();
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [qs, ks, vs, fwd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      return tf.engine().runKernel(KERNELS.causalAttentionGrad, { dy, q: qs, k: ks, v: vs, fwd }, { scale }) as tf.Tensor[];
    };
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Tensor>>[0]);
  return fused(q, k, v) as tf.Tensor4D;
}
