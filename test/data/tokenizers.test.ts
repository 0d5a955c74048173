/**
 * The tokenizer registry (src/data/tokenizers): GPT-2 held token for token to an independent byte-level
 * BPE reference (test/helpers/bpe_reference.ts) over OpenAI's own files, tokenizer.json files written
 * here (a small byte-level BPE, a sentencepiece-style BPE with byte fallback) held to hand-worked ids,
 * fingerprints, BOS/EOS discovery, the Hugging Face files (the byte tokenizer's byte-identical to
 * src/export/hf.ts's) and the GGUF vocabularies (the byte tokenizer's equal to src/export/gguf.ts's).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BYTES_FINGERPRINT,
  ByteTokenizer,
  byteTokenizer,
  bytesTokenizerJson,
  gpt2FilesDir,
  gpt2TokenizerJson,
  HfTokenizer,
  loadTokenizer,
  MAX_VOCAB_SIZE,
  tokenizeDocuments,
  tokenizerFingerprint,
  type Tokenizer,
} from '../../src/data/tokenizer.ts';
import { ConfigError, DataError, OspError } from '../../src/errors.ts';
import { llamaGguf } from '../../src/export/gguf.ts';
import { writeHfCheckpoint } from '../../src/export/hf.ts';
import { decodeGguf } from '../../src/io/gguf.ts';
import { resolveModelConfig } from '../../src/model/config.ts';
import { paramSpecs } from '../../src/model/transformer.ts';
import { bpeReference } from '../helpers/bpe_reference.ts';
import { rng } from '../helpers/prng.ts';
import { tempDir } from '../helpers/scratch.ts';
import { caught } from '../helpers/caught.ts';
import { specialToken, shuffledByteVocab } from '../helpers/tokenizer_json.ts';

const dir = tempDir('osp-tokenizers-');

/** Writes `files` (name -> JSON value or text) into a new folder; returns the folder. */
function folder(name: string, files: Record<string, unknown>): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(join(d, f), typeof v === 'string' ? v : JSON.stringify(v));
  return d;
}

const dataError = (fn: () => unknown) => caught(fn, DataError);

/** Multilingual text with whitespace runs, digits, contractions, emoji, a literal special token. */
const SAMPLES = [
  'Hello world',
  "I'm sure they'll say it's fine, don't you? We've SEEN it; you're right, she'd go. I'M LOUD, THEY'RE TOO.",
  '   leading spaces, trailing spaces   ',
  'tabs\tand\t\ttabs, newlines\n\n\nand CRLF\r\nline',
  'a  b   c    d\n \n  \t x',
  'digits 0123456789 3.14159 1,000,000 2024-05-20 +49 (0)30 12345678 ½ ² ٣ ५',
  'Ελληνικά κείμενα, русский текст, עברית, العربية (مرحبا بالعالم)',
  'हिन्दी में पाठ: नमस्ते दुनिया', // vowel signs are marks (\p{M}), not letters
  '日本語のテキスト、中文文本，한국어 텍스트。',
  'emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 keycap 1️⃣ and ☕️',
  'combining: e\u0301 vs é, Å vs A\u030a, ñ',
  'code: const x = a[i] + b?.c ?? 42; // <|endoftext|> inside text\n\tif (x) { return "s"; }',
  'nbsp\u00a0here, zero\u200bwidth, ideographic\u3000space, bom\ufeffin text',
  "'s 's 't're've'm'll'd '' ' s",
  'caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u0153uvre',
  '\ud83d\udca9 \u{1f9ea}\u{1f9ec} rare: \u{10348} \u{1d11e} \u{20000}',
  '',
  ' ',
  '\n',
];

