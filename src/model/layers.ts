/**
 * The building blocks of a Llama-style block, as plain functions over tensors. Weights use the
 * PyTorch/Hugging Face layout [out, in], so a checkpoint's tensors need no transposition on export.
 * Shapes in comments: B batch, T time, d hidden, H query heads, Hkv key/value heads, hd head width.
 */
import * as tf from '@tensorflow/tfjs';
import { causalAttention } from '../ops/attention.ts';
import { rope as applyRope } from '../ops/rope.ts';
import { swigluGate } from '../ops/swiglu.ts';

/** y = x W^T. x: [N, in], w: [out, in] -> [N, out]. */
export function linear(x: tf.Tensor2D, w: tf.Tensor): tf.Tensor2D {
  return tf.matMul(x, w as tf.Tensor2D, false, true);
}

/**
 * Where quantization evaluation (src/quant) intervenes in a block, without the model knowing
 * anything about quantization. Each hook returns the tensor to use instead of its input.
 */
export interface BlockHooks {
  /**
   * The input of a group of linear layers, [N, width]: 'qkv' (the normed attention input shared by
   * q/k/v_proj), 'o' (o_proj's input, heads concatenated), 'gate_up' (the normed MLP input), 'down'
   * (down_proj's input).
   */
  linearInput?(x: tf.Tensor2D, site: 'qkv' | 'o' | 'gate_up' | 'down', layer: number): tf.Tensor2D;
  /** Keys after RoPE and values, [B, Hkv, T, hd], as a KV cache would store them. */
  kv?(k: tf.Tensor4D, v: tf.Tensor4D, layer: number): [tf.Tensor4D, tf.Tensor4D];
}

/** SwiGLU MLP: down(silu(gate x) * up x) (src/ops/swiglu.ts: one fused kernel where the backend has it). x: [N, d]. */
export function swiglu(x: tf.Tensor2D, gate: tf.Tensor, up: tf.Tensor, down: tf.Tensor, hooks?: BlockHooks, layer = 0): tf.Tensor2D {
  const xin = hooks?.linearInput ? hooks.linearInput(x, 'gate_up', layer) : x;
  let h = swigluGate(linear(xin, gate), linear(xin, up));
  if (hooks?.linearInput) h = hooks.linearInput(h, 'down', layer);
  return linear(h, down);
}

/**
 * RoPE cos/sin tables, [maxLen, hd], in the Hugging Face rotate_half convention: channel j and
 * j + hd/2 of a head form one rotating pair with frequency theta^(-2j/hd). Computed in float64.
 */
export function ropeTables(maxLen: number, hd: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const cos = new Float32Array(maxLen * hd);
  const sin = new Float32Array(maxLen * hd);
  const half = hd / 2;
  for (let t = 0; t < maxLen; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t * Math.pow(theta, (-2 * j) / hd);
      cos[t * hd + j] = cos[t * hd + j + half] = Math.cos(angle);
      sin[t * hd + j] = sin[t * hd + j + half] = Math.sin(angle);
    }
  }
  return { cos: tf.tensor2d(cos, [maxLen, hd]), sin: tf.tensor2d(sin, [maxLen, hd]) };
}

export interface AttentionWeights {
  q: tf.Tensor;
  k: tf.Tensor;
  v: tf.Tensor;
  o: tf.Tensor;
}

export interface AttentionShape {
  B: number;
  T: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * Causal multi-head attention with RoPE and grouped key/value heads (query head h reads key/value
 * head floor(h / (H / Hkv)), as Hugging Face's repeat_kv). x: [B*T, d] -> [B*T, d]. Heads stay in
 * the projections' [B, T, heads, hd] layout; src/ops/attention.ts computes the attention itself
 * (a fused kernel on webgpu).
 * @param rope cos, sin: [T, 1, hd]
 * @param mask the additive causal mask [T, T] of the reference path (cached by the model)
 */
export function attention(
  x: tf.Tensor2D,
  w: AttentionWeights,
  s: AttentionShape,
  rope: { cos: tf.Tensor3D; sin: tf.Tensor3D },
  mask: tf.Tensor2D,
  hooks?: BlockHooks,
  layer = 0,
): tf.Tensor2D {
  const { B, T, numHeads: H, numKvHeads: Hkv, headDim: hd } = s;
  const heads = (y: tf.Tensor2D, n: number) => tf.reshape(y, [B, T, n, hd]) as tf.Tensor4D;
  const xin = hooks?.linearInput ? hooks.linearInput(x, 'qkv', layer) : x;
  const q = applyRope(heads(linear(xin, w.q), H), rope.cos, rope.sin); // [B, T, H, hd]
  let k = applyRope(heads(linear(xin, w.k), Hkv), rope.cos, rope.sin); // [B, T, Hkv, hd]
  let v = heads(linear(xin, w.v), Hkv);
  if (hooks?.kv) {
    // The hook sees the KV cache's layout [B, Hkv, T, hd].
    const swap = (y: tf.Tensor4D) => tf.transpose(y, [0, 2, 1, 3]) as tf.Tensor4D;
    const [kc, vc] = hooks.kv(swap(k), swap(v), layer);
    k = swap(kc);
    v = swap(vc);
  }
  let merged = tf.reshape(causalAttention(q, k, v, mask), [B * T, H * hd]) as tf.Tensor2D;
  if (hooks?.linearInput) merged = hooks.linearInput(merged, 'o', layer);
  return linear(merged, w.o);
}
