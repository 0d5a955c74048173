/**
 * What the data pipeline, the exporters and the shard headers need from a tokenizer, and the one rule
 * for document boundaries. The implementations are bytes.ts (osp-lab's byte tokenizer) and hf.ts (any
 * Hugging Face tokenizer.json through @huggingface/tokenizers; gpt2.ts assembles GPT-2's); index.ts is
 * the registry that picks one from a spec string.
 */

/** How a tokenizer was chosen; recorded in shard headers as a small code (SHARD_TOKENIZER_KIND_CODES). */
export type TokenizerKind = 'bytes' | 'gpt2' | 'tokenizer.json';

/**
 * Largest vocabulary osp-lab supports: token shards store ids as uint16, so every id must be below 65536
 * (Llama 3's 128256-token vocabulary, for one, does not fit).
 */
export const MAX_VOCAB_SIZE = 65536;

/** Token types of a GGUF vocabulary (llama.cpp's llama_token_type / gguf-py's TokenType). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * The vocabulary as a GGUF file stores it (llama.cpp's `tokenizer.ggml.*` keys), in the 'gpt2' (byte-level
 * BPE) model: token strings in GPT-2's byte-to-unicode spelling, by id; merges as "left right".
 */
export interface GgufVocab {
  /** `tokenizer.ggml.model`: byte-level BPE. */
  model: 'gpt2';
  /** `tokenizer.ggml.pre`: llama.cpp's name for the pre-tokenizer ('gpt-2', 'llama-bpe', 'qwen2'). */
  pre: string;
  /** `tokenizer.ggml.tokens`: one string per id, ids without a token as `[PAD<id>]`. */
  tokens: string[];
  /** `tokenizer.ggml.token_type`: GGUF_TOKEN_TYPE per id (normal, control for specials, unused for holes). */
  tokenTypes: number[];
  /** `tokenizer.ggml.merges`, in rank order. */
  merges: string[];
  bos: number;
  eos: number;
  /** `tokenizer.ggml.add_bos_token`: true, because every training document starts with `bos`. */
  addBos: boolean;
}

/** Options of Tokenizer.hfFiles. */
export interface HfFilesOptions {
  /** `model_max_length` of tokenizer_config.json (the model's maxSeqLen); left out when absent. */
  modelMaxLength?: number;
}

/** A tokenizer: text to ids and back, plus what identifies it and what exporters write for it. */
export interface Tokenizer {
  /** How it was chosen: 'bytes', 'gpt2', or the absolute path of a tokenizer.json file. */
  readonly spec: string;
  /** Which kind of tokenizer this is (recorded in shard headers). */
  readonly kind: TokenizerKind;
  /** Number of distinct ids: the largest id + 1 (the model's vocabSize must be at least this). */
  readonly vocabSize: number;
  /** Id that starts every document. */
  readonly bos: number;
  /** Id that ends every document (equal to `bos` for GPT-2: see tokenizeDocuments). */
  readonly eos: number;
  /**
   * A 32-bit unsigned id of the vocabulary, merges, specials, pre-tokenization and BOS/EOS: CRC-32C of a
   * canonical JSON (fingerprint.ts). Tokenizers that turn text into the same ids have equal fingerprints;
   * never 0 (0 in a shard header means "no tokenizer recorded").
   */
  readonly fingerprint: number;
  /** Text to ids, without specials: a special token's text inside `text` is encoded as ordinary text. */
  encode(text: string): Uint16Array;
  /** Ids to text; special tokens are dropped. An id outside the vocabulary is a RangeError. */
  decode(ids: ArrayLike<number>): string;
  /**
   * How many UTF-8 bytes of text the token stands for: 1 for a byte token, the piece's length for a BPE
   * token (a partial UTF-8 character counts its bytes), 0 for BOS, EOS and other special tokens. Bits per
   * byte divide a loss by these, so numbers of different tokenizers compare.
   */
  byteLength(id: number): number;
  /**
   * The Hugging Face tokenizer files of this tokenizer, by file name: tokenizer.json (its post-processor
   * prepends BOS, as training does), tokenizer_config.json (PreTrainedTokenizerFast, bos/eos tokens) and
   * special_tokens_map.json.
   */
  hfFiles(opts?: HfFilesOptions): Map<string, string>;
  /** The vocabulary as a GGUF file stores it; throws an OspError when llama.cpp cannot represent it. */
  ggufVocab(): GgufVocab;
}

/** A fingerprint as 8 hex digits, e.g. '0x1a2b3c4d'. */
export function formatFingerprint(fingerprint: number): string {
  return `0x${(fingerprint >>> 0).toString(16).padStart(8, '0')}`;
}

/** A tokenizer named for messages: `'gpt2' (50257 ids, fingerprint 0x...)`. */
export function describeTokenizer(t: Pick<Tokenizer, 'spec' | 'vocabSize' | 'fingerprint'>): string {
  return `'${t.spec}' (${t.vocabSize} ids, fingerprint ${formatFingerprint(t.fingerprint)})`;
}
