/**
 * Exports carry the run's tokenizer (issue 13). A GPT-2 run (trained here, tiny) exported to GGUF f32 runs
 * in llama.cpp (node-llama-cpp's CPU build): llama.cpp's own tokenization of multilingual text equals
 * osp-lab's id for id, its detokenization gives the text back, and its mean next-token loss equals osp
 * eval's; the Hugging Face export carries GPT-2's tokenizer files (they load back as the same tokenizer);
 * a model vocabulary padded above the tokenizer's (50304) is padded with unused tokens in the GGUF; small
 * byte-level BPE tokenizer.json files trained here, under each pre-tokenizer the GGUF export names
 * ('gpt-2', 'qwen2', 'llama-bpe'), tokenize in llama.cpp as in osp-lab. The byte tokenizer's exports are
 * byte for byte what they were before tokenizers were pluggable (hashes of the old writers' output).
 *
 * One thing llama.cpp does differently by design: for the 'gpt-2' pre-tokenizer it turns on
 * clean_up_tokenization_spaces in llama_detokenize (llama-vocab.cpp sets clean_spaces = true for BPE
 * vocabularies and only some pre-tokenizer names, 'qwen2' and 'llama-bpe' among them, turn it off; no GGUF
 * key sets it), so " ?", " !", " .", " ," lose their space, " ' " its spaces and " 's", " 'm", " 're",
 * " 've" their space when llama.cpp turns ids back into text. The ids are exact; the texts here avoid those
 * sequences, and one test pins the clean-up itself (llamaCleanSpaces, a transcription of llama.cpp's).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getLlama, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToUnicode, GPT2_EOT, loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import { readTextTokens } from '../../src/data/text.ts';
import { evaluateCheckpoint } from '../../src/eval/evaluate_run.ts';
import { llamaCppPerplexity } from '../../src/eval/llama_cpp.ts';
import { openModelSource, sourceTokenizer } from '../../src/export/checkpoint.ts';
import { llamaGguf } from '../../src/export/gguf.ts';
import { writeHfCheckpoint } from '../../src/export/hf.ts';
import { exportCheckpoint } from '../../src/export/index.ts';
import { decodeGguf } from '../../src/io/gguf.ts';
import { resolveModelConfig, type ModelConfig } from '../../src/model/config.ts';
import type { Weights } from '../../src/model/fold.ts';
import { paramSpecs } from '../../src/model/transformer.ts';
import { train } from '../../src/train/run.ts';
import { rng } from '../helpers/prng.ts';
import { tempDir, tinyRun } from '../helpers/run.ts';
import { specialToken, shuffledByteVocab } from '../helpers/tokenizer_json.ts';

/**
 * Multilingual text: whitespace runs (spaces, tabs, newlines, CRLF), long numbers, contractions, Greek,
 * Cyrillic, Arabic, Devanagari (vowel signs are marks), CJK, Hangul, emoji with skin tones, ZWJ families,
 * flags and variation selectors. No " ?", " .", " ," or " ' " (see the file comment).
 */
const TEXT = [
  "It's fine, we've seen it: they'll say I'm right and you're wrong, but don't worry. WE'D KNOW.",
  'Numbers 1234567890123 and 3.14159265, phone +49 (0)30 12345678, year 2024-05-20, ½ ² ٣ ५.',
  'Tabs\tand\t\ttabs, spaces   between    words,\n\n\nnewlines and CRLF\r\nline   ',
  '    indented code: const x = a[i] + b?.c || 42;\n\tif (x) { return "s"; }',
  'Ελληνικά κείμενα, русский текст, עברית, العربية (مرحبا بالعالم)',
  'हिन्दी में पाठ: नमस्ते दुनिया',
  '日本語のテキスト、中文文本，한국어 텍스트。',
  'emoji 😀👍🏽 family 👨‍👩‍👧‍👦 couple 👩‍❤️‍👨 flags 🇫🇷🇯🇵 keycap 1️⃣ and ☕️ done',
].join('\n');

