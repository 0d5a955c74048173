/**
 * Readers for the user's own data: plain text files, JSON Lines, and llm.c / modded-nanogpt `.bin`
 * token shards (a 256 x int32 header, then uint16 tokens), plus `prepareShards`, the library side of
 * `osp data prepare`. Every problem with a file is a DataError that names the file (and the line, for
 * JSONL) and says what was expected and what was found.
 *
 * Shard header (256 little-endian int32, 1024 bytes), llm.c's layout with osp-lab's tokenizer record in
 * slots llm.c leaves at zero (its readers, and modded-nanogpt's, look at slots 0-2 only):
 *
 *   slot 0   magic 20240520
 *   slot 1   version 1 (uint16 tokens)
 *   slot 2   token count
 *   slot 3   tokenizer kind: 0 none recorded, 1 bytes, 2 gpt2, 3 a tokenizer.json file
 *   slot 4   tokenizer fingerprint (uint32 stored in the int32 slot; Tokenizer.fingerprint, never 0 when recorded)
 *   slot 5   tokenizer vocab size (every id of the shard is below it)
 *   6..255   0
 *
 * Slots 3-5 all zero (llm.c's own shards, osp-lab shards written before tokenizers were recorded) means
 * no tokenizer is recorded: such shards are accepted by any tokenizer, their ids range-checked only.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ConfigError, DataError } from '../errors.ts';
import { splitDocuments, type Document } from './brown.ts';
import {
  byteTokenizer,
  describeTokenizer,
  formatFingerprint,
  MAX_VOCAB_SIZE,
  tokenizeDocuments,
  type Tokenizer,
  type TokenizerKind,
} from './tokenizer.ts';

/** Reads a file's bytes; turns the usual fs failures into DataErrors naming the file. */
function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(path, 'file not found');
    if (code === 'EISDIR') throw new DataError(path, 'expected a file, found a directory');
    if (code === 'EACCES') throw new DataError(path, 'permission denied');
    throw new DataError(path, `cannot read the file (${code ?? String(e)})`);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 strictly: a corrupt or non-UTF-8 file must not become silent U+FFFD noise in training data. */
export function decodeUtf8(path: string, bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const where = at < 0 ? '' : ` at byte ${at} (0x${bytes[at]!.toString(16).padStart(2, '0')})`;
    throw new DataError(path, `expected UTF-8 text, found an invalid byte sequence${where}; re-encode the file as UTF-8`);
  }
}

