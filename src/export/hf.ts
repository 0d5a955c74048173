/**
 * Hugging Face Llama checkpoints, export (what quantizers and transformers load); the import
 * (`osp train --init-from`) is model/hf.ts. Files: config.json (LlamaForCausalLM), model.safetensors
 * (HF names, [out, in] layout), generation_config.json, and tokenizer files describing the byte-level
 * tokenizer for Hugging Face tokenizers (a BPE over GPT-2's byte characters with no merges).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { encodeSafetensors, fromFloat32, type TensorEntry } from '../io/safetensors.ts';
import type { ModelConfig } from '../model/config.ts';
import { paramSpecs } from '../model/transformer.ts';
import { BOS_TOKEN, EOS_TOKEN, byteVocab } from './byte_vocab.ts';
import type { Weights } from '../model/fold.ts';

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
      pair: [{ SpecialToken: { id: BOS_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
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
    ['generation_config.json', JSON.stringify({ _from_model_config: true, bos_token_id: BOS_ID, eos_token_id: EOS_ID }, null, 2) + '\n'],
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