/** Short strings for the tokenizer.json files: edge cases of each pre-tokenizer's regex. */
const STRINGS = [
  'the thing and the other thing',
  "I'M LOUD, THEY'RE TOO; it's 'quoted' text",
  '   leading and trailing spaces   ',
  'a  b   c    d\n \n  \t x\r\n\r\ny',
  '12345678901234567890 1,000,000 3.14 ٣٤٥ ५६',
  'café naïve über Straße œuvre, e\u0301 and A\u030a decomposed',
  'हिन्दी में पाठ, 日本語 中文 한국어',
  '👨‍👩‍👧‍👦 🇫🇷 👍🏽 ☕️ 1️⃣',
  'nbsp\u00a0here, zero\u200bwidth, ideographic\u3000space',
];

/**
 * llama.cpp's clean-up of detokenized text (llama_vocab::impl::detokenize with clean_spaces, llama-vocab.cpp):
 * " ?", " !", " .", " ," lose the space; " ' " both spaces; " 's", " 'm", " 're", " 've" the space.
 */
function llamaCleanSpaces(s: string): string {
  let t = s.replace(/ ([?!.,])/g, '$1');
  t = t.replace(/ ' /g, "'");
  return t.replace(/ '(s|m|re|ve)/g, "'$1");
}

let dir = '';
let gpt2Run = '';
let llama: Llama;
const gpt2 = loadTokenizer('gpt2');

/** Documents for training: words of several scripts, numbers and contractions. */
function documents(n: number, seed: number): string[] {
  const words = TEXT.split(/\s+/).filter((w) => w !== '');
  const r = rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: 80 }, () => words[Math.floor(r() * words.length)]).join(' '));
}