/**
 * Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or -1 if all is valid. Only used to locate the error.
 */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let n: number; // continuation bytes
    let lo = 0x80;
    let hi = 0xbf; // allowed range of the first continuation byte
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0; // overlong
      if (c === 0xed) hi = 0x9f; // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90; // overlong
      if (c === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return i;
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      if (x === undefined || x < (k === 1 ? lo : 0x80) || x > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/**
 * Reads a UTF-8 text file as one document (id = the path as given, which decides its split side).
 * Throws DataError for a missing, empty (or whitespace-only) or non-UTF-8 file.
 *
 * @example
 *   readTextFile('data/shakespeare.txt'); // [{ id: 'data/shakespeare.txt', text: 'First Citizen: ...' }]
 */
export function readTextFile(path: string): Document[] {
  const bytes = readBytes(path);
  if (bytes.length === 0) throw new DataError(path, 'file is empty; expected UTF-8 text');
  const text = decodeUtf8(path, bytes);
  if (text.trim() === '') {
    throw new DataError(path, `file is empty: expected text, found only ${bytes.length} bytes of whitespace`);
  }
  return [{ id: path, text }];
}

/**
 * Reads JSON Lines: one JSON object per line whose `field` (default 'text') is a string; each line is
 * one document with id `${path}:${line}` (1-based). Blank lines are skipped. A line that is not JSON,
 * not an object, or lacks a string `field` is a DataError naming the file and the line.
 *
 * @example
 *   readJsonl('data/stories.jsonl');            // one Document per line's "text"
 *   readJsonl('data/pile.jsonl', 'content');    // a different field
 */
export function readJsonl(path: string, field = 'text'): Document[] {
  const bytes = readBytes(path);
  if (bytes.length === 0) throw new DataError(path, 'file is empty; expected JSON Lines');
  const lines = decodeUtf8(path, bytes).split('\n');
  const docs: Document[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim(); // also drops the '\r' of CRLF files
    if (line === '') continue;
    const where = `line ${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (e) {
      throw new DataError(path, `${where}: expected a JSON object, found invalid JSON (${(e as Error).message})`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      const kind = record === null ? 'null' : Array.isArray(record) ? 'an array' : `a ${typeof record}`;
      throw new DataError(path, `${where}: expected a JSON object with a string "${field}" field, found ${kind}`);
    }
    const value = (record as Record<string, unknown>)[field];
    if (typeof value !== 'string') {
      const found =
        value === undefined
          ? `no "${field}" field (keys: ${Object.keys(record).join(', ') || 'none'})`
          : `a ${value === null ? 'null' : typeof value}`;
      throw new DataError(path, `${where}: expected a string "${field}" field, found ${found}`);
    }
    docs.push({ id: `${path}:${i + 1}`, text: value });
  }
  if (docs.length === 0) {
    throw new DataError(path, `no documents: expected JSON lines with a "${field}" field, found only blank lines`);
  }
  return docs;
}

/** Magic number of llm.c token shards (the date the format was introduced). */
export const SHARD_MAGIC = 20240520;
/** Shard format version with uint16 tokens (version 2, uint32 tokens for Llama 3 vocabularies, is not read). */
export const SHARD_VERSION = 1;
/** The header: 256 little-endian int32 = 1024 bytes. */
export const SHARD_HEADER_BYTES = 1024;
const MAX_SHARD_TOKENS = 0x7fffffff; // the count is an int32

/** Header slots of osp-lab's tokenizer record (int32 indices; see the file comment). */
export const SHARD_SLOT_TOKENIZER_KIND = 3;
export const SHARD_SLOT_TOKENIZER_FINGERPRINT = 4;
export const SHARD_SLOT_TOKENIZER_VOCAB = 5;

/** Codes of the tokenizer kinds in header slot 3 (0 = no tokenizer recorded). */
export const SHARD_TOKENIZER_KIND_CODES: Readonly<Record<TokenizerKind, number>> = { bytes: 1, gpt2: 2, 'tokenizer.json': 3 };

/** The tokenizer a shard records: the tokenizer's kind, fingerprint and vocab size. */
export interface ShardTokenizerInfo {
  kind: TokenizerKind;
  fingerprint: number;
  vocabSize: number;
}

/** What a shard records of `tokenizer`. */
export function shardTokenizerInfo(tokenizer: Tokenizer): ShardTokenizerInfo {
  return { kind: tokenizer.kind, fingerprint: tokenizer.fingerprint, vocabSize: tokenizer.vocabSize };
}

/** A recorded tokenizer named for messages: "gpt2 (50257 ids, fingerprint 0x...)". */
export function describeShardTokenizer(info: ShardTokenizerInfo): string {
  const kind = info.kind === 'tokenizer.json' ? 'a tokenizer.json file' : `'${info.kind}'`;
  return `${kind} (${info.vocabSize} ids, fingerprint ${formatFingerprint(info.fingerprint)})`;
}

/**
 * Writes tokens as an llm.c shard: header [magic 20240520, version 1, token count, tokenizer kind,
 * fingerprint, vocab size, 0 x 250] (int32 LE; without `tokenizer` the three tokenizer slots are 0, as
 * llm.c writes them), then the tokens as uint16 LE. Atomic: written to a temp file in the same folder,
 * fsynced, renamed, so a crash never leaves a truncated shard under the final name.
 *
 * @example
 *   writeShard('out/data_train_000000.bin', tokenizeDocuments(['hello']), byteTokenizer);
 */
export function writeShard(path: string, tokens: Uint16Array, tokenizer?: Tokenizer | ShardTokenizerInfo): void {
  if (tokens.length > MAX_SHARD_TOKENS) {
    throw new DataError(path, `a shard holds at most ${MAX_SHARD_TOKENS} tokens (int32 count), got ${tokens.length}`);
  }
  const header = Buffer.alloc(SHARD_HEADER_BYTES);
  header.writeInt32LE(SHARD_MAGIC, 0);
  header.writeInt32LE(SHARD_VERSION, 4);
  header.writeInt32LE(tokens.length, 8);
  if (tokenizer !== undefined) {
    const { kind, fingerprint, vocabSize } = tokenizer;
    if (!(Number.isInteger(fingerprint) && fingerprint > 0 && fingerprint <= 0xffffffff)) {
      throw new DataError(path, `tokenizer fingerprint: expected an integer in [1, 2^32), found ${fingerprint}`);
    }
    header.writeInt32LE(SHARD_TOKENIZER_KIND_CODES[kind], 4 * SHARD_SLOT_TOKENIZER_KIND);
    header.writeUInt32LE(fingerprint, 4 * SHARD_SLOT_TOKENIZER_FINGERPRINT);
    header.writeInt32LE(vocabSize, 4 * SHARD_SLOT_TOKENIZER_VOCAB);
  }
  writeAtomic(path, [header, uint16ToLittleEndian(tokens)]);
}

/** Options of readShard. */
export interface ReadShardOptions {
  /** When given, every token id must be below it; the first that is not is reported. */
  vocabSize?: number;
  /** When given, a shard recording another tokenizer is refused (checkShardTokenizer) before ids are checked. */
  tokenizer?: Tokenizer;
}

/** A shard read by readShardFile: its tokens and the tokenizer its header records (undefined: none). */
export interface ShardFile {
  tokens: Uint16Array;
  tokenizer: ShardTokenizerInfo | undefined;
}

/** The tokenizer record of a header (slots 3-5), validated; undefined when all three are 0. */
function headerTokenizer(path: string, bytes: Buffer): ShardTokenizerInfo | undefined {
  const code = bytes.readInt32LE(4 * SHARD_SLOT_TOKENIZER_KIND);
  const fingerprint = bytes.readUInt32LE(4 * SHARD_SLOT_TOKENIZER_FINGERPRINT);
  const vocabSize = bytes.readInt32LE(4 * SHARD_SLOT_TOKENIZER_VOCAB);
  if (code === 0 && fingerprint === 0 && vocabSize === 0) return undefined;
  const kind = (Object.keys(SHARD_TOKENIZER_KIND_CODES) as TokenizerKind[]).find((k) => SHARD_TOKENIZER_KIND_CODES[k] === code);
  if (kind === undefined || fingerprint === 0 || !(vocabSize >= 1 && vocabSize <= MAX_VOCAB_SIZE)) {
    throw new DataError(
      path,
      `header slots 3-5 (osp-lab's tokenizer record: kind, fingerprint, vocab size) hold ${code}, ${fingerprint}, ${vocabSize}: ` +
        `expected all 0 (no tokenizer recorded) or a kind in 1-3, a non-zero fingerprint and a vocab size in [1, ${MAX_VOCAB_SIZE}]`,
    );
  }
  return { kind, fingerprint, vocabSize };
}

/**
 * Reads an llm.c token shard with strict validation: the header must be complete, the magic 20240520,
 * the version 1, and the token count must agree with the file size; the tokenizer record (slots 3-5)
 * must be empty or well-formed (with `tokenizer`, record that tokenizer or none: checkShardTokenizer), and
 * when present every id must be below its vocab size; with `vocabSize`, every id must be below that too
 * (the format itself allows any uint16).
 *
 * @example
 *   const { tokens, tokenizer } = readShardFile('out/data_val_000000.bin', { vocabSize: 258 });
 */
export function readShardFile(path: string, opts: ReadShardOptions = {}): ShardFile {
  const { vocabSize } = opts;
  if (vocabSize !== undefined && !(Number.isInteger(vocabSize) && vocabSize >= 1)) {
    throw new ConfigError('vocabSize', `expected a positive integer, found ${vocabSize}`);
  }
  const bytes = readBytes(path);
  if (bytes.length < SHARD_HEADER_BYTES) {
    throw new DataError(
      path,
      `expected an llm.c token shard of at least ${SHARD_HEADER_BYTES} bytes (the header), found ${bytes.length} bytes`,
    );
  }
  const magic = bytes.readInt32LE(0);
  if (magic !== SHARD_MAGIC) {
    throw new DataError(path, `bad magic number: expected ${SHARD_MAGIC} (llm.c token shard), found ${magic}`);
  }
  const version = bytes.readInt32LE(4);
  if (version !== SHARD_VERSION) {
    const hint = version === 2 ? ' (version 2 holds uint32 tokens, which osp-lab does not read)' : '';
    throw new DataError(path, `unsupported shard version: expected ${SHARD_VERSION}, found ${version}${hint}`);
  }
  const count = bytes.readInt32LE(8);
  const expectedBytes = SHARD_HEADER_BYTES + 2 * count;
  if (count < 0 || bytes.length !== expectedBytes) {
    throw new DataError(
      path,
      `header says ${count} tokens, so the file should be ${expectedBytes} bytes, but it is ${bytes.length} bytes ` +
        `(${Math.floor((bytes.length - SHARD_HEADER_BYTES) / 2)} tokens); the shard is truncated or corrupt`,
    );
  }
  const tokenizer = headerTokenizer(path, bytes);
  if (opts.tokenizer) checkShardTokenizer(opts.tokenizer, tokenizer, path);
  const tokens = uint16FromLittleEndian(bytes.subarray(SHARD_HEADER_BYTES), count);
  if (tokenizer !== undefined) {
    checkIds(path, tokens, tokenizer.vocabSize, `the recorded tokenizer's vocab size ${tokenizer.vocabSize}`);
  }
  if (vocabSize !== undefined) checkIds(path, tokens, vocabSize, `vocabSize ${vocabSize}`);
  return { tokens, tokenizer };
}

/** The first id of `tokens` at or above `limit` is a DataError naming the file, the id and its position. */
function checkIds(path: string, tokens: Uint16Array, limit: number, what: string): void {
  if (limit > 0xffff) return;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i]! >= limit) {
      throw new DataError(path, `token ${tokens[i]} at position ${i} is outside the vocabulary: expected ids below ${what}`);
    }
  }
}

