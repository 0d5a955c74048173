/**
 * Hugging Face Llama checkpoints, export (what quantizers and transformers load); the import
 * (`osp train --init-from`) is model/hf.ts. Files: config.json (LlamaForCausalLM), model.safetensors
 * (HF names, [out, in] layout), generation_config.json, and the run's tokenizer as Hugging Face files
 * (Tokenizer.hfFiles: tokenizer.json with a BOS-prepending post-processor, tokenizer_config.json,
 * special_tokens_map.json; for the byte tokenizer a BPE over GPT-2's byte characters with no merges).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { encodeSafetensors, fromFloat32, type TensorEntry } from '../io/safetensors.ts';
import type { ModelConfig } from '../model/config.ts';
import { paramSpecs } from '../model/transformer.ts';
import { byteTokenizer, describeTokenizer, type Tokenizer } from '../data/tokenizer.ts';
import type { Weights } from '../model/fold.ts';

export type HfDtype = 'f32' | 'f16' | 'bf16';
const DTYPE = { f32: 'F32', f16: 'F16', bf16: 'BF16' } as const;
const TORCH_DTYPE = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' } as const;

/**
 * An OspError unless the model's embedding holds every id of the tokenizer (a model's vocabulary may be
 * padded above the tokenizer's, e.g. 50304 for GPT-2's 50257, never below it).
 */
function checkVocabFits(c: Pick<ModelConfig, 'vocabSize'>, tokenizer: Tokenizer, what: string): void {
  if (c.vocabSize < tokenizer.vocabSize) {
    throw new OspError(
      `${what}: the model's vocabulary has ${c.vocabSize} tokens, fewer than tokenizer ${describeTokenizer(tokenizer)}; ` +
        `export it with the tokenizer it was trained with`,
    );
  }
}

/** config.json of a plain Llama (a folded model: rmsnorm, plain embedding); BOS/EOS ids are the tokenizer's. */
export function hfConfig(c: ModelConfig, dtype: HfDtype, tokenizer: Tokenizer = byteTokenizer): Record<string, unknown> {
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
    bos_token_id: tokenizer.bos,
    eos_token_id: tokenizer.eos,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
  };
}

/** Tensor order: Hugging Face's (embedding, layers in order, final norm, head). */
function orderedNames(c: ModelConfig): string[] {
  return paramSpecs(c).map((s) => s.name);
}

/**
 * Writes a Hugging Face Llama checkpoint directory from folded weights, with `tokenizer`'s files (default
 * the byte tokenizer). Refuses a non-empty `dir`, so nothing already saved is overwritten, and a model
 * whose vocabulary cannot hold the tokenizer's ids.
 */
export function writeHfCheckpoint(
  dir: string,
  config: ModelConfig,
  weights: Weights,
  dtype: HfDtype = 'f32',
  tokenizer: Tokenizer = byteTokenizer,
): string[] {
  checkVocabFits(config, tokenizer, 'hf export');
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new OspError(`--out ${dir} exists and is not empty; choose a new directory (nothing was written)`);
  }
  const generation = { _from_model_config: true, bos_token_id: tokenizer.bos, eos_token_id: tokenizer.eos };
  // Built before the directory is made, so that a tokenizer that fails leaves nothing behind.
  const tokenizerFiles = [...tokenizer.hfFiles({ modelMaxLength: config.maxSeqLen })];
  const entries: [string, TensorEntry][] = orderedNames(config).map((name) => {
    const w = weights.get(name);
    if (!w) throw new OspError(`export: missing parameter '${name}'`);
    return [name, { dtype: DTYPE[dtype], shape: w.shape, data: fromFloat32(w.data, DTYPE[dtype]) }];
  });
  mkdirSync(dir, { recursive: true });
  const files: [string, Uint8Array | string][] = [
    ['model.safetensors', encodeSafetensors(entries, { format: 'pt' })],
    ['config.json', JSON.stringify(hfConfig(config, dtype, tokenizer), null, 2) + '\n'],
    ['generation_config.json', JSON.stringify(generation, null, 2) + '\n'],
    ...tokenizerFiles,
  ];
  for (const [name, data] of files) writeFileAtomicSync(join(dir, name), data);
  return files.map(([name]) => join(dir, name));
}
