/** Document boundaries in a token stream: the one rule every data path (text, jsonl, Brown, shards) follows. */
import { byteTokenizer } from './bytes.ts';
import type { Tokenizer } from './tokenizer.ts';

/**
 * Tokenizes documents into one stream, marking where each document starts so the model learns it:
 * - bos !== eos (bytes, Llama-style files): BOS + tokens + EOS per document;
 * - bos === eos (GPT-2's <|endoftext|>): one <|endoftext|> before each document, llm.c's convention
 *   (the token both ends the previous document and starts the next; the stream starts with it).
 *
 * @example
 *   tokenizeDocuments(['hi', 'yo']);               // [256, 104, 105, 257, 256, 121, 111, 257]
 *   tokenizeDocuments(['hi', 'yo'], loadTokenizer('gpt2')); // [50256, ...'hi', 50256, ...'yo']
 */
export function tokenizeDocuments(docs: readonly string[], tokenizer: Tokenizer = byteTokenizer): Uint16Array {
  // Encode each document once, then copy into one buffer sized exactly (no growing arrays).
  const parts = docs.map((d) => tokenizer.encode(d));
  const separate = tokenizer.bos !== tokenizer.eos;
  const perDoc = separate ? 2 : 1;
  const total = parts.reduce((sum, p) => sum + p.length + perDoc, 0);
  const out = new Uint16Array(total);
  let at = 0;
  for (const p of parts) {
    out[at++] = tokenizer.bos;
    out.set(p, at);
    at += p.length;
    if (separate) out[at++] = tokenizer.eos;
  }
  return out;
}