function jsonl(name: string, docs: readonly string[]): string {
  const path = join(dir, name);
  writeFileSync(path, docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  return path;
}

/** The runs' model: one layer, width 32, 64-token rows, OSP modules (folded at export). */
const MODEL = { hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 64, norm: 'ssnorm', embedding: 'embproj' };

/** A tiny run on train.jsonl / val.jsonl. */
function run(name: string, extra: Record<string, unknown>): Record<string, unknown> {
  return tinyRun(dir, {
    name,
    steps: 4,
    // wasm: the cpu backend takes ~30 s a step with GPT-2's 50257-row embedding and head, wasm ~1 s.
    backend: 'wasm',
    model: MODEL,
    schedule: { kind: 'constant' },
    data: { source: 'jsonl', train: [join(dir, 'train.jsonl')], val: [join(dir, 'val.jsonl')] },
    batch: { size: 2, seqLen: 64 },
    eval: { every: 0, batches: 1 },
    checkpoint: { every: 0, keep: 1 },
    logging: { every: 1, histogramsEvery: 0, console: 'quiet', tensorboard: false },
    ...extra,
  });
}

beforeAll(async () => {
  dir = tempDir('osp-tokexp-');
  jsonl('train.jsonl', documents(30, 1));
  jsonl('val.jsonl', documents(4, 2));
  writeFileSync(join(dir, 'text.txt'), TEXT);
  gpt2Run = (await train({ config: run('gpt2', { tokenizer: 'gpt2' }), log: () => {} })).runDir;
  llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
}, 120_000);

afterAll(async () => {
  await llama?.dispose();
});

async function withModel<T>(path: string, fn: (m: LlamaModel) => Promise<T> | T): Promise<T> {
  const model = await llama.loadModel({ modelPath: path });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's tokenization equals `tok`'s on `text`, with and without special-token parsing; returns the count. */
function expectSameTokens(model: LlamaModel, tok: Tokenizer, text: string): number {
  const ours = Array.from(tok.encode(text));
  expect(model.tokenize(text, false), JSON.stringify(text)).toEqual(ours);
  // No special token's text in `text`: parsing specials changes nothing.
  expect(model.tokenize(text, true), JSON.stringify(text)).toEqual(ours);
  return ours.length;
}

function ggufKv(path: string): Map<string, unknown> {
  return new Map([...decodeGguf(readFileSync(path)).kv].map(([k, v]) => [k, v.value]));
}

describe('a GPT-2 run exported to GGUF, in llama.cpp', () => {
  let gguf = '';
  beforeAll(async () => {
    gguf = join(dir, 'gpt2-f32.gguf');
    await exportCheckpoint({ checkpoint: gpt2Run, format: 'gguf', out: gguf, type: 'f32' });
  });

  it("writes GPT-2's vocabulary: 50257 tokens by id, 50000 merges, <|endoftext|> as BOS, EOS and a control token", () => {
    const kv = ggufKv(gguf);
    const v = gpt2.ggufVocab();
    expect(kv.get('llama.vocab_size')).toBe(50257);
    expect(kv.get('tokenizer.ggml.model')).toBe('gpt2');
    expect(kv.get('tokenizer.ggml.pre')).toBe('gpt-2');
    expect(kv.get('tokenizer.ggml.tokens')).toEqual(v.tokens);
    expect(kv.get('tokenizer.ggml.token_type')).toEqual(v.tokenTypes);
    expect((kv.get('tokenizer.ggml.token_type') as number[])[GPT2_EOT]).toBe(3);
    expect((kv.get('tokenizer.ggml.merges') as string[]).length).toBe(50000);
    expect([kv.get('tokenizer.ggml.bos_token_id'), kv.get('tokenizer.ggml.eos_token_id')]).toEqual([GPT2_EOT, GPT2_EOT]);
    expect(kv.get('tokenizer.ggml.add_bos_token')).toBe(true);
  });

  it('llama.cpp tokenizes multilingual text as osp-lab does, id for id, and detokenizes it back', async () => {
    await withModel(gguf, (model) => {
      expect([model.tokens.bos, model.tokens.eos]).toEqual([GPT2_EOT, GPT2_EOT]);
      let total = 0;
      for (const text of [TEXT, ...TEXT.split('\n'), ...STRINGS]) {
        total += expectSameTokens(model, gpt2, text);
        expect(model.detokenize(model.tokenize(text))).toBe(text);
      }
      expect(total).toBeGreaterThan(600);
      const ids = Array.from(gpt2.encode(TEXT));
      // With BOS first, as every training row: the control token adds no text.
      expect(model.detokenize([GPT2_EOT, ...ids] as Token[])).toBe(TEXT);
      // "<|endoftext|>" in a text is ordinary text to osp-lab (and to llama.cpp without special parsing);
      // parsing specials makes it the control token.
      const withSpecial = 'before <|endoftext|> after';
      const plain = Array.from(gpt2.encode(withSpecial));
      expect(plain).not.toContain(GPT2_EOT);
      expect(model.tokenize(withSpecial, false)).toEqual(plain);
      expect(model.tokenize(withSpecial, true)).toEqual([...gpt2.encode('before '), GPT2_EOT, ...gpt2.encode(' after')]);
    });
  });

  it("llama.cpp's detokenization cleans up spaces before punctuation for 'gpt-2' (by design); the ids stay exact", async () => {
    const text = "Really ? Yes ! Fine , ok . He said ' hi ' and it 's what we 're sure you 've seen , isn 't it";
    await withModel(gguf, (model) => {
      const ids = expectSameTokens(model, gpt2, text);
      expect(ids).toBeGreaterThan(20);
      expect(gpt2.decode(gpt2.encode(text))).toBe(text); // osp-lab's own decoding is exact
      const back = model.detokenize(model.tokenize(text));
      expect(back).not.toBe(text);
      expect(back).toBe(llamaCleanSpaces(text));
    });
  });

  it("the f32 GGUF's mean next-token loss in llama.cpp equals osp eval's (within 1e-3)", async () => {
    const textPath = join(dir, 'text.txt');
    const ours = await evaluateCheckpoint({ checkpoint: gpt2Run, text: textPath });
    expect(ours.tokenizer).toBe('gpt2');
    const tokens = readTextTokens(textPath, gpt2);
    expect(ours.tokens).toBe(tokens.length - 1);
    // llama.cpp end to end: its own tokens of the text (BOS first) are osp-lab's.
    const own = await withModel(gguf, (model) => [model.tokens.bos!, ...model.tokenize(TEXT)]);
    expect(own).toEqual(Array.from(tokens));
    const source = openModelSource(gpt2Run);
    const theirs = await llamaCppPerplexity(gguf, tokens, source.config.maxSeqLen, { bos: source.bos, threads: 2 });
    expect(theirs.tokens).toBe(ours.tokens);
    expect(Math.abs(theirs.loss - ours.loss)).toBeLessThan(1e-3);
    expect(ours.loss).toBeLessThan(Math.log(50257)); // trained a little: not the uniform model
  }, 60_000);
});

describe('a GPT-2 run exported to Hugging Face', () => {
  it("carries GPT-2's tokenizer files; they load back as the same tokenizer; BOS/EOS 50256 in the configs", async () => {
    const out = join(dir, 'gpt2-hf');
    await exportCheckpoint({ checkpoint: gpt2Run, format: 'hf', out });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) expect(existsSync(join(out, f)), f).toBe(true);
    const back = loadTokenizer(out);
    expect(back.fingerprint).toBe(gpt2.fingerprint);
    expect([back.vocabSize, back.bos, back.eos]).toEqual([50257, GPT2_EOT, GPT2_EOT]);
    for (const text of [TEXT, ...STRINGS]) expect(Array.from(back.encode(text))).toEqual(Array.from(gpt2.encode(text)));
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect([config.vocab_size, config.bos_token_id, config.eos_token_id]).toEqual([50257, GPT2_EOT, GPT2_EOT]);
    const generation = JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8'));
    expect([generation.bos_token_id, generation.eos_token_id]).toEqual([GPT2_EOT, GPT2_EOT]);
    const tc = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
    expect(tc).toMatchObject({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', model_max_length: 64 });
    // The export is itself a model source whose tokenizer is GPT-2, and re-exports the same GGUF vocabulary.
    expect(sourceTokenizer(openModelSource(out)).fingerprint).toBe(gpt2.fingerprint);
    const again = join(dir, 'gpt2-from-hf.gguf');
    await exportCheckpoint({ checkpoint: out, format: 'gguf', out: again });
    const [a, b] = [ggufKv(again), ggufKv(join(dir, 'gpt2-f32.gguf'))];
    for (const k of [...b.keys()].filter((k) => k.startsWith('tokenizer.'))) expect(a.get(k), k).toEqual(b.get(k));
  });
});

describe('a model vocabulary padded above the tokenizer (GPT-2 at 50304)', () => {
  it('the GGUF has 50304 tokens, the 47 extra unused [PAD<id>]; llama.cpp loads it and agrees with osp eval', async () => {
    const config = run('padded', { tokenizer: 'gpt2', steps: 2, model: { ...MODEL, vocabSize: 50304 } });
    const runDir = (await train({ config, log: () => {} })).runDir;
    const gguf = join(dir, 'padded.gguf');
    await exportCheckpoint({ checkpoint: runDir, format: 'gguf', out: gguf });
    const kv = ggufKv(gguf);
    const tokens = kv.get('tokenizer.ggml.tokens') as string[];
    const types = kv.get('tokenizer.ggml.token_type') as number[];
    expect(kv.get('llama.vocab_size')).toBe(50304);
    expect(tokens.length).toBe(50304);
    expect(types.length).toBe(50304);
    expect(tokens.slice(0, 50257)).toEqual(gpt2.ggufVocab().tokens);
    expect(tokens.slice(50257)).toEqual(Array.from({ length: 47 }, (_, i) => `[PAD${50257 + i}]`));
    expect(types.slice(50257)).toEqual(new Array(47).fill(5));
    expect(types.slice(0, 50257)).toEqual(gpt2.ggufVocab().tokenTypes);
    await withModel(gguf, (model) => {
      expectSameTokens(model, gpt2, TEXT);
      // The padding's names are no special text: "[PAD50300]" in a text is ordinary text.
      expectSameTokens(model, gpt2, 'a [PAD50300] b');
    });
    const textPath = join(dir, 'short.txt');
    writeFileSync(textPath, TEXT.split('\n').slice(0, 3).join('\n'));
    const ours = await evaluateCheckpoint({ checkpoint: runDir, text: textPath });
    const source = openModelSource(runDir);
    const theirs = await llamaCppPerplexity(gguf, readTextTokens(textPath, gpt2), 64, { bos: source.bos, threads: 2 });
    expect(theirs.tokens).toBe(ours.tokens);
    expect(Math.abs(theirs.loss - ours.loss)).toBeLessThan(1e-3);
    // The Hugging Face export: vocab_size 50304, GPT-2's 50257-token tokenizer.
    const hf = join(dir, 'padded-hf');
    await exportCheckpoint({ checkpoint: runDir, format: 'hf', out: hf });
    expect(JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')).vocab_size).toBe(50304);
    expect(loadTokenizer(hf).fingerprint).toBe(gpt2.fingerprint);
  }, 60_000);
});

/** Deterministic weights of a config (values in [-0.5, 0.5)), the same on every machine. */
function weightsOf(config: ModelConfig): Weights {
  let k = 0;
  return new Map(
    paramSpecs(config).map((s) => [
      s.name,
      {
        shape: s.shape,
        data: Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => (((k++ * 7919) % 1000) - 500) / 1000),
      },
    ]),
  );
}

describe('refusals, and the byte tokenizer unchanged', () => {
  it("a model vocabulary smaller than the tokenizer's is refused by both writers, nothing written", () => {
    const config = resolveModelConfig({ vocabSize: 258, hiddenSize: 8, numLayers: 1, numHeads: 2, maxSeqLen: 16 });
    const w = weightsOf(config);
    const out = join(dir, 'small-hf');
    expect(() => writeHfCheckpoint(out, config, w, 'f32', gpt2)).toThrow(
      /hf export: the model's vocabulary has 258 tokens, fewer than tokenizer 'gpt2' \(50257 ids/,
    );
    expect(existsSync(out)).toBe(false);
    expect(() => llamaGguf(config, w, 'f32', 'x', gpt2)).toThrow(
      /gguf export: the model's vocabulary has 258 tokens, fewer than the 50257/,
    );
  });

  it('bytes: the GGUF and Hugging Face files are byte for byte what the writers produced before issue 13', () => {
    // sha256 of the output of the writers as they were (byte vocabulary hard-coded), for this model.
    const config = resolveModelConfig({ vocabSize: 258, hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 24 });
    const w = weightsOf(config);
    const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
    expect(sha(llamaGguf(config, w, 'f32'))).toBe('b1261194ecdac4139346038812e1051f8bcd105cdec88c74f9e33cbf2c6679a3');
    const out = join(dir, 'bytes-hf');
    writeHfCheckpoint(out, config, w);
    const hashes = Object.fromEntries(readdirSync(out).map((f) => [f, sha(readFileSync(join(out, f)))]));
    expect(hashes).toEqual({
      'config.json': 'e81885c1b03d89ecd20966d091958abeae8a207765e3f9094038170299e09114',
      'generation_config.json': 'ee2053d06d9bda160e887334a6219e7e16e6284770e6e37322dbc34cebac27ac',
      'model.safetensors': 'eeebb1edfd591366fa5cf5e8016c25b140377086bea7b9cc287d9b411c873dec',
      'special_tokens_map.json': '6e1a2aa52ae51d34303033502b72604a8b921349ab093c9fe6e6c56d90e1ae49',
      'tokenizer.json': '44f3de022d5df2e416f0b5dd4eb205689466f50343aa8a0f4aeaabaf316f54ca',
      'tokenizer_config.json': '747ad47e8884ce28cae9dccf4505b7ed975269c05c01a4ef1dd947c09c17f180',
    });
  });
});

/** GPT-2's pre-tokenizer regex (for training the merges below; the tokenizers use their own). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * A byte-level BPE trained here on `corpus`: the 256 byte characters under shuffled ids (so that id != byte),
 * then up to `merges` merges (most frequent pair first, at least twice), then <s>, </s>, an id left unused,
 * and <pad>.
 */
function trainBpe(corpus: string, merges: number): { vocab: Record<string, number>; merges: string[]; specials: [number, string][] } {
  const chars = bytesToUnicode();
  const vocab = shuffledByteVocab(11);
  let next = 256;
  const utf8 = new TextEncoder();
  const counts = new Map<string, number>();
  for (const piece of corpus.match(GPT2_SPLIT) ?? []) {
    const key = Array.from(utf8.encode(piece), (b) => chars[b]!).join(' ');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const words = [...counts].map(([k, n]) => ({ syms: k.split(' '), n }));
  const out: string[] = [];
  for (let m = 0; m < merges; m++) {
    const pairs = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.syms.length; i++)
        pairs.set(`${w.syms[i]} ${w.syms[i + 1]}`, (pairs.get(`${w.syms[i]} ${w.syms[i + 1]}`) ?? 0) + w.n);
    let best = '';
    let bestN = 1;
    for (const [p, n] of pairs) if (n > bestN) [best, bestN] = [p, n];
    if (best === '') break;
    const [l, rr] = best.split(' ') as [string, string];
    out.push(best);
    if (!Object.hasOwn(vocab, l + rr)) vocab[l + rr] = next++;
    for (const w of words) {
      const s: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === l && w.syms[i + 1] === rr) {
          s.push(l + rr);
          i++;
        } else s.push(w.syms[i]!);
      }
      w.syms = s;
    }
  }
  return {
    vocab,
    merges: out,
    specials: [
      [next, '<s>'],
      [next + 1, '</s>'],
      [next + 3, '<pad>'],
    ],
  };
}

const LLAMA3_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_REGEX = LLAMA3_REGEX.replace(String.raw`\p{N}{1,3}`, String.raw`\p{N}`);

describe('tokenizer.json files trained here, exported to GGUF: llama.cpp tokenizes as osp-lab does', () => {
  const bpe = trainBpe([TEXT, ...STRINGS, ...documents(20, 3)].join('\n'), 300);
  const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
  const split = (regex: string) => ({
    type: 'Sequence',
    pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, byteLevel(false)],
  });
  const VARIANTS = [
    { name: 'gpt-2', pre: byteLevel(true), normalizer: null, ignoreMerges: false },
    { name: 'qwen2', pre: split(QWEN2_REGEX), normalizer: null, ignoreMerges: false },
    { name: 'llama-bpe', pre: split(LLAMA3_REGEX), normalizer: null, ignoreMerges: true },
  ];

  it('trains a real vocabulary (merges of several scripts)', () => {
    expect(bpe.merges.length).toBe(300);
    expect(bpe.specials[2]![0]).toBeGreaterThan(500);
  });

  for (const v of VARIANTS) {
    it(`pre-tokenizer '${v.name}': a run with the file, exported, tokenizes and detokenizes as osp-lab`, async () => {
      const folder = join(dir, `bpe-${v.name}`);
      mkdirSync(folder);
      const special = ([id, content]: [number, string]) => specialToken(id, content);
      writeFileSync(
        join(folder, 'tokenizer.json'),
        JSON.stringify({
          version: '1.0',
          added_tokens: bpe.specials.map(special),
          normalizer: v.normalizer,
          pre_tokenizer: v.pre,
          post_processor: null,
          decoder: byteLevel(true),
          model: {
            type: 'BPE',
            dropout: null,
            unk_token: null,
            byte_fallback: false,
            ignore_merges: v.ignoreMerges,
            vocab: bpe.vocab,
            merges: bpe.merges,
          },
        }),
      );
      writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
      const tok = loadTokenizer(join(folder, 'tokenizer.json'));
      expect(tok.ggufVocab().pre).toBe(v.name);
      const runDir = (await train({ config: run(`bpe-${v.name}`, { tokenizer: join(folder, 'tokenizer.json'), steps: 1 }), log: () => {} }))
        .runDir;
      const gguf = join(dir, `bpe-${v.name}.gguf`);
      await exportCheckpoint({ checkpoint: runDir, format: 'gguf', out: gguf });
      const kv = ggufKv(gguf);
      expect(kv.get('tokenizer.ggml.pre')).toBe(v.name);
      expect((kv.get('tokenizer.ggml.tokens') as string[])[bpe.specials[1]![0] + 1]).toBe(`[PAD${bpe.specials[1]![0] + 1}]`);
      await withModel(gguf, (model) => {
        expect([model.tokens.bos, model.tokens.eos]).toEqual([tok.bos, tok.eos]);
        let merged = 0;
        for (const text of [...STRINGS, TEXT]) {
          expectSameTokens(model, tok, text);
          merged += tok.encode(text).length < Buffer.byteLength(text) ? 1 : 0;
          // 'gpt-2' cleans up spaces on detokenization (file comment); 'qwen2' and 'llama-bpe' do not.
          const expected = v.name === 'gpt-2' ? llamaCleanSpaces(text) : text;
          expect(model.detokenize(model.tokenize(text)), JSON.stringify(text)).toBe(expected);
        }
        expect(merged).toBe(STRINGS.length + 1); // the merges are used on every string
      });
    }, 30_000);
  }
});
