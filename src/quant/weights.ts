/**
 * Weight quantization for evaluation: symmetric round-to-nearest (RTN) with an optional MSE clip search,
 * as QuaRot's WeightQuantizer does it (the "W4" of OSP's 4-4-4 setting), and the plumbing to swap
 * fake-quantized (dequantized) weights into a model and back.
 *
 * Integer range: QuaRot's symmetric convention, qmax = 2^(bits-1) - 1, scale = clip * max|w| / qmax,
 * q = clamp(round(w / scale), -qmax - 1, qmax): int4 uses [-8, 7] with scale = max/7, int8 [-128, 127]
 * with scale = max/127. Without clipping -8 is never reached (|w / scale| <= 7); with a clip factor
 * below 1 large negative weights saturate at -8 and large positive ones at 7.
 * Rounding is half to even, as torch.round and tf.round do, so the same weights quantize the same way.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, OspError, ShapeError } from '../errors.ts';
import type { Transformer } from '../model/transformer.ts';
import { rotateDownProj } from './hadamard.ts';

export interface WeightQuantOptions {
  /** Integer width of the quantized weights. */
  bits: 4 | 8;
  /** Columns (input features) sharing one scale; must divide `cols`. Default: all of them (per output channel). */
  groupSize?: number;
  /** Search each scale's clip factor for the least error (QuaRot/GPTQ `mse`); default false. */
  clipSearch?: boolean;
}

// QuaRot's defaults for the clip search (WeightQuantizer: grid=100, maxshrink=0.8, norm=2.4).
const GRID = 100;
const MAX_SHRINK = 0.8;
const NORM = 2.4;

/** Round half to even (torch.round, tf.round); Math.round rounds halves up. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Symmetric RTN of a [rows, cols] matrix in the [out, in] layout, one scale per output channel (row)
 * or per group of `groupSize` consecutive columns of a row.
 *
 * With `clipSearch`, each group tries the clip factors p = 1 - i/100 for i = 0..79 (1 down to 0.21,
 * QuaRot's grid of 100 with maxshrink 0.8) and keeps the first one with the least sum |w - dequant|^2.4.
 * p = 1 is tried first and only a strictly smaller error replaces it, so clipping never does worse than
 * plain RTN under that norm. A group of zeros gets scale 1 (any scale represents it exactly).
 *
 * @returns dequantized values (q * scale, float32, same layout) and the scales, [rows, cols / groupSize]
 * @example const { dequantized } = quantizeWeightRtn(w, 64, 128, { bits: 4, clipSearch: true });
 */
export function quantizeWeightRtn(
  w: Float32Array,
  rows: number,
  cols: number,
  opts: WeightQuantOptions,
): { dequantized: Float32Array; scales: Float32Array } {
  if (opts.bits !== 4 && opts.bits !== 8) {
    throw new ConfigError('bits', `weight quantization supports 4 or 8 bits, got ${String(opts.bits)}`);
  }
  if (w.length !== rows * cols) {
    throw new ShapeError(`quantizeWeightRtn: expected ${rows} x ${cols} = ${rows * cols} values, got ${w.length}`);
  }
  const gs = opts.groupSize ?? cols;
  if (!Number.isInteger(gs) || gs < 1 || cols % gs !== 0) {
    throw new ConfigError('groupSize', `must be a positive integer dividing the input width ${cols}, got ${gs}`);
  }
  const qmax = 2 ** (opts.bits - 1) - 1;
  const qmin = -qmax - 1;
  const steps = opts.clipSearch ? Math.round(MAX_SHRINK * GRID) : 1;
  const groups = cols / gs;
  const dequantized = new Float32Array(rows * cols);
  const scales = new Float32Array(rows * groups);

  // The candidate's dequantized value exactly as it will be stored (float32 scale, float32 product),
  // so the error the search minimises is the error of the returned values.
  const dq = (v: number, scale: number) => Math.fround(Math.min(qmax, Math.max(qmin, roundHalfEven(v / scale))) * scale);

  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const start = r * cols + g * gs;
      let xmax = 0;
      for (let i = start; i < start + gs; i++) xmax = Math.max(xmax, Math.abs(w[i]!));
      let best = Infinity;
      let bestScale = 1;
      if (xmax > 0) {
        for (let s = 0; s < steps; s++) {
          const p = 1 - s / GRID;
          const scale = Math.fround((p * xmax) / qmax);
          if (scale === 0) continue; // subnormal weights: a zero scale cannot be divided by
          let err = 0;
          // Partial sums only grow, so a candidate already worse than the best can stop early.
          for (let i = start; i < start + gs && err < best; i++) err += Math.abs(w[i]! - dq(w[i]!, scale)) ** NORM;
          if (err < best) {
            best = err;
            bestScale = scale;
          }
        }
      }
      scales[r * groups + g] = bestScale;
      for (let i = start; i < start + gs; i++) dequantized[i] = dq(w[i]!, bestScale);
    }
  }
  return { dequantized, scales };
}