describe('gpt2: @huggingface/tokenizers agrees with the independent byte-level BPE reference', () => {
  const gpt2 = loadTokenizer('gpt2');
  const ref = bpeReference(gpt2FilesDir());

  it('is GPT-2: 50257 ids, <|endoftext|> = 50256 as BOS and EOS, spec and kind gpt2', () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.bos).toBe(50256);
    expect(gpt2.eos).toBe(50256);
    expect(gpt2.spec).toBe('gpt2');
    expect(gpt2.kind).toBe('gpt2');
    expect(loadTokenizer('gpt2')).toBe(gpt2); // built once per process
  });

  it('known GPT-2 ids (tiktoken / the GPT-2 paper code give the same)', () => {
    expect(Array.from(gpt2.encode('Hello world'))).toEqual([15496, 995]);
    expect(Array.from(gpt2.encode('hello world'))).toEqual([31373, 995]);
    expect(Array.from(gpt2.encode(' the'))).toEqual([262]);
  });

  it('token for token on multilingual text, and decode(encode(x)) === x', () => {
    for (const s of SAMPLES) {
      const ids = Array.from(gpt2.encode(s));
      expect(ids, JSON.stringify(s)).toEqual(ref.encode(s));
      expect(gpt2.decode(ids)).toBe(s);
      expect(ref.decode(ids)).toBe(s);
    }
    const all = SAMPLES.join(' ');
    expect(Array.from(gpt2.encode(all))).toEqual(ref.encode(all));
    expect(gpt2.encode(all).length).toBeGreaterThan(300);
  });

  it('token for token on 300 random strings of scripts, digits, whitespace runs, apostrophes and emoji', () => {
    const pool = [
      ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
      ...'      \t\n\r',
      ..."''''.,;:!?-_()[]{}<>|/\\\"#$%&*+=@^`~",
      ...'éèêëçàâîïôûüÿñßøåæœ',
      ...'αβγδεζηθλμπσωΑΒΓ',
      ...'абвгдежзийклмнопрст',
      ...'日本語中文한국어テスト',
      ...'नमस्तेदुनियाािीुूेैोौं्',
      ...'٠١٢٣٤٥٦٧٨٩۰۱۲',
      '😀',
      '👍🏽',
      '👨‍👩‍👧',
      '🇫🇷',
      '\u0301',
      '\u00a0',
      '\u200b',
      '\u3000',
      "'s",
      "'ll",
      "'ve",
      "n't",
      '<|endoftext|>',
    ];
    const next = rng(13);
    for (let n = 0; n < 300; n++) {
      const len = 1 + Math.floor(next() * 40);
      let s = '';
      for (let i = 0; i < len; i++) s += pool[Math.floor(next() * pool.length)]!;
      const ids = Array.from(gpt2.encode(s));
      expect(ids, JSON.stringify(s)).toEqual(ref.encode(s));
      expect(gpt2.decode(ids), JSON.stringify(s)).toBe(s);
    }
  });

  it("token for token on this repository's documentation (~120 kB of English prose, code, tables)", () => {
    const docs = [
      'README.md',
      ...readdirSync('docs')
        .filter((f) => f.endsWith('.md'))
        .map((f) => join('docs', f)),
    ];
    let tokens = 0;
    for (const f of docs) {
      const text = readFileSync(f, 'utf8');
      const ids = Array.from(gpt2.encode(text));
      expect(ids, f).toEqual(ref.encode(text));
      expect(gpt2.decode(ids) === text, f).toBe(true);
      tokens += ids.length;
    }
    expect(tokens).toBeGreaterThan(20_000);
  });

  it('the text "<|endoftext|>" in a document is ordinary text; the id 50256 decodes to nothing', () => {
    const ids = Array.from(gpt2.encode('a <|endoftext|> b'));
    expect(ids).not.toContain(50256);
    expect(ids).toEqual(ref.encode('a <|endoftext|> b'));
    expect(gpt2.decode([50256, ...gpt2.encode('hi'), 50256])).toBe('hi');
    expect(gpt2.decode([])).toBe('');
    expect(() => gpt2.decode([50257])).toThrow(RangeError);
    expect(() => gpt2.decode([1.5])).toThrow(RangeError);
  });

  it('documents: one <|endoftext|> before each (llm.c), bytes keep BOS ... EOS', () => {
    const docs = ['First doc.', 'Second, longer document!'];
    expect(Array.from(tokenizeDocuments(docs, gpt2))).toEqual([50256, ...ref.encode(docs[0]!), 50256, ...ref.encode(docs[1]!)]);
    expect(Array.from(tokenizeDocuments(['hi', 'yo']))).toEqual([256, 104, 105, 257, 256, 121, 111, 257]);
  });

  it('GGUF vocabulary: llama.cpp gpt2 model, pre gpt-2, tokens by id, <|endoftext|> a control token, 50000 merges', () => {
    const v = gpt2.ggufVocab();
    const encoder = JSON.parse(readFileSync(join(gpt2FilesDir(), 'encoder.json'), 'utf8')) as Record<string, number>;
    const byId: string[] = [];
    for (const [t, id] of Object.entries(encoder)) byId[id] = t;
    expect(v.model).toBe('gpt2');
    expect(v.pre).toBe('gpt-2');
    expect(v.tokens).toEqual(byId);
    expect(v.tokenTypes.length).toBe(50257);
    expect(v.tokenTypes.filter((t) => t !== 1)).toEqual([3]);
    expect(v.tokenTypes[50256]).toBe(3);
    const lines = readFileSync(join(gpt2FilesDir(), 'vocab.bpe'), 'utf8').split('\n');
    expect(v.merges).toEqual(lines.slice(1, 50001));
    expect(v.merges[0]).toBe('Ġ t');
    expect([v.bos, v.eos, v.addBos]).toEqual([50256, 50256, true]);
  });

  it('its Hugging Face files load back by path as the same tokenizer (same fingerprint, same ids)', () => {
    const files = gpt2.hfFiles({ modelMaxLength: 1024 });
    expect([...files.keys()]).toEqual(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']);
    const config = JSON.parse(files.get('tokenizer_config.json')!);
    expect(config).toEqual({
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      model_max_length: 1024,
      clean_up_tokenization_spaces: false,
    });
    const json = JSON.parse(files.get('tokenizer.json')!);
    // Hugging Face users get what training saw: <|endoftext|> first.
    expect(json.post_processor.single[0]).toEqual({ SpecialToken: { id: '<|endoftext|>', type_id: 0 } });
    const d = folder('gpt2-export', Object.fromEntries(files));
    const back = loadTokenizer(join(d, 'tokenizer.json'));
    expect(back.kind).toBe('tokenizer.json');
    expect(back.spec).toBe(join(d, 'tokenizer.json'));
    expect(back.fingerprint).toBe(gpt2.fingerprint);
    expect([back.bos, back.eos, back.vocabSize]).toEqual([50256, 50256, 50257]);
    expect(Array.from(back.encode(SAMPLES[1]!))).toEqual(Array.from(gpt2.encode(SAMPLES[1]!)));
  });
});

