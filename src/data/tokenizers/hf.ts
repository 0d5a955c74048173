/**
 * Hugging Face tokenizers: a tokenizer.json run by @huggingface/tokenizers (Tokenizers.js, a maintained
 * pure-JS implementation of Hugging Face's tokenizers). osp-lab adds what its data pipeline needs around
 * it: specials are never matched inside text (a document that contains the text "<|endoftext|>" is
 * encoded as that text, as GPT-2's own encoder and tiktoken's encode_ordinary do), the post-processor is
 * not applied (tokenizeDocuments places BOS/EOS), decoding drops specials and never "cleans up" spaces
 * (so decode(encode(x)) === x), ids must fit uint16 shards, and the vocabulary is mapped to Hugging Face
 * and GGUF exports.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { DataError, OspError } from '../../errors.ts';
import { readFileOr } from '../../io/read.ts';
import { bytesToUnicode } from './bytes.ts';
import { parseMerges, tokenizerFingerprint, type AddedTokenJson, type TokenizerJson } from './fingerprint.ts';
import { bosTemplate, hfTokenizerFiles } from './hf_files.ts';
import { GGUF_TOKEN_TYPE, MAX_VOCAB_SIZE, type GgufVocab, type HfFilesOptions, type Tokenizer, type TokenizerKind } from './tokenizer.ts';

/** How an HfTokenizer was chosen and which ids start and end documents. */
export interface HfTokenizerOptions {
  spec: string;
  kind: TokenizerKind;
  /** The file the tokenizer came from, named in error messages. */
  file: string;
  bos: number;
  eos: number;
}

/** Special tokens tried, in order, when no tokenizer_config.json names BOS / EOS. */
export const BOS_CANDIDATES = ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '<|endoftext|>'] as const;
export const EOS_CANDIDATES = ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>'] as const;

/**
 * The pre-tokenizer regexes llama.cpp implements, as tokenizer.json files spell them (llama.cpp's
 * llama-vocab.cpp quotes them as the "original regex from tokenizer.json" of its pre-tokenizer types).
 */
const LLAMA3_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Token strings by id from the model's vocabulary and the added tokens; holes are undefined. */
function idTable(json: TokenizerJson, file: string): (string | undefined)[] {
  const table: (string | undefined)[] = [];
  const put = (id: unknown, token: string, where: string) => {
    if (!(Number.isInteger(id) && (id as number) >= 0)) {
      throw new DataError(file, `${where}: expected a non-negative integer id for ${JSON.stringify(token)}, found ${JSON.stringify(id)}`);
    }
    const i = id as number;
    if (i >= MAX_VOCAB_SIZE) {
      throw new DataError(
        file,
        `${where}: token ${JSON.stringify(token)} has id ${i}; osp-lab's token shards store uint16 ids, so ` +
          `vocabularies of at most ${MAX_VOCAB_SIZE} tokens (ids below ${MAX_VOCAB_SIZE}) are supported`,
      );
    }
    const before = table[i];
    if (before !== undefined && before !== token) {
      throw new DataError(file, `${where}: id ${i} is both ${JSON.stringify(before)} and ${JSON.stringify(token)}`);
    }
    table[i] = token;
  };
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [[piece, score], ...], id = position.
    vocab.forEach((entry, i) => {
      const piece = Array.isArray(entry) ? entry[0] : entry;
      if (typeof piece !== 'string')
        throw new DataError(file, `model.vocab[${i}]: expected [piece, score], found ${JSON.stringify(entry)}`);
      put(i, piece, 'model.vocab');
    });
  } else if (isObject(vocab)) {
    for (const [token, id] of Object.entries(vocab)) put(id, token, 'model.vocab');
  } else {
    throw new DataError(
      file,
      `model.vocab: expected an object of token ids (or a Unigram list), found ${JSON.stringify(vocab)?.slice(0, 60)}`,
    );
  }
  for (const t of json.added_tokens ?? []) put(t.id, t.content, 'added_tokens');
  return table;
}