export interface ModelWeightQuantOptions {
  /** Integer width, or 16 for full precision (only the rotation below, if asked, is applied). */
  bits: 4 | 8 | 16;
  groupSize?: number;
  clipSearch?: boolean;
  /**
   * Quantize down_proj's weight after rotating it, W H^T (FFN Had). The returned down_proj weights then
   * compute the right function only with hadamardRotate applied to down_proj's input.
   */
  rotateDown?: boolean;
}

/** The linear layers inside blocks, by the suffix of their parameter name. */
const BLOCK_LINEARS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
] as const;

/** Names of the block linear weights of a model (q/k/v/o/gate/up/down of every layer), in layer order. */
export function blockLinearNames(model: Transformer): string[] {
  const names: string[] = [];
  for (let i = 0; i < model.config.numLayers; i++) {
    for (const l of BLOCK_LINEARS) names.push(`model.layers.${i}.${l}.weight`);
  }
  return names;
}

/**
 * Fake-quantized copies of the block linear weights (q/k/v/o/gate/up/down), keyed by parameter name.
 * Embedding, LM head, EmbProj and norms are left out: OSP's setting keeps them in 16 bits. Weights are
 * read asynchronously (WebGPU in Node cannot read synchronously). With `bits: 16` only the rotated
 * down_proj weights (when `rotateDown`) are returned.
 *
 * @example
 *   const q = await quantizeModelWeights(model, { bits: 4, clipSearch: true });
 *   const loss = await withWeights(model, q, () => evaluate(model));
 */
export async function quantizeModelWeights(model: Transformer, opts: ModelWeightQuantOptions): Promise<Map<string, Float32Array>> {
  if (opts.bits !== 4 && opts.bits !== 8 && opts.bits !== 16) {
    throw new ConfigError('bits', `weight quantization supports 4, 8 or 16 (off) bits, got ${String(opts.bits)}`);
  }
  const out = new Map<string, Float32Array>();
  for (const name of blockLinearNames(model)) {
    const isDown = name.endsWith('.mlp.down_proj.weight');
    if (opts.bits === 16 && !(isDown && opts.rotateDown)) continue;
    const v = model.params.get(name);
    if (!v) throw new OspError(`quantizeModelWeights: model has no parameter '${name}'`);
    const [rows, cols] = v.shape as [number, number];
    let w = (await v.data()) as Float32Array;
    if (isDown && opts.rotateDown) w = rotateDownProj(w, rows, cols);
    if (opts.bits !== 16) {
      w = quantizeWeightRtn(w, rows, cols, { bits: opts.bits, groupSize: opts.groupSize, clipSearch: opts.clipSearch }).dequantized;
    }
    out.set(name, w);
  }
  return out;
}

/**
 * Runs `fn` with some parameters replaced by the given values, then puts the original values back,
 * also when `fn` throws. The originals are kept as tensors sharing the variables' storage, never copied
 * through float conversions, so the restored weights are bit-identical.
 *
 * @param weights parameter name -> values in the parameter's layout and size
 * @example const loss = await withWeights(model, quantized, () => meanLoss(model, batches));
 */
export async function withWeights<T>(model: Transformer, weights: ReadonlyMap<string, Float32Array>, fn: () => T | Promise<T>): Promise<T> {
  for (const [name, values] of weights) {
    const v = model.params.get(name);
    if (!v) throw new OspError(`withWeights: model has no parameter '${name}'`);
    if (values.length !== v.size) {
      throw new ShapeError(`withWeights: '${name}' has ${v.size} values [${v.shape}], got ${values.length}`);
    }
  }
  const saved = new Map<string, tf.Tensor>();
  try {
    for (const [name, values] of weights) {
      const v = model.params.get(name)!;
      // clone shares the data buffer (an Identity kernel with a reference count); assign then
      // points the variable at the new buffer while the clone keeps the original alive.
      saved.set(name, tf.clone(v));
      const t = tf.tensor(values, v.shape, 'float32');
      v.assign(t);
      t.dispose(); // the variable holds its own reference
    }
    return await fn();
  } finally {
    for (const [name, original] of saved) {
      model.params.get(name)!.assign(original);
      original.dispose();
    }
  }
}