describe('fingerprints', () => {
  const gpt2 = loadTokenizer('gpt2');

  it('are pinned: a change to the canonical form or to the packaged files must be deliberate', () => {
    expect(BYTES_FINGERPRINT).toBe(0xff541902);
    expect(byteTokenizer.fingerprint).toBe(BYTES_FINGERPRINT);
    expect(tokenizerFingerprint(bytesTokenizerJson(), 256, 257, 'bytes')).toBe(BYTES_FINGERPRINT);
    expect(gpt2.fingerprint).toBe(0xd56d7da7);
  });

  it("GPT-2 as Hugging Face serializes it (other key order, merges as pairs, other offsets) has gpt2's fingerprint", () => {
    const ours = gpt2TokenizerJson();
    const model = ours.model as { vocab: Record<string, number>; merges: string[] };
    // Vocabulary in reverse insertion order, new-style merges, offsets and post-processor changed.
    const vocab = Object.fromEntries(Object.entries(model.vocab).reverse());
    const theirs = {
      model: {
        merges: model.merges.map((m) => m.split(' ')),
        vocab,
        byte_fallback: false,
        type: 'BPE',
        unk_token: null,
        ignore_merges: false,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        dropout: null,
      },
      version: '1.0',
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
      post_processor: null,
      pre_tokenizer: { use_regex: true, add_prefix_space: false, trim_offsets: false, type: 'ByteLevel' },
      normalizer: null,
      added_tokens: [{ id: 50256, content: '<|endoftext|>', special: true, normalized: false }],
    };
    const d = folder('gpt2-hf', {
      'tokenizer.json': theirs,
      'tokenizer_config.json': { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' },
    });
    expect(loadTokenizer(d).fingerprint).toBe(gpt2.fingerprint); // a folder holding tokenizer.json works too

    // Anything that changes ids changes the fingerprint: two merges swapped, another EOS, a pre-tokenizer option.
    const swapped = {
      ...theirs,
      model: { ...theirs.model, merges: [theirs.model.merges[1], theirs.model.merges[0], ...theirs.model.merges.slice(2)] },
    };
    const fp = (json: unknown, bos = 50256, eos = 50256) =>
      new HfTokenizer(json, { spec: 't', kind: 'tokenizer.json', file: 't', bos, eos }).fingerprint;
    expect(fp(theirs)).toBe(gpt2.fingerprint);
    expect(fp(swapped)).not.toBe(gpt2.fingerprint);
    expect(fp(theirs, 50256, 198)).not.toBe(gpt2.fingerprint);
    expect(fp({ ...theirs, pre_tokenizer: { ...theirs.pre_tokenizer, add_prefix_space: true } })).not.toBe(gpt2.fingerprint);
    expect(fp(theirs)).not.toBe(BYTES_FINGERPRINT);
  });
});

describe('bytes', () => {
  it('is the default, unchanged: 258 ids, BOS 256, EOS 257', () => {
    const t = loadTokenizer();
    expect(t).toBe(byteTokenizer);
    expect(t).toBeInstanceOf(ByteTokenizer);
    expect([t.spec, t.kind, t.vocabSize, t.bos, t.eos]).toEqual(['bytes', 'bytes', 258, 256, 257]);
    expect(Array.from(t.encode('hé'))).toEqual([104, 195, 169]);
  });

  it('hfFiles are byte for byte the tokenizer files src/export/hf.ts writes', () => {
    const config = resolveModelConfig({ vocabSize: 258, hiddenSize: 8, numLayers: 1, numHeads: 2, numKvHeads: 1, maxSeqLen: 24 });
    const weights = new Map(
      paramSpecs(config).map((s) => [s.name, { shape: s.shape, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) }]),
    );
    const out = join(dir, 'hf-export');
    writeHfCheckpoint(out, config, weights);
    const files = byteTokenizer.hfFiles({ modelMaxLength: 24 });
    expect(files.size).toBe(3);
    for (const [name, text] of files) expect(text, name).toBe(readFileSync(join(out, name), 'utf8'));
  });

  it('ggufVocab is what src/export/gguf.ts writes', () => {
    const config = resolveModelConfig({ vocabSize: 258, hiddenSize: 8, numLayers: 1, numHeads: 2, numKvHeads: 1, maxSeqLen: 24 });
    const weights = new Map(
      paramSpecs(config).map((s) => [s.name, { shape: s.shape, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) }]),
    );
    const kv = decodeGguf(llamaGguf(config, weights, 'f32')).kv;
    const get = (k: string) => kv.get(k)!.value;
    const v = byteTokenizer.ggufVocab();
    expect(v.model).toBe(get('tokenizer.ggml.model'));
    expect(v.pre).toBe(get('tokenizer.ggml.pre'));
    expect(v.tokens).toEqual(get('tokenizer.ggml.tokens'));
    expect(v.tokenTypes).toEqual(get('tokenizer.ggml.token_type'));
    expect(v.merges).toEqual(get('tokenizer.ggml.merges'));
    expect([v.bos, v.eos, v.addBos]).toEqual([
      get('tokenizer.ggml.bos_token_id'),
      get('tokenizer.ggml.eos_token_id'),
      get('tokenizer.ggml.add_bos_token'),
    ]);
  });

  it('its tokenizer.json loaded by path is the byte tokenizer again (ids, specials, fingerprint)', () => {
    const d = folder('bytes-export', Object.fromEntries(byteTokenizer.hfFiles()));
    const t = loadTokenizer(join(d, 'tokenizer.json'));
    expect([t.vocabSize, t.bos, t.eos, t.fingerprint]).toEqual([258, 256, 257, BYTES_FINGERPRINT]);
    for (const s of SAMPLES) {
      expect(Array.from(t.encode(s)), JSON.stringify(s)).toEqual(Array.from(byteTokenizer.encode(s)));
      expect(t.decode([256, ...t.encode(s), 257])).toBe(s);
    }
    // No merges: any split gives the bytes, so the GGUF pre-tokenizer is the byte tokenizer's.
    expect(t.ggufVocab().pre).toBe('qwen2');
    expect(t.ggufVocab().tokens).toEqual(byteTokenizer.ggufVocab().tokens);
  });
});