/**
 * The tokens of an llm.c token shard (readShardFile without the tokenizer record).
 *
 * @example
 *   const tokens = readShard('out/data_val_000000.bin', { vocabSize: 258 });
 */
export function readShard(path: string, opts: ReadShardOptions = {}): Uint16Array {
  return readShardFile(path, opts).tokens;
}

/**
 * Refuses a shard made with another tokenizer than `tokenizer` (a different fingerprint): its ids would
 * mean other text. A DataError names the shard file and both tokenizers. A shard with no recorded
 * tokenizer (`shard` undefined: llm.c's shards, osp-lab's from before the record) is accepted; range-check
 * its ids against tokenizer.vocabSize (readShardFile's vocabSize) instead.
 *
 * @example
 *   const { tokens, tokenizer } = readShardFile(path);
 *   checkShardTokenizer(loadTokenizer('gpt2'), tokenizer, path);
 */
export function checkShardTokenizer(tokenizer: Tokenizer, shard: ShardTokenizerInfo | undefined, path: string): void {
  if (shard === undefined || shard.fingerprint === tokenizer.fingerprint) return;
  throw new DataError(
    path,
    `made with tokenizer ${describeShardTokenizer(shard)}, but the tokenizer in use is ${describeTokenizer(tokenizer)}: ` +
      `its ids would be read as other text; prepare the data again with --tokenizer ${tokenizer.spec}, or use the tokenizer the shards were made with`,
  );
}

