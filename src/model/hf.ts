/**
 * Hugging Face Llama checkpoints read as osp-lab models (`osp train --init-from`): config.json
 * (LlamaForCausalLM) mapped to a ModelConfig, model.safetensors (one file or an index of shards; HF
 * names, [out, in] layout) to float32 weights checked against it. The export is export/hf.ts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, FormatError } from '../errors.ts';
import { readFileOr } from '../io/read.ts';
import { decodeSafetensors, toFloat32, type TensorEntry } from '../io/safetensors.ts';
import { resolveModelConfig, type ModelConfig } from './config.ts';
import { paramSpecs } from './transformer.ts';
import type { Weights } from './weights.ts';

function readJson(path: string): Record<string, unknown> {
  const text = readFileOr(path, (msg) => new FormatError(path, msg)).toString('utf8');
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
  }
}

/** The model config a Hugging Face Llama config.json describes (rmsnorm, plain embedding). */
export function modelConfigFromHf(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  const j = readJson(path);
  const archs = j.architectures as unknown;
  if (j.model_type !== 'llama' || !Array.isArray(archs) || !archs.includes('LlamaForCausalLM')) {
    throw new FormatError(path, `expected a LlamaForCausalLM (model_type 'llama'), found model_type ${JSON.stringify(j.model_type)}`);
  }
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu')
    throw new FormatError(path, `hidden_act must be 'silu', found ${JSON.stringify(j.hidden_act)}`);
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (j[key] === true) throw new FormatError(path, `${key} = true is not supported (osp-lab's Llama has no biases)`);
  }
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) throw new FormatError(path, 'rope_scaling is not supported (expected null)');
  const num = (key: string, fallback?: number) => {
    const v = j[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new FormatError(path, `'${key}' must be a number, found ${JSON.stringify(j[key])}`);
    return v;
  };
  const heads = num('num_attention_heads');
  const hidden = num('hidden_size');
  try {
    return resolveModelConfig({
      vocabSize: num('vocab_size'),
      hiddenSize: hidden,
      numLayers: num('num_hidden_layers'),
      numHeads: heads,
      numKvHeads: num('num_key_value_heads', heads),
      headDim: num('head_dim', hidden / heads),
      intermediateSize: num('intermediate_size'),
      maxSeqLen: num('max_position_embeddings'),
      ropeTheta: num('rope_theta', 10000),
      normEps: num('rms_norm_eps', 1e-6),
      tieEmbeddings: j.tie_word_embeddings === true,
      initStd: num('initializer_range', 0.02),
      norm: 'rmsnorm',
      embedding: 'plain',
    });
  } catch (e) {
    throw new FormatError(path, `inconsistent sizes: ${(e as Error).message}`);
  }
}

/**
 * Reads a Hugging Face Llama checkpoint: its config and float32 weights (F16/BF16 converted), every
 * tensor checked against the shapes the config implies.
 */
export function readHfCheckpoint(dir: string): { config: ModelConfig; weights: Weights } {
  const config = modelConfigFromHf(dir);
  const files = existsSync(join(dir, 'model.safetensors.index.json'))
    ? [...new Set(Object.values((readJson(join(dir, 'model.safetensors.index.json')).weight_map ?? {}) as Record<string, string>))]
    : ['model.safetensors'];
  const tensors = new Map<string, { entry: TensorEntry; file: string }>();
  for (const f of files) {
    const path = join(dir, f);
    const bytes = readFileOr(path, (msg) => new FormatError(path, msg));
    for (const [name, entry] of decodeSafetensors(bytes, path).tensors) tensors.set(name, { entry, file: path });
  }
  const weights: Weights = new Map();
  for (const spec of paramSpecs(config)) {
    const t = tensors.get(spec.name);
    if (!t) throw new FormatError(join(dir, files[0]!), `missing tensor '${spec.name}' (required by config.json)`);
    if (t.entry.shape.join(',') !== spec.shape.join(',')) {
      throw new FormatError(t.file, `tensor '${spec.name}' has shape [${t.entry.shape}], config.json implies [${spec.shape}]`);
    }
    const data = toFloat32(t.entry);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new FormatError(t.file, `tensor '${spec.name}' holds a non-finite value at index ${bad}`);
    weights.set(spec.name, { shape: spec.shape, data });
    tensors.delete(spec.name);
  }
  // Rotary caches some exporters add are derived, not learned; anything else is a model we do not know.
  for (const [name, t] of tensors) {
    if (!name.endsWith('rotary_emb.inv_freq')) throw new FormatError(t.file, `unexpected tensor '${name}' for a Llama of this config`);
  }
  return { config, weights };
}

/**
 * Checks that a run's model config is the checkpoint's (every size equal, plain Llama modules) and
 * names each difference with the `--set` that would fix it.
 */
export function checkInitFrom(run: ModelConfig, hf: ModelConfig, dir: string): void {
  const fields = [
    'vocabSize',
    'hiddenSize',
    'numLayers',
    'numHeads',
    'numKvHeads',
    'headDim',
    'intermediateSize',
    'ropeTheta',
    'normEps',
    'tieEmbeddings',
    'norm',
    'embedding',
  ] as const;
  const diff = fields.filter((f) => run[f] !== hf[f]);
  if (diff.length > 0) {
    throw new ConfigError(
      '--init-from',
      `${dir} does not match the run's model: ` +
        diff.map((f) => `model.${f} is ${JSON.stringify(run[f])}, the checkpoint has ${JSON.stringify(hf[f])}`).join('; ') +
        ` (fix with ${diff.map((f) => `--set model.${f}=${JSON.stringify(hf[f])}`).join(' ')})`,
    );
  }
  if (run.maxSeqLen > hf.maxSeqLen) {
    throw new ConfigError(
      '--init-from',
      `model.maxSeqLen ${run.maxSeqLen} exceeds the checkpoint's max_position_embeddings ${hf.maxSeqLen}`,
    );
  }
}
