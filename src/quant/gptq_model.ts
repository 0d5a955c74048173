/**
 * GPTQ over a whole model, as the GPTQ and QuaRot reference code does it: block after block, and inside
 * a block in the order the inputs are produced (q/k/v, then o, then gate/up, then down: "true
 * sequential"), each layer's Hessian X^T X is taken on the calibration windows with everything before it
 * already quantized, so each quantization sees (and partly corrects) the error of the ones before.
 * Activations stay in full precision during calibration (QuaRot's setting: GPTQ runs before the
 * activation quantizers are switched on).
 *
 * Inputs are captured through BlockHooks.linearInput; the forward pass stops right after the capture
 * (a sentinel thrown from the hook; tf.tidy releases the pass's tensors), so calibrating layer i costs
 * a forward pass through i + 1 blocks, not the whole model.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, OspError } from '../errors.ts';
import type { BlockHooks } from '../model/layers.ts';
import type { Transformer } from '../model/transformer.ts';
import { gptqQuantize, type GptqOptions } from './gptq.ts';
import type { QuantEvalBatch } from './eval.ts';

export type Site = 'qkv' | 'o' | 'gate_up' | 'down';

/** The block linears by the input they read, in the order a forward pass reaches them. */
const SEQUENCE: readonly { site: Site; linears: readonly string[] }[] = [
  { site: 'qkv', linears: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] },
  { site: 'o', linears: ['self_attn.o_proj'] },
  { site: 'gate_up', linears: ['mlp.gate_proj', 'mlp.up_proj'] },
  { site: 'down', linears: ['mlp.down_proj'] },
];

export interface GptqModelOptions extends GptqOptions {
  /**
   * Applied to down_proj's input before capture and in every forward pass (the online half of FFN Had
   * or QuaRot, when the model's down_proj weights were rotated offline).
   */
  downRotate?: (x: tf.Tensor2D) => tf.Tensor2D;
  /** Progress, one call per quantized group of layers. */
  onLayer?: (layer: number, site: Site) => void;
}

class Captured extends Error {}

/**
 * Replaces every block linear weight of `model` by its GPTQ fake-quantized value (in place; the caller
 * keeps a copy if it needs the originals). Embedding, norms and head are untouched.
 *
 * @example await gptqModel(work, calibrationBatches, { bits: 4, clipSearch: true });
 */
export async function gptqModel(model: Transformer, calibration: readonly QuantEvalBatch[], opts: GptqModelOptions): Promise<void> {
  if (calibration.length === 0) {
    throw new ConfigError('quant.gptq.calibrationWindows', 'GPTQ needs at least one calibration batch');
  }
  const { downRotate, onLayer, ...gptq } = opts;
  for (let layer = 0; layer < model.config.numLayers; layer++) {
    for (const { site, linears } of SEQUENCE) {
      const h = await linearInputHessian(model, calibration, layer, site, downRotate);
      for (const linear of linears) {
        const name = `model.layers.${layer}.${linear}.weight`;
        const v = model.params.get(name);
        if (!v) throw new OspError(`gptqModel: model has no parameter '${name}'`);
        const [rows, cols] = v.shape as [number, number];
        const w = (await v.data()) as Float32Array;
        const { dequantized } = gptqQuantize(w, rows, cols, h, gptq);
        tf.tidy(() => v.assign(tf.tensor2d(dequantized, [rows, cols])));
      }
      onLayer?.(layer, site);
    }
  }
}

/**
 * X^T X (float64 sum of float32 per-batch products) of the input of (layer, site) over the calibration
 * batches, with the model as it is now (earlier layers already quantized in gptqModel).
 */
export async function linearInputHessian(
  model: Transformer,
  calibration: readonly QuantEvalBatch[],
  layer: number,
  site: Site,
  downRotate?: (x: tf.Tensor2D) => tf.Tensor2D,
): Promise<Float64Array> {
  let h: Float64Array | undefined;
  for (const b of calibration) {
    let captured: tf.Tensor2D | undefined;
    const hooks: BlockHooks = {
      linearInput: (x, s, l) => {
        const input = s === 'down' && downRotate ? downRotate(x) : x;
        if (s === site && l === layer) {
          captured = tf.keep(tf.matMul(input, input, true, false)) as tf.Tensor2D; // [cols, cols]
          throw new Captured();
        }
        return input;
      },
    };
    try {
      tf.tidy(() => {
        const inputs = tf.tensor2d(b.inputs, [b.batchSize, b.seqLen], 'int32');
        model.forward(inputs, { hooks });
      });
    } catch (e) {
      if (!(e instanceof Captured)) throw e;
    }
    if (!captured) throw new OspError(`gptqModel: the forward pass never reached layer ${layer}'s ${site} input`);
    const xtx = (await captured.data()) as Float32Array;
    captured.dispose();
    h ??= new Float64Array(xtx.length);
    for (let i = 0; i < xtx.length; i++) h[i]! += xtx[i]!;
  }
  return h!;
}