// Typed arrays use the host's byte order; shards are little-endian. Every platform Node runs on in
// practice is little-endian, where the bytes are copied as they are; the swap keeps big-endian hosts right.
const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function uint16ToLittleEndian(tokens: Uint16Array): Uint8Array {
  if (hostIsLittleEndian) return new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  const out = new Uint8Array(tokens.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < tokens.length; i++) view.setUint16(2 * i, tokens[i]!, true);
  return out;
}

function uint16FromLittleEndian(bytes: Uint8Array, count: number): Uint16Array {
  // Copy into a fresh buffer: the Buffer from readFileSync may sit at an odd offset of a shared pool.
  const out = new Uint16Array(count);
  if (hostIsLittleEndian) {
    new Uint8Array(out.buffer).set(bytes.subarray(0, 2 * count));
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true);
  }
  return out;
}

/** Writes `parts` to `path` atomically: temp file in the same folder, fsync, rename over the target. */
function writeAtomic(path: string, parts: readonly Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const part of parts) {
      // writeSync may write less than asked for large buffers; loop until all bytes are out.
      for (let off = 0; off < part.length;) off += writeSync(fd, part, off, part.length - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(path, `cannot write the file (${code ?? String(e)})`);
  }
}

/** Options of prepareShards. */
export interface PrepareOptions {
  /** Tokens per shard file (the last shard of each split may be shorter). Default 100_000_000 (llm.c). */
  shardTokens?: number;
  /** Expected fraction of documents that go to the val split. Default 0.05. */
  valFraction?: number;
  /** Seed of the document split. Default 0. */
  seed?: number;
  /** File name prefix: `${prefix}_val_000000.bin`, `${prefix}_train_000000.bin`, ... Default 'data'. */
  prefix?: string;
  /** Delete this prefix's shards already in outDir first (otherwise they are an error). Default false. */
  overwrite?: boolean;
  /** Validation inputs: when given, every document of `inputs` is training data and these are val. */
  val?: readonly string[];
  /** Tokenizer of the documents, recorded in every shard's header. Default: the byte tokenizer. */
  tokenizer?: Tokenizer;
  /** Notices (e.g. that a single document was split by bytes). */
  log?: (line: string) => void;
}

