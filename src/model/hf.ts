/**
 * Hugging Face Llama checkpoints read as osp-lab models (`osp train --init-from`, and every command that
 * reads a model: export/checkpoint.ts openModelSource): config.json (LlamaForCausalLM) mapped to a
 * ModelConfig, model.safetensors (one file, or model.safetensors.index.json and its shards; HF names,
 * [out, in] layout; F32, F16 or BF16) to float32 weights checked against it. The export is export/hf.ts.
 *
 * What osp-lab's Llama cannot compute is refused with the config.json field that asks for it: biases
 * (attention_bias, mlp_bias), RoPE scaling (rope_scaling, rope_parameters.rope_type), another activation
 * (hidden_act), another architecture (model_type, architectures), quantized weights
 * (quantization_config). Fields that do not change the function are accepted: pretraining_tp (its
 * sliced matrix products compute the same sums), attention_dropout (dropout is off at evaluation),
 * torch_dtype (the tensors' own dtypes are read), token ids, use_cache.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, FormatError } from '../errors.ts';
import { readFileOr } from '../io/read.ts';
import { decodeSafetensors, toFloat32, type TensorEntry } from '../io/safetensors.ts';
import { resolveModelConfig, type ModelConfig } from './config.ts';
import { paramSpecs } from './transformer.ts';
import type { Weights } from './weights.ts';

/** The weights file of a single-file checkpoint, and the index of a sharded one. */
export const HF_WEIGHTS_FILE = 'model.safetensors';
export const HF_INDEX_FILE = 'model.safetensors.index.json';

/** Tensor dtypes read (converted to float32). */
const FLOAT_DTYPES = ['F32', 'F16', 'BF16', 'F64'];

/** config.json's name of each ModelConfig field (for messages). */
const HF_FIELD: Record<string, string> = {
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  numLayers: 'num_hidden_layers',
  numHeads: 'num_attention_heads',
  numKvHeads: 'num_key_value_heads',
  headDim: 'head_dim',
  intermediateSize: 'intermediate_size',
  maxSeqLen: 'max_position_embeddings',
  ropeTheta: 'rope_theta',
  normEps: 'rms_norm_eps',
  tieEmbeddings: 'tie_word_embeddings',
  initStd: 'initializer_range',
};

function readJson(path: string): Record<string, unknown> {
  const text = readFileOr(path, (msg) => new FormatError(path, msg)).toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text) as unknown;
  } catch (e) {
    throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(path, 'invalid JSON: expected an object');
  return v as Record<string, unknown>;
}

/** True when `dir` holds Hugging Face weights (model.safetensors or its shard index). */
export function isHfDir(dir: string): boolean {
  return existsSync(join(dir, HF_WEIGHTS_FILE)) || existsSync(join(dir, HF_INDEX_FILE));
}

/** RoPE's base from rope_theta, or from transformers 5's rope_parameters; refuses scaled RoPE. */
function ropeTheta(j: Record<string, unknown>, path: string): unknown {
  const checkRope = (v: unknown, field: string) => {
    if (v === undefined || v === null) return;
    if (typeof v !== 'object' || Array.isArray(v))
      throw new FormatError(path, `${field} must be an object or null, found ${JSON.stringify(v)}`);
    const o = v as Record<string, unknown>;
    const type = o.rope_type ?? o.type;
    if (type !== 'default') {
      throw new FormatError(
        path,
        `${field} ${JSON.stringify(v)} is not supported: osp-lab's Llama has plain RoPE only ` +
          `(expected ${field} null or rope_type 'default', found rope_type ${JSON.stringify(type)})`,
      );
    }
  };
  checkRope(j.rope_scaling, 'rope_scaling');
  checkRope(j.rope_parameters, 'rope_parameters');
  const params = j.rope_parameters as Record<string, unknown> | undefined | null;
  const fromParams = params?.rope_theta;
  if (fromParams !== undefined && j.rope_theta !== undefined && fromParams !== j.rope_theta) {
    throw new FormatError(
      path,
      `rope_theta ${JSON.stringify(j.rope_theta)} contradicts rope_parameters.rope_theta ${JSON.stringify(fromParams)}`,
    );
  }
  return fromParams ?? j.rope_theta ?? 10000;
}

/**
 * The model config a Hugging Face Llama config.json describes (rmsnorm, plain embedding). Absent fields
 * take transformers' LlamaConfig defaults (num_key_value_heads = num_attention_heads, head_dim =
 * hidden_size / num_attention_heads, max_position_embeddings 2048, rope_theta 10000, rms_norm_eps 1e-6,
 * tie_word_embeddings false); the sizes themselves are required. Every refusal names the field.
 */