/**
 * A small byte-level BPE: the 256 byte characters (ids 0..255 shuffled, so that id != byte), a few merges,
 * <s> </s> <pad> specials and one id (270) left unused.
 */
function smallBpe(): { json: Record<string, unknown>; ids: Record<string, number> } {
  const vocab = shuffledByteVocab(7);
  const merged = ['he', 'Ġt', 'Ġthe', 'in', 'ing', 'Ġa', 'nd', 'Ġand'];
  merged.forEach((t, i) => (vocab[t] = 256 + i));
  const merges = ['h e', 'Ġ t', 'Ġt he', 'i n', 'in g', 'Ġ a', 'n d', 'Ġa nd'];
  const special = specialToken;
  return {
    json: {
      version: '1.0',
      added_tokens: [special(264, '<s>'), special(265, '</s>'), special(271, '<pad>')],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, byte_fallback: false, vocab, merges },
    },
    ids: { ...vocab, '<s>': 264, '</s>': 265, '<pad>': 271 },
  };
}

describe('a tokenizer.json written here: small byte-level BPE', () => {
  const { json, ids } = smallBpe();
  const d = folder('small', {
    'tokenizer.json': json,
    'tokenizer_config.json': { bos_token: '<s>', eos_token: { content: '</s>', special: true } },
  });
  const tok = loadTokenizer(join(d, 'tokenizer.json'));

  it('loads by path: vocab size = largest id + 1, BOS/EOS from tokenizer_config.json', () => {
    expect(tok.vocabSize).toBe(272);
    expect([tok.bos, tok.eos]).toEqual([264, 265]);
    expect(tok.kind).toBe('tokenizer.json');
  });

  it('encodes as the merges say (worked by hand) and as the reference says', () => {
    // "the thing and" -> pieces "the" " thing" " and":
    //   the:    t h e -> (h e) -> t he                    (no "t he" merge: only "Ġt he")
    //   Ġthing: Ġ t h i n g -> (Ġ t) -> Ġt h i n g -> (i n) -> Ġt h in g -> (in g) -> Ġt h ing
    //   Ġand:   Ġ a n d -> (Ġ a) -> Ġa n d -> (n d) -> Ġa nd -> (Ġa nd) -> Ġand
    const expected = ['t', 'he', 'Ġt', 'h', 'ing', 'Ġand'].map((t) => ids[t]!);
    expect(Array.from(tok.encode('the thing and'))).toEqual(expected);
    // " the" merges all the way.
    expect(Array.from(tok.encode(' the'))).toEqual([ids['Ġthe']]);
    // The reference BPE over the same vocabulary and merges, written as encoder.json / vocab.bpe.
    const model = json.model as { vocab: Record<string, number>; merges: string[] };
    const ref = bpeReference(
      folder('small-ref', { 'encoder.json': model.vocab, 'vocab.bpe': ['#version: 0.2', ...model.merges, ''].join('\n') }),
    );
    for (const s of SAMPLES.filter((x) => !x.includes('<|endoftext|>'))) {
      expect(Array.from(tok.encode(s)), JSON.stringify(s)).toEqual(ref.encode(s));
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it('special tokens: their text is ordinary text when encoding, and they are dropped when decoding', () => {
    const ids2 = Array.from(tok.encode('<s>the</s>'));
    expect(ids2).not.toContain(264);
    expect(ids2).not.toContain(265);
    expect(tok.decode(ids2)).toBe('<s>the</s>');
    expect(tok.decode([264, ...tok.encode('and the'), 265, 271])).toBe('and the');
    expect(() => tok.decode([270])).toThrow(/expected an id of tokenizer/); // the unused id
    expect(() => tok.decode([272])).toThrow(RangeError);
  });

  it('GGUF vocabulary: gpt-2 pre-tokenizer, control specials, [PAD270] unused', () => {
    const v = tok.ggufVocab();
    expect(v.pre).toBe('gpt-2');
    expect(v.tokens.length).toBe(272);
    expect(v.tokens[270]).toBe('[PAD270]');
    expect(v.tokenTypes[270]).toBe(5);
    expect([v.tokenTypes[264], v.tokenTypes[265], v.tokenTypes[271]]).toEqual([3, 3, 3]);
    expect(v.tokenTypes.filter((t) => t === 1).length).toBe(256 + 8);
    expect(v.tokens[ids['Ġand']!]).toBe('Ġand');
    expect(v.merges).toEqual((json.model as { merges: string[] }).merges);
    expect([v.bos, v.eos, v.addBos]).toEqual([264, 265, true]);
  });

  it("hfFiles: the file's tokenizer.json with a BOS-prepending post-processor, and the config names <s> and </s>", () => {
    const files = tok.hfFiles();
    const exported = JSON.parse(files.get('tokenizer.json')!);
    expect(exported.model).toEqual(json.model);
    expect(exported.post_processor.special_tokens).toEqual({ '<s>': { id: '<s>', ids: [264], tokens: ['<s>'] } });
    expect(JSON.parse(files.get('special_tokens_map.json')!)).toEqual({ bos_token: '<s>', eos_token: '</s>' });
  });

  it('BOS/EOS without a tokenizer_config.json: the special tokens <s> and </s>', () => {
    const alone = folder('small-alone', { 'tokenizer.json': json });
    const t = loadTokenizer(join(alone, 'tokenizer.json'));
    expect([t.bos, t.eos]).toEqual([264, 265]);
    expect(t.fingerprint).toBe(tok.fingerprint);
    // Qwen2-style: the config names only eos (bos_token null) and <|endoftext|> is the only special.
    const qwenish = { ...json, added_tokens: [{ id: 264, content: '<|endoftext|>', special: true }] };
    const q = loadTokenizer(
      join(
        folder('small-qwen', { 'tokenizer.json': qwenish, 'tokenizer_config.json': { bos_token: null, eos_token: '<|endoftext|>' } }),
        'tokenizer.json',
      ),
    );
    expect([q.bos, q.eos]).toEqual([264, 264]);
  });

  it('no BOS/EOS to be found: a DataError naming the file and what was looked for', () => {
    const none = { ...json, added_tokens: [{ id: 264, content: '<sep>', special: true }] };
    const p = join(folder('small-none', { 'tokenizer.json': none }), 'tokenizer.json');
    const e = dataError(() => loadTokenizer(p));
    expect(e.file).toBe(p);
    expect(e.message).toMatch(
      /cannot tell the BOS token: no tokenizer_config\.json next to it, and the file has none of <s>, <\|begin_of_text\|>/,
    );
    const bad = folder('small-badcfg', { 'tokenizer.json': json, 'tokenizer_config.json': { bos_token: '<s>', eos_token: '<|eot|>' } });
    const e2 = dataError(() => loadTokenizer(join(bad, 'tokenizer.json')));
    expect(e2.file).toBe(join(bad, 'tokenizer_config.json'));
    expect(e2.message).toMatch(/eos_token "<\|eot\|>" is not a token of .*tokenizer\.json/);
  });

  it('refuses ids that do not fit uint16 shards, naming the token', () => {
    const big = { ...json, added_tokens: [...(json.added_tokens as object[]), { id: MAX_VOCAB_SIZE, content: '<big>', special: true }] };
    const p = join(folder('small-big', { 'tokenizer.json': big }), 'tokenizer.json');
    expect(dataError(() => loadTokenizer(p)).message).toMatch(
      /"<big>" has id 65536; .*uint16 ids, so vocabularies of at most 65536 tokens/,
    );
    // The largest id that fits is fine.
    const edge = {
      ...json,
      added_tokens: [...(json.added_tokens as object[]), { id: MAX_VOCAB_SIZE - 1, content: '<edge>', special: true }],
    };
    expect(loadTokenizer(join(folder('small-edge', { 'tokenizer.json': edge }), 'tokenizer.json')).vocabSize).toBe(65536);
  });

  it('other bad files: not JSON, no model, a byte-level vocabulary missing bytes, BPE dropout', () => {
    const notJson = join(folder('bad-json', { 'tokenizer.json': '{"model": ' }), 'tokenizer.json');
    expect(dataError(() => loadTokenizer(notJson)).message).toMatch(/tokenizer file: expected JSON, found invalid JSON/);
    const noModel = join(folder('bad-model', { 'tokenizer.json': { added_tokens: [] } }), 'tokenizer.json');
    expect(dataError(() => loadTokenizer(noModel)).message).toMatch(
      /expected a Hugging Face tokenizer\.json: a JSON object with a "model" section/,
    );
    const vocab = { ...(json.model as { vocab: Record<string, number> }).vocab };
    delete vocab['Ā']; // the character of byte 0x00
    const holes = join(
      folder('bad-bytes', { 'tokenizer.json': { ...json, model: { ...(json.model as object), vocab } } }),
      'tokenizer.json',
    );
    expect(dataError(() => loadTokenizer(holes)).message).toMatch(/lacks 1 of the 256 byte characters \(first: "Ā"\)/);
    const dropout = join(
      folder('bad-dropout', { 'tokenizer.json': { ...json, model: { ...(json.model as object), dropout: 0.1 } } }),
      'tokenizer.json',
    );
    expect(dataError(() => loadTokenizer(dropout)).message).toMatch(/model\.dropout: expected null or 0/);
  });
});

/**
 * A sentencepiece-style (Llama 2-like) BPE: "▁" for spaces via the normalizer, no pre-tokenizer, byte
 * fallback to <0x00>..<0xFF>, <unk> <s> </s> at 0, 1, 2, decoder Replace + ByteFallback + Fuse + Strip.
 */
function llamaLike(): { json: Record<string, unknown>; vocab: Record<string, number> } {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '▁h', 'll', 'ell', '▁hell', 'or', '▁w'];
  pieces.forEach((p, i) => (vocab[p] = 259 + i));
  const special = specialToken;
  return {
    vocab,
    json: {
      version: '1.0',
      added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '▁' },
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: '<unk>',
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        vocab,
        merges: ['▁ h', 'l l', 'e ll', '▁h ell', 'o r', '▁ w'],
      },
    },
  };
}