/** Validates the shape osp-lab reads (the library checks the rest when it builds the tokenizer). */
function checkJson(json: unknown, file: string): TokenizerJson {
  if (!isObject(json) || !isObject(json.model)) {
    throw new DataError(file, 'expected a Hugging Face tokenizer.json: a JSON object with a "model" section');
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new DataError(file, 'added_tokens: expected a list');
  added.forEach((t, i) => {
    if (!isObject(t) || typeof t.content !== 'string') {
      throw new DataError(file, `added_tokens[${i}]: expected {"id": ..., "content": "..."}, found ${JSON.stringify(t)}`);
    }
  });
  const dropout = json.model.dropout;
  if (typeof dropout === 'number' && dropout > 0) {
    throw new DataError(file, `model.dropout: expected null or 0 (BPE dropout makes tokenization random), found ${dropout}`);
  }
  return json as TokenizerJson;
}

/** True when a ByteLevel pre-tokenizer appears anywhere in the (possibly Sequence) pre-tokenizer. */
function hasByteLevel(pre: unknown): boolean {
  if (!isObject(pre)) return false;
  if (pre.type === 'ByteLevel') return true;
  return Array.isArray(pre.pretokenizers) && pre.pretokenizers.some(hasByteLevel);
}

/**
 * A tokenizer.json run by @huggingface/tokenizers.
 *
 * @example
 *   const tok = loadTokenizerFile('models/my-bpe/tokenizer.json');
 *   tok.decode(tok.encode('Hello world')); // 'Hello world'
 */
export class HfTokenizer implements Tokenizer {
  readonly spec: string;
  readonly kind: TokenizerKind;
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly fingerprint: number;
  private readonly file: string;
  private readonly json: TokenizerJson;
  private readonly tokens: (string | undefined)[];
  /** Encodes text: built without the special added tokens, so their text is ordinary text. */
  private readonly encoder: HfLibTokenizer;
  /** Decodes ids: the full tokenizer, so specials are known (and skipped). */
  private readonly decoder: HfLibTokenizer;
  /** byteLength's table, built on first use. */
  private lengths?: Uint16Array;

  constructor(json: unknown, opts: HfTokenizerOptions) {
    const file = opts.file;
    this.file = file;
    this.json = checkJson(json, file);
    this.spec = opts.spec;
    this.kind = opts.kind;
    this.tokens = idTable(this.json, file);
    this.vocabSize = this.tokens.length;
    for (const [name, id] of [
      ['BOS', opts.bos],
      ['EOS', opts.eos],
    ] as const) {
      if (!(Number.isInteger(id) && id >= 0 && this.tokens[id] !== undefined)) {
        throw new DataError(file, `${name} id ${id} is not a token of this tokenizer (${this.vocabSize} ids)`);
      }
    }
    this.bos = opts.bos;
    this.eos = opts.eos;
    const model = this.json.model;
    if (hasByteLevel(this.json.pre_tokenizer) && (model.type ?? 'BPE') === 'BPE' && !model.byte_fallback && model.unk_token == null) {
      // Tokenizers.js silently drops a piece the vocabulary lacks (no unk token, no byte fallback).
      const have = new Set(this.tokens);
      const missing = bytesToUnicode().filter((c) => !have.has(c));
      if (missing.length > 0) {
        throw new DataError(
          file,
          `byte-level vocabulary lacks ${missing.length} of the 256 byte characters (first: ${JSON.stringify(missing[0])}) ` +
            'and has no unk_token: text with those bytes could not be encoded',
        );
      }
    }
    this.fingerprint = tokenizerFingerprint(this.json, this.bos, this.eos, file);
    const base = { normalizer: null, pre_tokenizer: null, decoder: null, added_tokens: [], ...this.json, post_processor: null };
    const ordinary = { ...base, added_tokens: (this.json.added_tokens ?? []).filter((t) => !t.special) };
    // Decoding must invert encoding: no clean-up of spaces before punctuation.
    const config = { clean_up_tokenization_spaces: false };
    try {
      this.encoder = new HfLibTokenizer(ordinary, config);
      this.decoder = new HfLibTokenizer(base, config);
    } catch (e) {
      throw new DataError(file, `cannot load this tokenizer.json with @huggingface/tokenizers: ${(e as Error).message}`);
    }
  }

  /** Text to ids; specials' text is ordinary text here. */
  encode(text: string): Uint16Array {
    const { ids } = this.encoder.encode(text, { add_special_tokens: false });
    const out = new Uint16Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === undefined) {
        throw new OspError(
          `tokenizer '${this.spec}': produced a piece outside its vocabulary (unk_token ${JSON.stringify(this.json.model.unk_token)} is not a token)`,
        );
      }
      out[i] = id;
    }
    return out;
  }

  /** Ids to text; special tokens are dropped, spaces are left as they are. */
  decode(ids: ArrayLike<number>): string {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.tokens[id] !== undefined)) {
        throw new RangeError(
          `token id at position ${i}: expected an id of tokenizer '${this.spec}' (0..${this.vocabSize - 1}), found ${id}`,
        );
      }
    }
    if (ids.length === 0) return '';
    return this.decoder.decode(Array.from(ids), { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /**
   * Bytes of text per id, computed once from the vocabulary: a byte-level token's characters are one byte
   * each (GPT-2's byte-to-unicode spelling); a sentencepiece-style piece is its UTF-8 with '▁' as a space,
   * a byte-fallback token `<0xNN>` one byte; special added tokens none.
   */
  byteLength(id: number): number {
    if (!this.lengths) {
      const byteLevel = hasByteLevel(this.json.pre_tokenizer) || hasByteLevel(this.json.decoder);
      const special = new Set((this.json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
      const utf8 = new TextEncoder();
      this.lengths = Uint16Array.from(this.tokens, (t, i) => {
        if (t === undefined || special.has(i) || i === this.bos || i === this.eos) return 0;
        if (byteLevel) return [...t].length;
        if (/^<0x[0-9A-Fa-f]{2}>$/.test(t)) return 1;
        return utf8.encode(t.replace(/\u2581/g, ' ')).length;
      });
    }
    return this.lengths[id] ?? 0;
  }

  /** The token string of an id (e.g. '<|endoftext|>'), or undefined for an id without one. */
  token(id: number): string | undefined {
    return this.tokens[id];
  }

  /** The tokenizer.json this tokenizer runs, with a post-processor that prepends BOS; config and specials map. */
  hfFiles(opts: HfFilesOptions = {}): Map<string, string> {
    const bosToken = this.tokens[this.bos]!;
    return hfTokenizerFiles({ ...this.json, post_processor: bosTemplate(bosToken, this.bos) }, bosToken, this.tokens[this.eos]!, opts);
  }

  /**
   * llama.cpp's 'gpt2' (byte-level BPE) vocabulary: convert_hf_to_gguf's conventions (special added tokens
   * are control tokens, other added tokens user-defined, ids without a token `[PAD<id>]` unused).
   * Throws an OspError naming the file when llama.cpp would tokenize differently (see ggufPre).
   */
  ggufVocab(): GgufVocab {
    const model = this.json.model;
    if ((model.type ?? 'BPE') !== 'BPE' || model.byte_fallback) {
      throw new OspError(
        `${this.file}: GGUF export supports byte-level BPE tokenizers (llama.cpp's 'gpt2' model); this tokenizer is ` +
          `${model.byte_fallback ? 'a BPE with byte fallback (sentencepiece-style)' : `a ${model.type} model`}`,
      );
    }
    const merges = parseMerges(model.merges, this.file);
    const pre = ggufPre(this.json, merges.length, this.file);
    const added = new Map<number, AddedTokenJson>((this.json.added_tokens ?? []).map((t) => [t.id, t]));
    const tokens: string[] = [];
    const tokenTypes: number[] = [];
    for (let id = 0; id < this.vocabSize; id++) {
      const token = this.tokens[id];
      const a = added.get(id);
      tokens.push(token ?? `[PAD${id}]`);
      tokenTypes.push(
        token === undefined
          ? GGUF_TOKEN_TYPE.unused
          : a === undefined
            ? GGUF_TOKEN_TYPE.normal
            : a.special
              ? GGUF_TOKEN_TYPE.control
              : GGUF_TOKEN_TYPE.userDefined,
      );
    }
    const spaced = merges.findIndex(([l, r]) => l.includes(' ') || r.includes(' '));
    if (spaced >= 0) {
      throw new OspError(
        `${this.file}: merge ${spaced} (${JSON.stringify(merges[spaced])}) has a space in a token, which GGUF's "left right" merges cannot hold`,
      );
    }
    return {
      model: 'gpt2',
      pre,
      tokens,
      tokenTypes,
      merges: merges.map(([l, r]) => `${l} ${r}`),
      bos: this.bos,
      eos: this.eos,
      addBos: true,
    };
  }
}

/**
 * llama.cpp's pre-tokenizer name (`tokenizer.ggml.pre`) for a byte-level BPE tokenizer.json, or an
 * OspError naming the file and what it found:
 * - a ByteLevel pre-tokenizer with its own (GPT-2) regex, no normalizer: 'gpt-2';
 * - Split(Llama 3's regex, Isolated) then ByteLevel without regex, ignore_merges: 'llama-bpe';
 * - Split(Qwen2's regex, Isolated) then ByteLevel without regex, no normalizer: 'qwen2' (llama.cpp does not
 *   normalize, so a file with an NFC normalizer is refused rather than exported to tokenize differently);
 * - no merges at all: every split gives the same tokens, so 'qwen2' as for the byte tokenizer.
 */
export function ggufPre(json: TokenizerJson, mergeCount: number, file: string): string {
  const pre = json.pre_tokenizer;
  const norm = json.normalizer ?? null;
  const ignoreMerges = json.model.ignore_merges ?? false;
  const refuse = (why: string): never => {
    throw new OspError(
      `${file}: no llama.cpp pre-tokenizer reproduces this tokenizer (${why}); GGUF export knows GPT-2's ByteLevel ` +
        "pre-tokenizer ('gpt-2'), Llama 3's and Qwen2's Split regex + ByteLevel ('llama-bpe', 'qwen2')",
    );
  };
  if (!hasByteLevel(pre)) refuse(`pre_tokenizer ${JSON.stringify(pre)?.slice(0, 120)} is not byte-level`);
  if (mergeCount === 0 && norm === null) return 'qwen2';
  let parts: unknown[] = isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [pre];
  if (parts.length === 1 && isObject(parts[0]) && parts[0].type === 'ByteLevel') {
    const b = parts[0];
    if (b.use_regex === false) refuse('ByteLevel without a regex: the whole text is one word');
    if (b.add_prefix_space) refuse('ByteLevel with add_prefix_space');
    if (norm !== null) refuse(`normalizer ${JSON.stringify(norm).slice(0, 80)}`);
    if (ignoreMerges) refuse('model.ignore_merges with the GPT-2 regex');
    return 'gpt-2';
  }
  parts = parts.filter((p) => !(isObject(p) && p.type === 'ByteLevel' && p.use_regex === false && !p.add_prefix_space));
  const split = parts.length === 1 && isObject(parts[0]) && parts[0].type === 'Split' ? parts[0] : undefined;
  const regex = split && isObject(split.pattern) ? split.pattern.Regex : undefined;
  if (!split || split.behavior !== 'Isolated' || split.invert || typeof regex !== 'string') {
    refuse(`pre_tokenizer ${JSON.stringify(pre).slice(0, 160)}`);
  }
  if (regex === LLAMA3_REGEX) {
    if (norm !== null) refuse(`normalizer ${JSON.stringify(norm).slice(0, 80)} with Llama 3's regex`);
    if (!ignoreMerges) refuse("Llama 3's regex without model.ignore_merges (llama.cpp's 'llama-bpe' ignores merges)");
    return 'llama-bpe';
  }
  if (regex === QWEN2_REGEX) {
    // llama.cpp never normalizes: with an NFC normalizer, text not already in NFC would tokenize
    // differently there (measured: 'cafe\u0301' is 2 ids here, 3 in llama.cpp).
    if (norm !== null) {
      refuse(
        `normalizer ${JSON.stringify(norm).slice(0, 80)} with Qwen2's regex (llama.cpp does not normalize, so text not in NFC would tokenize differently)`,
      );
    }
    if (ignoreMerges) refuse("model.ignore_merges with Qwen2's regex");
    return 'qwen2';
  }
  return refuse(`Split regex ${JSON.stringify(regex)} is not one llama.cpp implements under a name this exporter knows`);
}

/** Reads and parses a JSON file; DataErrors name the file. */
function readJson(path: string, what: string): unknown {
  const bytes = readFileOr(path, (msg) => new DataError(path, `${what}: ${msg}`));
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new DataError(path, `${what}: expected JSON, found invalid JSON (${(e as Error).message})`);
  }
}

/** The id of a token's text: an added token first, else the model's vocabulary. */
function idOf(json: TokenizerJson, content: string): number | undefined {
  const added = (json.added_tokens ?? []).find((t) => t.content === content);
  if (added) return added.id;
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) {
    const i = vocab.findIndex((e) => (Array.isArray(e) ? e[0] : e) === content);
    return i < 0 ? undefined : i;
  }
  if (isObject(vocab) && Object.hasOwn(vocab, content)) return vocab[content] as number;
  return undefined;
}

/** A token named by tokenizer_config.json: a string, or an AddedToken object {"content": ...}; null = unset. */
function configToken(config: Json, key: string, path: string): string | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  throw new DataError(path, `${key}: expected a token string or {"content": "..."}, found ${JSON.stringify(v)}`);
}

