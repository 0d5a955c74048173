/**
 * Tokenizers. The default is byte-level: every UTF-8 byte is a token (ids 0..255) plus two specials,
 * BOS = 256 and EOS = 257 (vocabSize 258, the model config's default). It needs no trained merges, never
 * meets an unknown character, and keeps the embedding tiny, which suits small outlier experiments.
 */

/** What the data pipeline needs from a tokenizer; a BPE tokenizer would implement the same shape. */
export interface Tokenizer {
  /** Number of distinct ids (the model's vocabSize must be at least this). */
  readonly vocabSize: number;
  /** Id that starts every document. */
  readonly bos: number;
  /** Id that ends every document. */
  readonly eos: number;
  /** Text to ids, without specials. */
  encode(text: string): Uint16Array;
  /** Ids to text; specials are dropped. */
  decode(ids: ArrayLike<number>): string;
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
  readonly vocabSize = 258;
  readonly bos = 256;
  readonly eos = 257;
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
}

/** The shared default tokenizer (it is stateless). */
export const byteTokenizer = new ByteTokenizer();

/**
 * Tokenizes documents into one stream: for each document BOS + tokens + EOS, concatenated. The
 * specials mark document boundaries inside training windows, so the model learns where a text starts.
 *
 * @example
 *   tokenizeDocuments(['hi', 'yo']); // [256, 104, 105, 257, 256, 121, 111, 257]
 */
export function tokenizeDocuments(docs: readonly string[], tokenizer: Tokenizer = byteTokenizer): Uint16Array {
  // Encode each document once, then copy into one buffer sized exactly (no growing arrays).
  const parts = docs.map((d) => tokenizer.encode(d));
  const total = parts.reduce((sum, p) => sum + p.length + 2, 0);
  const out = new Uint16Array(total);
  let at = 0;
  for (const p of parts) {
    out[at++] = tokenizer.bos;
    out.set(p, at);
    at += p.length;
    out[at++] = tokenizer.eos;
  }
  return out;
}