export function modelConfigFromHf(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  const j = readJson(path);
  if (j.model_type !== 'llama') {
    throw new FormatError(path, `model_type must be 'llama' (a LlamaForCausalLM), found ${JSON.stringify(j.model_type)}`);
  }
  const archs = j.architectures;
  if (archs !== undefined && archs !== null && (!Array.isArray(archs) || !archs.includes('LlamaForCausalLM'))) {
    throw new FormatError(path, `architectures must include 'LlamaForCausalLM' (a language-model head), found ${JSON.stringify(archs)}`);
  }
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu' && j.hidden_act !== 'swish') {
    throw new FormatError(path, `hidden_act must be 'silu' (osp-lab's SwiGLU), found ${JSON.stringify(j.hidden_act)}`);
  }
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (j[key] !== undefined && j[key] !== false) {
      throw new FormatError(path, `${key} must be false (osp-lab's Llama has no biases), found ${JSON.stringify(j[key])}`);
    }
  }
  if (j.quantization_config !== undefined && j.quantization_config !== null) {
    throw new FormatError(
      path,
      'quantization_config is set: quantized weights are not read (expected a float16/bfloat16/float32 checkpoint)',
    );
  }
  const theta = ropeTheta(j, path);
  if (j.tie_word_embeddings !== undefined && typeof j.tie_word_embeddings !== 'boolean') {
    throw new FormatError(path, `tie_word_embeddings must be true or false, found ${JSON.stringify(j.tie_word_embeddings)}`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (v === undefined) throw new FormatError(path, `${key} is missing (a Llama config.json states its sizes)`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new FormatError(path, `${key} must be a positive integer, found ${JSON.stringify(j[key])}`);
    }
    return v;
  };
  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) {
    throw new FormatError(path, `num_attention_heads ${heads} must be a multiple of num_key_value_heads ${kvHeads}`);
  }
  if ((j.head_dim === undefined || j.head_dim === null) && hidden % heads !== 0) {
    throw new FormatError(path, `hidden_size ${hidden} is not divisible by num_attention_heads ${heads}, and head_dim is not given`);
  }
  const headDim = int('head_dim', (j.head_dim ?? hidden / heads) as number);
  if (headDim % 2 !== 0) throw new FormatError(path, `head_dim must be even (RoPE rotates pairs), found ${headDim}`);
  if (j.pretraining_tp !== undefined && j.pretraining_tp !== null) int('pretraining_tp'); // a valid value; the function is the same
  const input = {
    vocabSize: int('vocab_size'),
    hiddenSize: hidden,
    numLayers: int('num_hidden_layers'),
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    intermediateSize: int('intermediate_size'),
    maxSeqLen: int('max_position_embeddings', 2048),
    ropeTheta: theta,
    normEps: j.rms_norm_eps ?? 1e-6,
    tieEmbeddings: j.tie_word_embeddings ?? false,
    initStd: j.initializer_range ?? 0.02,
    norm: 'rmsnorm',
    embedding: 'plain',
  };
  try {
    return resolveModelConfig(input);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // The schema names its own fields (model.ropeTheta); say config.json's.
    const field = e.field.replace(/^model\./, '');
    const message = e.message.slice(e.field.length + 2);
    throw new FormatError(path, `${HF_FIELD[field] ?? field}: ${message}`);
  }
}

/** The shard files of a checkpoint and, for a sharded one, which shard holds each tensor. */
function weightFiles(dir: string): { files: string[]; weightMap?: Map<string, string> } {
  const indexPath = join(dir, HF_INDEX_FILE);
  if (!existsSync(indexPath)) return { files: [HF_WEIGHTS_FILE] };
  const raw = readJson(indexPath).weight_map;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new FormatError(indexPath, `weight_map must be an object of tensor name -> shard file, found ${JSON.stringify(raw)}`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '' || /[/\\]/.test(file) || file === '.' || file === '..') {
      throw new FormatError(indexPath, `weight_map['${name}'] must be a shard file name in ${dir}, found ${JSON.stringify(file)}`);
    }
    weightMap.set(name, file);
  }
  const files = [...new Set(weightMap.values())];
  for (const f of files) {
    if (!existsSync(join(dir, f))) {
      const names = [...weightMap].filter(([, g]) => g === f).map(([n]) => n);
      throw new FormatError(
        indexPath,
        `shard '${f}' is missing from ${dir} (weight_map puts ${names.length} tensor${names.length === 1 ? '' : 's'} there, e.g. '${names[0]}')`,
      );
    }
  }
  return { files, weightMap };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}

