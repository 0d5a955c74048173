/**
 * GGUF export for llama.cpp: a folded (plain Llama) model as GGUF v3 with llama.cpp's tensor names,
 * its adjacent-pair RoPE layout for q/k rows, 1-D tensors kept F32, and the run's tokenizer as llama.cpp's
 * `tokenizer.ggml.*` keys (Tokenizer.ggufVocab: a 'gpt2' byte-level BPE; the byte tokenizer is one
 * without merges, pre-tokenizer 'qwen2'), padded with unused `[PAD<id>]` tokens up to the model's vocabulary.
 */
import { OspError } from '../errors.ts';
import { arr, bool, encodeGguf, f32, str, u32, type GgufValue } from '../io/gguf.ts';
import type { ModelConfig } from '../model/config.ts';
import { byteTokenizer, describeTokenizer, GGUF_TOKEN_TYPE, type GgufVocab, type Tokenizer } from '../data/tokenizer.ts';
import type { Weights } from '../model/fold.ts';

export const GGUF_TYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
export type GgufExportType = (typeof GGUF_TYPES)[number];
const GGML = { f32: 'F32', f16: 'F16', q8_0: 'Q8_0', q4_0: 'Q4_0' } as const;
/** llama.cpp's general.file_type (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_0). */
const FILE_TYPE = { f32: 0, f16: 1, q8_0: 7, q4_0: 2 } as const;

/**
 * Hugging Face's q/k rows (rotate_half: channel j pairs with j + hd/2) in llama.cpp's order
 * (adjacent pairs): new row h*hd + 2j + t <- old row h*hd + t*hd/2 + j.
 */
