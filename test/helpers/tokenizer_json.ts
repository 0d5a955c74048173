/** Pieces of hand-built Hugging Face tokenizer.json files for tokenizer tests. */
import { bytesToUnicode } from '../../src/data/tokenizer.ts';
import { rng } from './prng.ts';

/** An `added_tokens` entry of a special token, as Hugging Face writes it. */
export function specialToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** GPT-2's 256 byte characters under ids 0..255 in a seeded shuffle (so that an id is not its byte). */
export function shuffledByteVocab(seed: number): Record<string, number> {
  const chars = bytesToUnicode();
  const order = chars.map((_, i) => i);
  const next = rng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = order[i]!));
  return vocab;
}