/**
 * Splits one document into train and val by position: the last `valFraction` of its text (cut
 * between characters, never inside one) is val. For a single input file, where there is no second
 * document to hold out.
 */
export function splitOneDocument(doc: Document, valFraction: number): { train: Document[]; val: Document[] } {
  const chars = [...doc.text];
  const cut = Math.round(chars.length * (1 - valFraction));
  if (cut < 1 || cut >= chars.length) {
    throw new DataError(doc.id, `too short to split into train and val (${chars.length} characters); give a separate validation file`);
  }
  return {
    train: [{ id: `${doc.id}#train`, text: chars.slice(0, cut).join('') }],
    val: [{ id: `${doc.id}#val`, text: chars.slice(cut).join('') }],
  };
}

/** One shard written by prepareShards. */
export interface ShardInfo {
  path: string;
  split: 'train' | 'val';
  tokens: number;
}

const READERS: Record<string, (path: string) => Document[]> = {
  '.txt': readTextFile,
  '.jsonl': (path) => readJsonl(path),
};

/** Reads input files as documents, choosing the reader by extension (.txt: one document; .jsonl: one a line). */
export function readDocuments(inputs: readonly string[]): Document[] {
  return inputs.flatMap((path) => {
    const ext = extname(path).toLowerCase();
    const reader = READERS[ext];
    if (!reader) {
      throw new DataError(path, `unsupported file type '${ext || '(no extension)'}'; supported: ${Object.keys(READERS).join(', ')}`);
    }
    return reader(path);
  });
}