export function permuteForLlamaCpp(w: Float32Array, heads: number, hd: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let t = 0; t < 2; t++) {
        const from = h * hd + t * half + j;
        const to = h * hd + 2 * j + t;
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/**
 * The tokenizer's GGUF vocabulary stretched to the model's `vocabSize`: ids the tokenizer lacks (a model
 * vocabulary padded above the tokenizer's, e.g. 50304 for GPT-2's 50257) become `[PAD<id>]` tokens of type
 * unused, as convert_hf_to_gguf.py writes them. A model smaller than the tokenizer is an OspError.
 */
export function modelGgufVocab(vocabSize: number, tokenizer: Tokenizer): GgufVocab {
  const v = tokenizer.ggufVocab();
  if (vocabSize < v.tokens.length) {
    throw new OspError(
      `gguf export: the model's vocabulary has ${vocabSize} tokens, fewer than the ${v.tokens.length} of tokenizer ` +
        `${describeTokenizer(tokenizer)}; export it with the tokenizer it was trained with`,
    );
  }
  const tokens = [...v.tokens];
  const tokenTypes = [...v.tokenTypes];
  for (let id = tokens.length; id < vocabSize; id++) {
    tokens.push(`[PAD${id}]`);
    tokenTypes.push(GGUF_TOKEN_TYPE.unused);
  }
  return { ...v, tokens, tokenTypes };
}

/**
 * GGUF bytes of a folded model with `tokenizer`'s vocabulary (default the byte tokenizer). Quantized types
 * need every matrix's input width to be a multiple of 32.
 */
export function llamaGguf(
  config: ModelConfig,
  weights: Weights,
  type: GgufExportType,
  name = 'osp-lab',
  tokenizer: Tokenizer = byteTokenizer,
): Uint8Array {
  if (config.norm !== 'rmsnorm' || config.embedding !== 'plain') throw new OspError('llamaGguf: fold the model first (foldToLlama)');
  const c = config;
  const vocab = modelGgufVocab(c.vocabSize, tokenizer);
  const get = (n: string) => {
    const w = weights.get(n);
    if (!w) throw new OspError(`export: missing parameter '${n}'`);
    return w;
  };
  const quantized = type === 'q8_0' || type === 'q4_0';
  const matrixType = (cols: number, what: string) => {
    if (quantized && cols % 32 !== 0) {
      throw new OspError(`--type ${type}: ${what} has input width ${cols}, not a multiple of the 32-value block; use --type f16 or f32`);
    }
    return GGML[type];
  };
  // Embedding and output stay at 8 bits when the body is 4-bit (llama.cpp's quantize also keeps the
  // output layer at higher precision): they are not what the W4 experiment is about.
  const outerType = (cols: number, what: string) => {
    const t = matrixType(cols, what);
    return t === 'Q4_0' ? 'Q8_0' : t;
  };
  const tensors: { name: string; shape: number[]; type: 'F32' | 'F16' | 'Q8_0' | 'Q4_0'; data: Float32Array }[] = [];
  const vec = (gg: string, hf: string) => tensors.push({ name: gg, shape: get(hf).shape, type: 'F32', data: get(hf).data });
  const mat = (gg: string, hf: string, data?: Float32Array) => {
    const w = get(hf);
    tensors.push({ name: gg, shape: w.shape, type: matrixType(w.shape[1]!, hf), data: data ?? w.data });
  };
  const E = get('model.embed_tokens.weight');
  tensors.push({ name: 'token_embd.weight', shape: E.shape, type: outerType(E.shape[1]!, 'model.embed_tokens.weight'), data: E.data });
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    vec(`blk.${i}.attn_norm.weight`, `${p}.input_layernorm.weight`);
    mat(
      `blk.${i}.attn_q.weight`,
      `${p}.self_attn.q_proj.weight`,
      permuteForLlamaCpp(get(`${p}.self_attn.q_proj.weight`).data, c.numHeads, c.headDim, c.hiddenSize),
    );
    mat(
      `blk.${i}.attn_k.weight`,
      `${p}.self_attn.k_proj.weight`,
      permuteForLlamaCpp(get(`${p}.self_attn.k_proj.weight`).data, c.numKvHeads, c.headDim, c.hiddenSize),
    );
    mat(`blk.${i}.attn_v.weight`, `${p}.self_attn.v_proj.weight`);
    mat(`blk.${i}.attn_output.weight`, `${p}.self_attn.o_proj.weight`);
    vec(`blk.${i}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`);
    mat(`blk.${i}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`);
    mat(`blk.${i}.ffn_up.weight`, `${p}.mlp.up_proj.weight`);
    mat(`blk.${i}.ffn_down.weight`, `${p}.mlp.down_proj.weight`);
  }
  vec('output_norm.weight', 'model.norm.weight');
  // llama.cpp uses token_embd for the output when output.weight is absent (tied); every tensor in
  // the file must be used, so a tied model writes no output.weight.
  if (!c.tieEmbeddings) {
    const H = get('lm_head.weight');
    tensors.push({ name: 'output.weight', shape: H.shape, type: outerType(H.shape[1]!, 'lm_head.weight'), data: H.data });
  }
  const kv: [string, GgufValue][] = [
    ['general.architecture', str('llama')],
    ['general.name', str(name)],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['llama.context_length', u32(c.maxSeqLen)],
    ['llama.embedding_length', u32(c.hiddenSize)],
    ['llama.block_count', u32(c.numLayers)],
    ['llama.feed_forward_length', u32(c.intermediateSize)],
    ['llama.attention.head_count', u32(c.numHeads)],
    ['llama.attention.head_count_kv', u32(c.numKvHeads)],
    ['llama.attention.key_length', u32(c.headDim)],
    ['llama.attention.value_length', u32(c.headDim)],
    ['llama.attention.layer_norm_rms_epsilon', f32(c.normEps)],
    ['llama.rope.freq_base', f32(c.ropeTheta)],
    ['llama.rope.dimension_count', u32(c.headDim)],
    ['llama.vocab_size', u32(c.vocabSize)],
    ['tokenizer.ggml.model', str(vocab.model)],
    ['tokenizer.ggml.pre', str(vocab.pre)],
    ['tokenizer.ggml.tokens', arr('string', vocab.tokens)],
    // GGUF_TOKEN_TYPE: 1 normal, 3 control (specials), 4 user-defined, 5 unused (padding).
    ['tokenizer.ggml.token_type', arr('i32', vocab.tokenTypes)],
    ['tokenizer.ggml.merges', arr('string', vocab.merges)],
    ['tokenizer.ggml.bos_token_id', u32(vocab.bos)],
    ['tokenizer.ggml.eos_token_id', u32(vocab.eos)],
    ['tokenizer.ggml.add_bos_token', bool(vocab.addBos)],
    ['tokenizer.ggml.add_eos_token', bool(false)],
  ];
  if (quantized) kv.push(['general.quantization_version', u32(2)]);
  return encodeGguf({ kv, tensors });
}