/**
 * BOS and EOS of a tokenizer.json: bos_token / eos_token of a tokenizer_config.json in the same folder
 * when it names them, else the first of BOS_CANDIDATES / EOS_CANDIDATES the file has (added tokens first,
 * then the vocabulary). A DataError names the files and what was looked for when none is found.
 */
export function findSpecials(json: TokenizerJson, file: string, configPath: string | undefined): { bos: number; eos: number } {
  const config = configPath === undefined ? undefined : readJson(configPath, 'tokenizer config');
  if (config !== undefined && !isObject(config)) throw new DataError(configPath!, 'expected a JSON object (tokenizer_config.json)');
  const pick = (key: 'bos_token' | 'eos_token', candidates: readonly string[]): number => {
    const named = config && configToken(config, key, configPath!);
    if (named !== undefined) {
      const id = idOf(json, named);
      if (id === undefined) throw new DataError(configPath!, `${key} ${JSON.stringify(named)} is not a token of ${file}`);
      return id;
    }
    const specials = (json.added_tokens ?? []).filter((t) => t.special);
    for (const c of candidates) {
      const t = specials.find((s) => s.content === c);
      if (t) return t.id;
    }
    for (const c of candidates) {
      const id = idOf(json, c);
      if (id !== undefined) return id;
    }
    const where = configPath === undefined ? 'no tokenizer_config.json next to it' : `${configPath} has no ${key}`;
    throw new DataError(
      file,
      `cannot tell the ${key === 'bos_token' ? 'BOS' : 'EOS'} token: ${where}, and the file has none of ${candidates.join(', ')}; ` +
        `add a tokenizer_config.json with "${key}" next to it`,
    );
  };
  return { bos: pick('bos_token', BOS_CANDIDATES), eos: pick('eos_token', EOS_CANDIDATES) };
}

/**
 * Loads a Hugging Face tokenizer.json (or the tokenizer.json inside a folder); BOS/EOS as findSpecials
 * says. The spec is the file's absolute path.
 *
 * @example
 *   loadTokenizerFile('hf/gpt2/tokenizer.json').vocabSize; // 50257
 */
export function loadTokenizerFile(path: string): HfTokenizer {
  let file = resolve(path);
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'tokenizer.json');
  const json = checkJson(readJson(file, 'tokenizer file'), file);
  const configPath = join(dirname(file), 'tokenizer_config.json');
  const { bos, eos } = findSpecials(json, file, existsSync(configPath) ? configPath : undefined);
  return new HfTokenizer(json, { spec: file, kind: 'tokenizer.json', file, bos, eos });
}