/**
 * Tokenizes text inputs (.txt / .jsonl) with `opts.tokenizer` (default bytes; document boundaries as
 * tokenizeDocuments: BOS + tokens + EOS, or one <|endoftext|> before each document when BOS = EOS),
 * splits them by document into val and train, and writes llm.c shards of `shardTokens` tokens that
 * record the tokenizer in their header (kind, fingerprint, vocab size): the val shards
 * first (`${prefix}_val_000000.bin`), then `${prefix}_train_000000.bin`, `..._000001.bin`, ... A document
 * may continue from one shard into the next, as in llm.c; readers concatenate shards in name order.
 * Returns the written files with their token counts. Refuses to mix with shards of an earlier run.
 *
 * @example
 *   prepareShards(['a.txt', 'b.jsonl'], 'out', { shardTokens: 1_000_000, prefix: 'mydata' });
 *   prepareShards(['a.txt'], 'out', { tokenizer: loadTokenizer('gpt2') });
 */
export function prepareShards(inputs: readonly string[], outDir: string, opts: PrepareOptions = {}): ShardInfo[] {
  const { shardTokens = 100_000_000, valFraction = 0.05, seed = 0, prefix = 'data', overwrite = false, tokenizer = byteTokenizer } = opts;
  if (!(Number.isInteger(shardTokens) && shardTokens >= 1 && shardTokens <= MAX_SHARD_TOKENS)) {
    throw new ConfigError('shardTokens', `expected an integer in [1, ${MAX_SHARD_TOKENS}], found ${shardTokens}`);
  }
  if (!/^[\w.-]+$/.test(prefix)) {
    throw new ConfigError('prefix', `expected letters, digits, '_', '-' or '.', found ${JSON.stringify(prefix)}`);
  }
  if (inputs.length === 0) throw new ConfigError('inputs', 'expected at least one .txt or .jsonl file, found none');

  const docs = readDocuments(inputs);
  let split: { train: Document[]; val: Document[] };
  if (opts.val?.length) split = { train: docs, val: readDocuments(opts.val) };
  else if (docs.length === 1) {
    if (!(Number.isFinite(valFraction) && valFraction > 0 && valFraction < 1)) {
      throw new ConfigError('valFraction', `expected a number strictly between 0 and 1, found ${valFraction}`);
    }
    split = splitOneDocument(docs[0]!, valFraction);
    opts.log?.(
      `one document: its last ${(valFraction * 100).toFixed(1)}% (by characters) is the validation split; ` +
        'give --val FILE for a separate one',
    );
  } else split = splitDocuments(docs, { valFraction, seed, source: inputs.join(', ') });
  const { train, val } = split;

  mkdirSync(outDir, { recursive: true });
  const ours = new RegExp(`^${prefix.replace(/\./g, '\\.')}_(train|val)_\\d{6}\\.bin$`);
  const stale = readdirSync(outDir).filter((n) => ours.test(n));
  if (stale.length > 0 && !overwrite) {
    const listed = stale.slice(0, 3).join(', ') + (stale.length > 3 ? ', ...' : '');
    throw new DataError(
      outDir,
      `already holds shards with prefix '${prefix}' (${listed}); ` +
        'a reader would mix them with the new ones: remove them, choose another prefix, or pass --overwrite',
    );
  }
  for (const name of stale) rmSync(join(outDir, name));

  const written: ShardInfo[] = [];
  for (const [split, splitDocs] of [
    ['val', val],
    ['train', train],
  ] as const) {
    const tokens = tokenizeDocuments(
      splitDocs.map((d) => d.text),
      tokenizer,
    );
    for (let start = 0, index = 0; start < tokens.length; start += shardTokens, index++) {
      const path = join(outDir, `${prefix}_${split}_${String(index).padStart(6, '0')}.bin`);
      const shard = tokens.subarray(start, Math.min(start + shardTokens, tokens.length));
      writeShard(path, shard, tokenizer);
      written.push({ path, split, tokens: shard.length });
    }
  }
  return written;
}