describe('a tokenizer.json written here: sentencepiece-style BPE with byte fallback', () => {
  const { json, vocab } = llamaLike();
  const tok = loadTokenizer(join(folder('llama-like', { 'tokenizer.json': json }), 'tokenizer.json'));

  it('encodes as the merges say (worked by hand), unknown characters as their UTF-8 bytes', () => {
    // "hello world" -> "▁hello▁world" (one piece) -> (▁ h) (l l) (e ll) (▁h ell) (o r) (▁ w):
    //   ▁hell o ▁w or l d
    expect(Array.from(tok.encode('hello world'))).toEqual(['▁hell', 'o', '▁w', 'or', 'l', 'd'].map((p) => vocab[p]!));
    // é is no piece: byte fallback to C3 A9 (after ▁).
    expect(Array.from(tok.encode('é'))).toEqual([vocab['▁']!, 3 + 0xc3, 3 + 0xa9]);
    expect([tok.bos, tok.eos, tok.vocabSize]).toEqual([1, 2, 273]);
  });

  it('decode(encode(x)) === x, specials dropped', () => {
    for (const s of ['hello world', 'héllo wörld 😀 日本', 'a  b\n\tc', 'world hell']) {
      expect(tok.decode([1, ...tok.encode(s), 2])).toBe(s);
    }
  });

  it('GGUF export refuses it clearly (llama.cpp needs its sentencepiece model for this kind)', () => {
    expect(() => tok.ggufVocab()).toThrow(OspError);
    expect(() => tok.ggufVocab()).toThrow(/GGUF export supports byte-level BPE tokenizers .*byte fallback \(sentencepiece-style\)/);
  });
});

