/**
 * Fake quantization of activations and of the KV cache (the "A4" and "KV4" of OSP's 4-4-4 setting):
 * quantize to integers and immediately dequantize, so that the model computes in float with exactly the
 * values an integer kernel would see. Evaluation only: no gradients are defined (round has none).
 *
 * All three are asymmetric min/max quantizers over a group of values v (a token's row, a part of it, or
 * one head's key or value vector):
 *   scale = (max v - min v) / (2^bits - 1),  zp = round(-min v / scale),
 *   q = clamp(round(v / scale) + zp, 0, 2^bits - 1),  v' = (q - zp) * scale.
 * A group with max == min passes through unchanged (it would need a zero scale). Rounding is tf.round's
 * half-to-even.
 *
 * Range convention (`zeroInRange`, default true): QuaRot's ActQuantizer and KV quantizer widen each
 * group's range to include 0 (min -> min(min, 0), max -> max(max, 0)), so that 0 is exactly
 * representable; that changes the scale only for groups whose values all have one sign. osp-lab
 * follows QuaRot by default; `zeroInRange: false` is the plain min/max range of osp-lab before 0.2.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, ShapeError } from '../errors.ts';

function checkBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < 1 || bits > 16) {
    throw new ConfigError('bits', `activation quantization needs an integer width in [1, 16], got ${bits}`);
  }
  return 2 ** bits - 1;
}

/** Options shared by the activation and KV quantizers. */
export interface ActQuantOptions {
  /** Widen each group's range to include 0, as QuaRot does (default true); false = plain min/max. */
  zeroInRange?: boolean;
}

/** The quantizer on rows of [G, g]: each row is one group. */
function fakeQuantRows(x: tf.Tensor2D, levels: number, opts: ActQuantOptions): tf.Tensor2D {
  return tf.tidy(() => {
    let lo = tf.min(x, 1, true); // [G, 1]
    let hi = tf.max(x, 1, true);
    if (opts.zeroInRange ?? true) {
      lo = tf.minimum(lo, 0);
      hi = tf.maximum(hi, 0);
    }
    const range = tf.sub(hi, lo);
    const quantizable = tf.greater(range, 0);
    // Constant rows get scale 1 only to keep the arithmetic finite; `where` below returns them as they were.
    const scale = tf.where(quantizable, tf.div(range, levels), tf.onesLike(range));
    const zp = tf.round(tf.div(tf.neg(lo), scale));
    const q = tf.clipByValue(tf.add(tf.round(tf.div(x, scale)), zp), 0, levels);
    const dequant = tf.mul(tf.sub(q, zp), scale);
    return tf.where(tf.broadcastTo(quantizable, x.shape), dequant, x) as tf.Tensor2D;
  });
}

/**
 * Per-token asymmetric fake quantization: each row of x [N, width] is one group.
 * Used for the inputs of q/k/v, gate/up and down_proj.
 *
 * @example const xq = fakeQuantPerTokenAsym(x, 4);
 */
export function fakeQuantPerTokenAsym(x: tf.Tensor2D, bits: number, opts: ActQuantOptions = {}): tf.Tensor2D {
  const levels = checkBits(bits);
  if (x.rank !== 2) throw new ShapeError(`fakeQuantPerTokenAsym: expected [N, width], got [${x.shape}]`);
  return fakeQuantRows(x, levels, opts);
}

/**
 * Per-token, per-group asymmetric fake quantization: each row of x [N, width] is split into
 * width / groupSize consecutive groups with their own scale and zero point. With groupSize = head width
 * this is o_proj's input quantized per head (each head's output vector is one group).
 *
 * @example const oq = fakeQuantPerGroupAsym(merged, 4, headDim);
 */
export function fakeQuantPerGroupAsym(x: tf.Tensor2D, bits: number, groupSize: number, opts: ActQuantOptions = {}): tf.Tensor2D {
  const levels = checkBits(bits);
  if (x.rank !== 2) throw new ShapeError(`fakeQuantPerGroupAsym: expected [N, width], got [${x.shape}]`);
  const [n, width] = x.shape;
  if (!Number.isInteger(groupSize) || groupSize < 1 || width % groupSize !== 0) {
    throw new ConfigError('groupSize', `must be a positive integer dividing the width ${width}, got ${groupSize}`);
  }
  return tf.tidy(() => {
    const groups = tf.reshape(x, [(n * width) / groupSize, groupSize]) as tf.Tensor2D;
    return tf.reshape(fakeQuantRows(groups, levels, opts), [n, width]) as tf.Tensor2D;
  });
}

/**
 * KV-cache fake quantization "per head": every cached vector of one head at one position (batch b,
 * head h, token t: the hd values t[b, h, t, :]) is a group with its own scale and zero point. This is
 * what QuaRot's KV quantizer does (groupsize = head_dim): a new token's key/value can be quantized when
 * it is written, without looking at other tokens. Keys are quantized after RoPE, as the cache stores them.
 *
 * @param t keys or values [B, Hkv, T, hd]
 * @example const [kq, vq] = [fakeQuantKvPerHead(k, 4), fakeQuantKvPerHead(v, 4)];
 */
export function fakeQuantKvPerHead(t: tf.Tensor4D, bits: number, opts: ActQuantOptions = {}): tf.Tensor4D {
  const levels = checkBits(bits);
  if (t.rank !== 4) throw new ShapeError(`fakeQuantKvPerHead: expected [B, Hkv, T, hd], got [${t.shape}]`);
  const [b, h, T, hd] = t.shape;
  return tf.tidy(() => {
    const vectors = tf.reshape(t, [b * h * T, hd]) as tf.Tensor2D;
    return tf.reshape(fakeQuantRows(vectors, levels, opts), [b, h, T, hd]) as tf.Tensor4D;
  });
}
