/**
 * From an osp-lab checkpoint to the files the quantization stage consumes. Reads the checkpoint's
 * weights on the host (no backend needed), refuses non-finite weights, folds OSP's modules into a
 * plain Llama, and writes Hugging Face or GGUF files.
 */
import { OspError } from '../errors.ts';
import { toFloat32 } from '../io/safetensors.ts';
import { resolveModelConfig, type ModelConfig } from '../model/config.ts';
import { paramSpecs } from '../model/transformer.ts';
import { openCheckpoint } from '../train/checkpoint.ts';
import { foldToLlama, type Weights } from '../model/fold.ts';

/**
 * A checkpoint's model config and float32 weights, every weight checked finite and of the right shape,
 * and the whole run config it was trained with (`runConfig`, as saved: data, optimizer, ...).
 */
export function checkpointWeights(path: string): {
  dir: string;
  step: number;
  config: ModelConfig;
  weights: Weights;
  runConfig: Record<string, unknown>;
} {
  const { dir, checkpoint } = openCheckpoint(path);
  const config = resolveModelConfig((checkpoint.state.config as { model: unknown }).model);
  const weights: Weights = new Map();
  for (const spec of paramSpecs(config)) {
    const t = checkpoint.model.get(spec.name);
    if (!t || t.shape.join(',') !== spec.shape.join(',')) {
      throw new OspError(
        `${dir}/model.safetensors: parameter '${spec.name}' is missing or has the wrong shape for the checkpoint's config`,
      );
    }
    const data = toFloat32(t);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new OspError(
        `${dir}/model.safetensors: parameter '${spec.name}' holds a non-finite value (${data[bad]}) at index ${bad}; nothing exported`,
      );
    }
    weights.set(spec.name, { shape: spec.shape, data });
  }
  return { dir, step: checkpoint.state.step, config, weights, runConfig: checkpoint.state.config as Record<string, unknown> };
}

/** The checkpoint folded into a plain Llama (see fold.ts). */
export function foldedCheckpoint(path: string): { dir: string; step: number; config: ModelConfig; weights: Weights } {
  const c = checkpointWeights(path);
  return { ...c, ...foldToLlama(c.config, c.weights) };
}
