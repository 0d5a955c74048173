/**
 * The byte tokenizer, osp-lab's default: every UTF-8 byte is a token (ids 0..255) plus two specials,
 * BOS = 256 and EOS = 257 (vocabSize 258, the model config's default). It needs no trained merges, never
 * meets an unknown character, and keeps the embedding tiny, which suits small outlier experiments.
 *
 * Other tools see it as a byte-level BPE without merges: GPT-2's bytes_to_unicode spells every byte as a
 * printable character (printable Latin-1 bytes as themselves, the others as U+0100 onwards in byte
 * order), so such a BPE vocabulary maps token id = byte value, plus '<s>' (256) and '</s>' (257).
 */
import type { TokenizerJson } from './fingerprint.ts';
import { hfTokenizerFiles, bosTemplate } from './hf_files.ts';
import { GGUF_TOKEN_TYPE, type GgufVocab, type HfFilesOptions, type Tokenizer } from './tokenizer.ts';

/** Token strings of the byte tokenizer's specials in Hugging Face and GGUF files. */
export const BYTES_BOS_TOKEN = '<s>';
export const BYTES_EOS_TOKEN = '</s>';

/**
 * The byte tokenizer's fingerprint: tokenizerFingerprint of its tokenizer.json (bytesTokenizerJson) with
 * BOS 256 and EOS 257, fixed here so that it never changes silently (a test recomputes it). Loading the
 * exported tokenizer.json by path gives the same fingerprint.
 */
export const BYTES_FINGERPRINT = 0xff541902;

/** GPT-2's byte -> unicode character table, index = byte. */
export function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : 256 + next++));
  return table;
}

/** Token strings by id: the 256 byte characters, then BOS and EOS. */
export function byteVocab(): string[] {
  return [...bytesToUnicode(), BYTES_BOS_TOKEN, BYTES_EOS_TOKEN];
}

/** The byte tokenizer as a Hugging Face tokenizer.json: byte-level BPE without merges, BOS prepended. */
export function bytesTokenizerJson(): TokenizerJson {
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
    added_tokens: [special(256, BYTES_BOS_TOKEN), special(257, BYTES_EOS_TOKEN)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: bosTemplate(BYTES_BOS_TOKEN, 256),
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

/**
 * Byte-level tokenizer: ids 0..255 are UTF-8 bytes, 256 = BOS, 257 = EOS.
 *
 * @example
 *   const tok = new ByteTokenizer();
 *   tok.encode('hé');             // Uint16Array [104, 195, 169]
 *   tok.decode([256, 104, 105, 257]); // 'hi'
 */
export class ByteTokenizer implements Tokenizer {
  readonly spec = 'bytes';
  readonly kind = 'bytes' as const;
  readonly vocabSize = 258;
  readonly bos = 256;
  readonly eos = 257;
  readonly fingerprint = BYTES_FINGERPRINT;
  private readonly encoder = new TextEncoder();
  // Non-fatal: a byte sequence cut in the middle of a character (e.g. a sampled continuation) decodes to
  // U+FFFD instead of throwing, exactly as TextDecoder does.
  private readonly decoder = new TextDecoder('utf-8');

  /** UTF-8 bytes of `text` as token ids (no BOS/EOS). */
  encode(text: string): Uint16Array {
    return new Uint16Array(this.encoder.encode(text));
  }

  /** Text of the byte ids in `ids`; BOS/EOS are dropped, invalid UTF-8 becomes U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id === this.bos || id === this.eos) continue;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id at position ${i}: expected an integer in [0, ${this.vocabSize}), found ${id}`);
      }
      bytes[n++] = id;
    }
    return this.decoder.decode(bytes.subarray(0, n));
  }

  /** 1 for a byte id, 0 for BOS and EOS. */
  byteLength(id: number): number {
    return id < 256 ? 1 : 0;
  }

  /** tokenizer.json (byte-level BPE without merges, BOS prepended), tokenizer_config.json, special_tokens_map.json. */
  hfFiles(opts: HfFilesOptions = {}): Map<string, string> {
    return hfTokenizerFiles(bytesTokenizerJson(), BYTES_BOS_TOKEN, BYTES_EOS_TOKEN, opts);
  }

  /**
   * A 'gpt2' vocabulary without merges; pre-tokenizer 'qwen2' (with no merges any split gives the same
   * bytes, so the choice only has to be one llama.cpp knows; this is the one src/export/gguf.ts has used).
   */
  ggufVocab(): GgufVocab {
    const tokens = byteVocab();
    return {
      model: 'gpt2',
      pre: 'qwen2',
      tokens,
      tokenTypes: tokens.map((_, id) => (id < 256 ? GGUF_TOKEN_TYPE.normal : GGUF_TOKEN_TYPE.control)),
      merges: [],
      bos: this.bos,
      eos: this.eos,
      addBos: true,
    };
  }
}

/** The shared default tokenizer (it is stateless). */
export const byteTokenizer = new ByteTokenizer();
