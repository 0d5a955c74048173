/**
 * A text file as the token stream osp-lab evaluates, and that stream's evaluation windows (used by
 * `osp eval`, llama.cpp's evaluation and the calibration windows of quantization).
 *
 * The token stream is BOS followed by the file's tokens (with the byte tokenizer, the default: its UTF-8
 * bytes, exactly as stored, a byte-order mark included). It is cut into windows of at most
 * maxSeqLen + 1 tokens that overlap by one token, so every token is predicted exactly once, from the
 * context of its own window (the first window starts at BOS).
 */
import { readFileOr } from '../io/read.ts';
import { DataError } from '../errors.ts';
import { ByteTokenizer, byteTokenizer, type Tokenizer } from './tokenizer.ts';
import { decodeUtf8 } from './sources.ts';

/** A UTF-8 text file, read and checked once: its bytes as stored and its text. */
export interface TextFile {
  path: string;
  bytes: Uint8Array;
  text: string;
}

/** Reads and checks a text file (clear errors for a missing, empty or non-UTF-8 file), before any model is loaded. */
export function readTextFile(path: string): TextFile {
  const bytes = readFileOr(path, (msg) => new DataError(path, `text file: ${msg}`));
  if (bytes.length === 0) throw new DataError(path, 'the text file is empty');
  const text = decodeUtf8(path, bytes); // the same check as `osp data prepare`: bytes of another encoding are not text
  return { path, bytes, text };
}

/** A text file as tokens of `tokenizer` (default bytes), BOS first. */
export function textTokens(file: TextFile, tokenizer: Tokenizer = byteTokenizer): Uint16Array {
  // The byte tokenizer takes the file's bytes as they are (decoding would drop a byte-order mark).
  const ids = tokenizer instanceof ByteTokenizer ? file.bytes : tokenizer.encode(file.text);
  const tokens = new Uint16Array(ids.length + 1);
  tokens[0] = tokenizer.bos;
  tokens.set(ids, 1);
  return tokens;
}

/**
 * Reads a UTF-8 text file as tokens of `tokenizer` (default bytes), BOS first; clear errors for a missing,
 * empty or non-UTF-8 file.
 *
 * @example
 *   readTextTokens('val.txt');                          // [256, ...bytes of the file]
 *   readTextTokens('val.txt', loadTokenizer('gpt2'));   // [50256, ...GPT-2 ids of its text]
 */
export function readTextTokens(path: string, tokenizer: Tokenizer = byteTokenizer): Uint16Array {
  return textTokens(readTextFile(path), tokenizer);
}

/**
 * The evaluation windows of a token stream: at most maxSeqLen + 1 tokens each, overlapping by one
 * token, so that every token after the first is predicted exactly once. One batch of size 1 per window.
 *
 * With `bos` (a run trained with `batch.bos`), every window instead starts with that token and predicts
 * the next at most maxSeqLen tokens of the stream (a leading BOS of the stream itself is skipped), so
 * every token of the text is predicted exactly once, each window shaped like the run's training rows.
 */
export function textWindows(
  tokens: Uint16Array,
  maxSeqLen: number,
  bos?: number,
): { inputs: Int32Array; targets: Int32Array; batchSize: number; seqLen: number }[] {
  const out = [];
  if (bos !== undefined) {
    const s = tokens[0] === bos ? tokens.subarray(1) : tokens;
    for (let start = 0; start < s.length; start += maxSeqLen) {
      const targets = Int32Array.from(s.subarray(start, Math.min(start + maxSeqLen, s.length)));
      const inputs = new Int32Array(targets.length);
      inputs[0] = bos;
      inputs.set(targets.subarray(0, targets.length - 1), 1);
      out.push({ inputs, targets, batchSize: 1, seqLen: targets.length });
    }
    return out;
  }
  for (let start = 0; start + 1 < tokens.length; start += maxSeqLen) {
    const window = Int32Array.from(tokens.subarray(start, Math.min(start + maxSeqLen + 1, tokens.length)));
    const T = window.length - 1;
    out.push({ inputs: window.subarray(0, T), targets: window.subarray(1), batchSize: 1, seqLen: T });
  }
  return out;
}