/**
 * Reads a Hugging Face Llama checkpoint: its config and float32 weights (F16/BF16 converted), every
 * tensor checked against the shapes the config implies. A tied model's lm_head.weight, when an exporter
 * wrote it, must equal the embedding; rotary inv_freq buffers are ignored; any other tensor is refused.
 */
export function readHfCheckpoint(dir: string): { config: ModelConfig; weights: Weights } {
  const config = modelConfigFromHf(dir);
  const { files, weightMap } = weightFiles(dir);
  const tensors = new Map<string, { entry: TensorEntry; file: string }>();
  for (const f of files) {
    const path = join(dir, f);
    const bytes = readFileOr(path, (msg) => new FormatError(path, msg));
    for (const [name, entry] of decodeSafetensors(bytes, path).tensors) {
      const seen = tensors.get(name);
      if (seen) throw new FormatError(path, `tensor '${name}' is also in ${seen.file}`);
      if (weightMap && weightMap.get(name) !== f && !name.endsWith('rotary_emb.inv_freq')) {
        const listed = weightMap.get(name);
        throw new FormatError(
          join(dir, HF_INDEX_FILE),
          `tensor '${name}' is in shard '${f}', but weight_map ${listed ? `says '${listed}'` : 'does not list it'}`,
        );
      }
      tensors.set(name, { entry, file: path });
    }
  }
  const weights: Weights = new Map();
  const specs = paramSpecs(config);
  for (const spec of specs) {
    const t = tensors.get(spec.name);
    if (!t) {
      const where = weightMap
        ? weightMap.has(spec.name)
          ? join(dir, weightMap.get(spec.name)!)
          : `${join(dir, HF_INDEX_FILE)}: weight_map`
        : join(dir, HF_WEIGHTS_FILE);
      const why = spec.name === 'lm_head.weight' ? 'required by config.json: tie_word_embeddings is false' : 'required by config.json';
      throw new FormatError(where, `missing tensor '${spec.name}' (${why})`);
    }
    if (!FLOAT_DTYPES.includes(t.entry.dtype)) {
      throw new FormatError(t.file, `tensor '${spec.name}' has dtype ${t.entry.dtype}; expected F32, F16 or BF16 (or F64)`);
    }
    if (t.entry.shape.join(',') !== spec.shape.join(',')) {
      throw new FormatError(t.file, `tensor '${spec.name}' has shape [${t.entry.shape}], config.json implies [${spec.shape}]`);
    }
    const data = toFloat32(t.entry);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new FormatError(t.file, `tensor '${spec.name}' holds a non-finite value at index ${bad}`);
    weights.set(spec.name, { shape: spec.shape, data });
    tensors.delete(spec.name);
  }
  const head = tensors.get('lm_head.weight');
  if (config.tieEmbeddings && head) {
    if (!FLOAT_DTYPES.includes(head.entry.dtype) || !sameBits(toFloat32(head.entry), weights.get('model.embed_tokens.weight')!.data)) {
      throw new FormatError(
        head.file,
        "tensor 'lm_head.weight' differs from 'model.embed_tokens.weight', but config.json has tie_word_embeddings true",
      );
    }
    tensors.delete('lm_head.weight');
  }
  // Rotary caches some exporters add are derived, not learned; anything else is a model we do not know.
  for (const [name, t] of tensors) {
    if (name.endsWith('rotary_emb.inv_freq')) continue;
    const hint = name.endsWith('.bias') ? " (biases are not part of osp-lab's Llama)" : '';
    throw new FormatError(t.file, `unexpected tensor '${name}' for a Llama of this config${hint}`);
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
  type Field = (typeof fields)[number] | 'maxSeqLen';
  const diff: Field[] = fields.filter((f) => run[f] !== hf[f]);
  // A shorter context than the checkpoint's is fine (RoPE is the same); a longer one it never saw is not.
  if (run.maxSeqLen > hf.maxSeqLen) diff.push('maxSeqLen');
  if (diff.length > 0) {
    const what = (f: Field) =>
      f === 'maxSeqLen'
        ? `model.maxSeqLen is ${run.maxSeqLen}, above the checkpoint's max_position_embeddings ${hf.maxSeqLen}`
        : `model.${f} is ${JSON.stringify(run[f])}, the checkpoint has ${JSON.stringify(hf[f])}`;
    throw new ConfigError(
      '--init-from',
      `${dir} does not match the run's model: ` +
        diff.map(what).join('; ') +
        ` (fix with ${diff.map((f) => `--set model.${f}=${JSON.stringify(hf[f])}`).join(' ')})`,
    );
  }
}