describe('GGUF pre-tokenizer names of tokenizer.json files', () => {
  const { json } = smallBpe();
  const llama3 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  const qwen2 = llama3.replace(String.raw`\p{N}{1,3}`, String.raw`\p{N}`);
  const split = (regex: string) => ({
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  });
  const make = (over: Record<string, unknown>, model: Record<string, unknown> = {}): Tokenizer =>
    new HfTokenizer(
      { ...json, ...over, model: { ...(json.model as object), ...model } },
      { spec: 't', kind: 'tokenizer.json', file: 'x/tokenizer.json', bos: 264, eos: 265 },
    );

  it("Llama 3's Split regex is llama-bpe (with ignore_merges), Qwen2's qwen2 (without a normalizer: llama.cpp has none)", () => {
    expect(make({ pre_tokenizer: split(llama3) }, { ignore_merges: true }).ggufVocab().pre).toBe('llama-bpe');
    expect(make({ pre_tokenizer: split(qwen2) }).ggufVocab().pre).toBe('qwen2');
    expect(() => make({ pre_tokenizer: split(qwen2), normalizer: { type: 'NFC' } }).ggufVocab()).toThrow(/llama\.cpp does not normalize/);
    // Both regexes tokenize through the library (its translation of Oniguruma's syntax).
    expect(
      make({ pre_tokenizer: split(llama3) }, { ignore_merges: true }).decode(
        make({ pre_tokenizer: split(llama3) }).encode("I'LL go 12345"),
      ),
    ).toBe("I'LL go 12345");
  });

  it('what llama.cpp would tokenize differently is refused, naming the file', () => {
    expect(() => make({ pre_tokenizer: split(llama3) }).ggufVocab()).toThrow(/x\/tokenizer\.json: .*without model\.ignore_merges/);
    expect(() => make({ pre_tokenizer: split(String.raw`\p{L}+|\s+`) }).ggufVocab()).toThrow(
      /Split regex .* is not one llama\.cpp implements/,
    );
    expect(() => make({ normalizer: { type: 'Lowercase' } }).ggufVocab()).toThrow(/normalizer/);
    expect(() => make({ pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, use_regex: true } }).ggufVocab()).toThrow(
      /add_prefix_space/,
    );
    expect(() => make({ pre_tokenizer: { type: 'Whitespace' } }).ggufVocab()).toThrow(/not byte-level/);
  });
});

describe('the registry', () => {
  it('an unknown name is a ConfigError listing the built-ins; a missing file a DataError naming it', () => {
    expect(() => loadTokenizer('gpt3')).toThrow(ConfigError);
    expect(() => loadTokenizer('gpt3')).toThrow(
      /tokenizer: unknown tokenizer "gpt3": expected 'bytes', 'gpt2' or the path of a Hugging Face tokenizer\.json/,
    );
    const missing = join(dir, 'nowhere', 'tokenizer.json');
    const e = dataError(() => loadTokenizer(missing));
    expect(e.file).toBe(missing);
    expect(e.message).toMatch(/tokenizer file: file not found/);
    expect(() => loadTokenizer('')).toThrow(ConfigError);
  });
});
