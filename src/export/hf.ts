/**
 * Hugging Face Llama checkpoints: export (what quantizers and transformers load) and import
 * (`osp train --init-from`). Files: config.json (LlamaForCausalLM), model.safetensors (HF names,
 * [out, in] layout), generation_config.json, and tokenizer files describing the byte-level tokenizer
 * for Hugging Face tokenizers (a BPE over GPT-2's byte characters with no merges).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { readFileOr } from '../io/read.ts';
import { join } from 'node:path';
import { ConfigError, FormatError, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { decodeSafetensors, encodeSafetensors, fromFloat32, toFloat32, type TensorEntry } from '../io/safetensors.ts';
import { resolveModelConfig, type ModelConfig } from '../model/config.ts';
import { paramSpecs } from '../model/transformer.ts';
import { BOS_TOKEN, EOS_TOKEN, byteVocab } from './byte_vocab.ts';
import type { Weights } from './fold.ts';

export type HfDtype = 'f32' | 'f16' | 'bf16';
const DTYPE = { f32: 'F32', f16: 'F16', bf16: 'BF16' } as const;
const TORCH_DTYPE = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' } as const;
const BOS_ID = 256;
const EOS_ID = 257;

/** config.json of a plain Llama (a folded model: rmsnorm, plain embedding). */
export function hfConfig(c: ModelConfig, dtype: HfDtype): Record<string, unknown> {
  if (c.norm !== 'rmsnorm' || c.embedding !== 'plain') throw new OspError('hfConfig: fold the model first (foldToLlama)');
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: c.tieEmbeddings,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: c.initStd,
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
  };
}

/** tokenizer.json for Hugging Face tokenizers: byte-level BPE without merges, BOS prepended. */
function tokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteVocab().forEach((tok, id) => (vocab[tok] = id));
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(BOS_ID, BOS_TOKEN), special(EOS_ID, EOS_TOKEN)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BOS_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BOS_TOKEN, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [BOS_TOKEN]: { id: BOS_TOKEN, ids: [BOS_ID], tokens: [BOS_TOKEN] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** Tensor order: Hugging Face's (embedding, layers in order, final norm, head). */
function orderedNames(c: ModelConfig): string[] {
  return paramSpecs(c).map((s) => s.name);
}

/**
 * Writes a Hugging Face Llama checkpoint directory from folded weights. Refuses a non-empty `dir`, so
 * nothing already saved is overwritten.
 */
export function writeHfCheckpoint(dir: string, config: ModelConfig, weights: Weights, dtype: HfDtype = 'f32'): string[] {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new OspError(`--out ${dir} exists and is not empty; choose a new directory (nothing was written)`);
  }
  mkdirSync(dir, { recursive: true });
  const entries: [string, TensorEntry][] = orderedNames(config).map((name) => {
    const w = weights.get(name);
    if (!w) throw new OspError(`export: missing parameter '${name}'`);
    return [name, { dtype: DTYPE[dtype], shape: w.shape, data: fromFloat32(w.data, DTYPE[dtype]) }];
  });
  const files: [string, Uint8Array | string][] = [
    ['model.safetensors', encodeSafetensors(entries, { format: 'pt' })],
    ['config.json', JSON.stringify(hfConfig(config, dtype), null, 2) + '\n'],
    [
      'generation_config.json',
      JSON.stringify({ _from_model_config: true, bos_token_id: BOS_ID, eos_token_id: EOS_ID }, null, 2) + '\n',
    ],
    ['tokenizer.json', JSON.stringify(tokenizerJson()) + '\n'],
    [
      'tokenizer_config.json',
      JSON.stringify(
        {
          tokenizer_class: 'PreTrainedTokenizerFast',
          bos_token: BOS_TOKEN,
          eos_token: EOS_TOKEN,
          model_max_length: config.maxSeqLen,
          clean_up_tokenization_spaces: false,
        },
        null,
        2,
      ) + '\n',
    ],
    ['special_tokens_map.json', JSON.stringify({ bos_token: BOS_TOKEN, eos_token: EOS_TOKEN }, null, 2) + '\n'],
  ];
  for (const [name, data] of files) writeFileAtomicSync(join(dir, name), data);
  return files.map(([name]) => join(dir, name));
}

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
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw new FormatError(path, `hidden_act must be 'silu', found ${JSON.stringify(j.hidden_act)}`);
  for (const key of ['attention_bias', 'mlp_bias']) {
    if (j[key] === true) throw new FormatError(path, `${key} = true is not supported (osp-lab's Llama has no biases)`);
  }
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) throw new FormatError(path, 'rope_scaling is not supported (expected null)');
  const num = (key: string, fallback?: number) => {
    const v = j[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FormatError(path, `'${key}' must be a number, found ${JSON.stringify(j[key])}`);
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
  const fields = ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'intermediateSize', 'ropeTheta', 'normEps', 'tieEmbeddings', 'norm', 'embedding'] as const;
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
    throw new ConfigError('--init-from', `model.maxSeqLen ${run.maxSeqLen} exceeds the checkpoint's max_position_embeddings ${hf.maxSeqLen}`);
  }
}
