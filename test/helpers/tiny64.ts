/**
 * The float64 oracle's view of a tinyRun checkpoint (test/helpers/run.ts): its weights and config, and
 * `osp eval`'s loss definition recomputed with the float64 Llama.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSafetensors, toFloat32 } from '../../src/io/safetensors.ts';
import { crossEntropy64, llama64, type Llama64Config, type Weights } from './llama64.ts';

/** The model of tinyRun: d=32, 2 layers, 4 heads over 2 KV heads, SSNorm + EmbProj, maxSeqLen 32. */
export const TINY_RUN_64: Llama64Config = {
  vocabSize: 258,
  hiddenSize: 32,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  intermediateSize: 96,
  ropeTheta: 10000,
  normEps: 1e-6,
  embproj: true,
  tie: false,
};

/** A checkpoint directory's model.safetensors as float64 weights. */
export function checkpointWeights64(checkpointDir: string): Weights {
  const tensors = decodeSafetensors(readFileSync(join(checkpointDir, 'model.safetensors'))).tensors;
  return new Map([...tensors].map(([k, v]) => [k, Float64Array.from(toFloat32(v))]));
}

/**
 * Mean next-token loss (nats per byte) of BOS + the text's bytes, cut into windows of at most
 * `maxSeqLen` + 1 tokens overlapping by one, so every byte is predicted once (`osp eval`'s definition).
 */
export function textLoss64(c: Llama64Config, w: Weights, text: string, maxSeqLen = 32): number {
  const tokens = [256, ...Buffer.from(text)];
  let nats = 0;
  for (let s = 0; s + 1 < tokens.length; s += maxSeqLen) {
    const win = tokens.slice(s, s + maxSeqLen + 1);
    nats += crossEntropy64(llama64(c, w, [win.slice(0, -1)]).logits, c.vocabSize, win.slice(1)) * (win.length - 1);
  }
  return nats / (tokens.length - 1);
}
