/**
 * Shards record their tokenizer (llm.c header slots 3-5: kind, fingerprint, vocab size), `osp data
 * prepare --tokenizer` writes them (checked through the CLI against the independent BPE reference), and
 * readers refuse shards made with another tokenizer, naming the file and both tokenizers. Shards that
 * record none (llm.c's, older osp-lab ones) are accepted and range-checked.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rowBos } from '../../src/data/batcher.ts';
import { loadDataset, TokenDataset } from '../../src/data/dataset.ts';
import {
  checkShardTokenizer,
  prepareShards,
  readJsonl,
  readShard,
  readShardFile,
  shardTokenizerInfo,
  writeShard,
} from '../../src/data/sources.ts';
import { splitDocuments } from '../../src/data/brown.ts';
import { readTextTokens } from '../../src/data/text.ts';
import { BYTES_FINGERPRINT, byteTokenizer, gpt2FilesDir, loadTokenizer } from '../../src/data/tokenizer.ts';
import { ConfigError, DataError } from '../../src/errors.ts';
import { bpeReference } from '../helpers/bpe_reference.ts';
import { tempDir } from '../helpers/scratch.ts';
import { caught } from '../helpers/caught.ts';

const dir = tempDir('osp-shards-tokenizer-');

const gpt2 = loadTokenizer('gpt2');
const ref = bpeReference(gpt2FilesDir());

/** The 256 int32 header slots of a shard file. */
function header(path: string): number[] {
  const b = readFileSync(path);
  return Array.from({ length: 256 }, (_, i) => b.readInt32LE(4 * i));
}

const dataError = (fn: () => unknown) => caught(fn, DataError);

const DOCS = Array.from(
  { length: 30 },
  (_, i) => `Document ${i}: it's ${i * 37} degrees in Zürich — ${'naïve café 😀 '.repeat(i % 4)}and they'll  say   "<|endoftext|>".`,
);

describe('the header records the tokenizer', () => {
  it('slots 3-5 hold kind, fingerprint (uint32) and vocab size; the rest stays llm.c (magic, version 1, count, zeros)', () => {
    const path = join(dir, 'gpt2.bin');
    writeShard(path, Uint16Array.from([50256, 15496, 995]), gpt2);
    const h = header(path);
    expect(h.slice(0, 3)).toEqual([20240520, 1, 3]);
    expect(h[3]).toBe(2);
    expect(h[4]! >>> 0).toBe(gpt2.fingerprint);
    expect(h[5]).toBe(50257);
    expect(h.slice(6).every((x) => x === 0)).toBe(true);
    expect(readShardFile(path)).toEqual({
      tokens: Uint16Array.from([50256, 15496, 995]),
      tokenizer: { kind: 'gpt2', fingerprint: gpt2.fingerprint, vocabSize: 50257 },
    });
    expect(Array.from(readShard(path))).toEqual([50256, 15496, 995]);

    const bytes = join(dir, 'bytes.bin');
    writeShard(bytes, Uint16Array.from([256, 104, 105, 257]), byteTokenizer);
    expect(header(bytes).slice(3, 6)).toEqual([1, BYTES_FINGERPRINT | 0, 258]);
    expect(readShardFile(bytes).tokenizer).toEqual({ kind: 'bytes', fingerprint: BYTES_FINGERPRINT, vocabSize: 258 });

    const none = join(dir, 'none.bin');
    writeShard(none, Uint16Array.from([1, 2]));
    expect(
      header(none)
        .slice(3)
        .every((x) => x === 0),
    ).toBe(true);
    expect(readShardFile(none).tokenizer).toBeUndefined();
  });

  it('a malformed record, or ids beyond the recorded vocabulary, is a DataError naming the file', () => {
    const path = join(dir, 'bad-record.bin');
    writeShard(path, Uint16Array.from([1]), gpt2);
    const b = readFileSync(path);
    b.writeInt32LE(9, 12);
    writeFileSync(path, b);
    expect(dataError(() => readShardFile(path)).message).toBe(
      `${path}: header slots 3-5 (osp-lab's tokenizer record: kind, fingerprint, vocab size) hold 9, ${gpt2.fingerprint}, 50257: ` +
        'expected all 0 (no tokenizer recorded) or a kind in 1-3, a non-zero fingerprint and a vocab size in [1, 65536]',
    );
    const over = join(dir, 'over.bin');
    writeShard(over, Uint16Array.from([65, 300]), byteTokenizer);
    expect(dataError(() => readShardFile(over)).message).toBe(
      `${over}: token 300 at position 1 is outside the vocabulary: expected ids below the recorded tokenizer's vocab size 258`,
    );
  });
});

describe('checkShardTokenizer', () => {
  const path = join(dir, 'check.bin');
  writeShard(path, Uint16Array.from([50256, 40]), gpt2);

  it('accepts its own tokenizer and shards that record none', () => {
    expect(() => checkShardTokenizer(gpt2, readShardFile(path).tokenizer, path)).not.toThrow();
    expect(() => checkShardTokenizer(byteTokenizer, undefined, path)).not.toThrow();
    expect(() => checkShardTokenizer(gpt2, shardTokenizerInfo(gpt2), path)).not.toThrow();
  });

  it('refuses another tokenizer, naming the shard file and both tokenizers', () => {
    const e = dataError(() => checkShardTokenizer(byteTokenizer, readShardFile(path).tokenizer, path));
    expect(e.file).toBe(path);
    expect(e.message).toBe(
      `${path}: made with tokenizer 'gpt2' (50257 ids, fingerprint 0x${gpt2.fingerprint.toString(16)}), but the tokenizer in use is ` +
        `'bytes' (258 ids, fingerprint 0x${BYTES_FINGERPRINT.toString(16)}): its ids would be read as other text; ` +
        'prepare the data again with --tokenizer bytes, or use the tokenizer the shards were made with',
    );
  });
});

describe('prepareShards with a tokenizer', () => {
  const jsonl = join(dir, 'docs.jsonl');
  writeFileSync(jsonl, DOCS.map((text) => JSON.stringify({ text })).join('\n') + '\n');

  it('gpt2: one <|endoftext|> before each document, ids as the reference BPE gives them, the tokenizer in every header', () => {
    const out = join(dir, 'prep-gpt2');
    const written = prepareShards([jsonl], out, { tokenizer: gpt2, shardTokens: 100, valFraction: 0.2, seed: 3 });
    const { train, val } = splitDocuments(readJsonl(jsonl), { valFraction: 0.2, seed: 3 });
    const expected = (docs: { text: string }[]) => docs.flatMap((d) => [50256, ...ref.encode(d.text)]);
    const concat = (split: string) => written.filter((w) => w.split === split).flatMap((w) => Array.from(readShard(w.path)));
    expect(written.filter((w) => w.split === 'train').length).toBeGreaterThan(3);
    expect(concat('train')).toEqual(expected(train));
    expect(concat('val')).toEqual(expected(val));
    for (const w of written) expect(header(w.path).slice(3, 6)).toEqual([2, gpt2.fingerprint | 0, 50257]);
    // The shards read back as a dataset with the gpt2 tokenizer, which they record.
    const ds = TokenDataset.fromShards('t', [join(out, 'data_train_*.bin')], { tokenizer: gpt2 });
    expect(Array.from(ds.tokens)).toEqual(expected(train));
    expect(ds.tokenizerInfo).toEqual(shardTokenizerInfo(gpt2));
  });

  it('bytes by default: ids unchanged (BOS + bytes + EOS), header records bytes', () => {
    const out = join(dir, 'prep-bytes');
    const written = prepareShards([jsonl], out, { valFraction: 0.2, seed: 3 });
    const { train } = splitDocuments(readJsonl(jsonl), { valFraction: 0.2, seed: 3 });
    const tokens = written.filter((w) => w.split === 'train').flatMap((w) => Array.from(readShard(w.path)));
    expect(tokens).toEqual(train.flatMap((d) => [256, ...new TextEncoder().encode(d.text), 257]));
    expect(header(written[0]!.path).slice(3, 6)).toEqual([1, BYTES_FINGERPRINT | 0, 258]);
  });
});

describe('readers refuse shards made with another tokenizer', () => {
  const out = join(dir, 'refuse');
  prepareShards([join(dir, 'docs.jsonl')], out, { tokenizer: gpt2, valFraction: 0.2 });
  const spec = { source: 'shards' as const, train: [join(out, 'data_train_*.bin')], val: [join(out, 'data_val_*.bin')] };

  it('loadDataset with the bytes tokenizer names the first shard file and both tokenizers', () => {
    const e = dataError(() => loadDataset(spec, { tokenizer: byteTokenizer }));
    expect(e.file).toBe(join(out, 'data_train_000000.bin'));
    expect(e.message).toMatch(/made with tokenizer 'gpt2' \(50257 ids, .*\), but the tokenizer in use is 'bytes' \(258 ids/);
  });

  it('loadDataset with gpt2 reads them; a model vocabulary smaller than the tokenizer is a ConfigError', () => {
    const { train, val } = loadDataset(spec, { tokenizer: gpt2, vocabSize: 50304 });
    expect(train.tokens[0]).toBe(50256);
    expect(val.tokenizerInfo?.kind).toBe('gpt2');
    expect(() => loadDataset(spec, { tokenizer: gpt2, vocabSize: 258 })).toThrow(ConfigError);
    expect(() => loadDataset(spec, { tokenizer: gpt2, vocabSize: 258 })).toThrow(/^model\.vocabSize: expected at least 50257/);
  });

  it('shards without a record are accepted by any tokenizer, range-checked against its vocabulary', () => {
    const d = join(dir, 'unrecorded');
    mkdirSync(d);
    writeShard(join(d, 'u_train_000000.bin'), Uint16Array.from([50256, 31373, 995]));
    writeShard(join(d, 'u_val_000000.bin'), Uint16Array.from([50256, 995, 300]));
    const u = { source: 'shards' as const, train: [join(d, 'u_train_*.bin')], val: [join(d, 'u_val_*.bin')] };
    const { train } = loadDataset(u, { tokenizer: gpt2 });
    expect(Array.from(train.tokens)).toEqual([50256, 31373, 995]);
    expect(train.tokenizerInfo).toBeUndefined();
    expect(dataError(() => loadDataset(u, { tokenizer: byteTokenizer })).message).toBe(
      `${join(d, 'u_train_000000.bin')}: token 50256 at position 0 is outside the vocabulary: expected ids below vocabSize 258`,
    );
  });

  it('shards of two tokenizers are never mixed in one dataset, even without a tokenizer given', () => {
    const d = join(dir, 'mixed');
    mkdirSync(d);
    writeShard(join(d, 'm_000000.bin'), Uint16Array.from([256, 257]), byteTokenizer);
    writeShard(join(d, 'm_000001.bin'), Uint16Array.from([50256]), gpt2);
    const e = dataError(() => TokenDataset.fromShards('m', [join(d, 'm_*.bin')]));
    expect(e.file).toBe(join(d, 'm_000001.bin'));
    expect(e.message).toMatch(/made with tokenizer 'gpt2' .*but .*m_000000\.bin of the same dataset with 'bytes' .*cannot be mixed/);
  });

  it('text and jsonl sources tokenize with the given tokenizer (default bytes)', () => {
    const txt = join(dir, 'one.txt');
    writeFileSync(txt, DOCS.join('\n'));
    const g = loadDataset({ source: 'text', train: [txt], valFraction: 0.1 }, { tokenizer: gpt2 });
    expect(g.train.tokens[0]).toBe(50256);
    expect(Array.from(g.train.tokens.subarray(1))).toEqual(ref.encode(gpt2.decode(g.train.tokens)));
    expect(g.train.tokenizerInfo).toEqual(shardTokenizerInfo(gpt2));
    const b = loadDataset({ source: 'text', train: [txt], valFraction: 0.1 });
    expect(b.train.tokens[0]).toBe(256);
    expect(b.train.tokens[b.train.length - 1]).toBe(257);
    expect(b.train.tokenizerInfo?.kind).toBe('bytes');
  });
});

describe('evaluation text and row BOS take the tokenizer', () => {
  it('readTextTokens: BOS then the ids; bytes keep the file as stored (a byte-order mark included)', () => {
    const path = join(dir, 'eval.txt');
    writeFileSync(path, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("It's 42 °C.\n", 'utf8')]));
    expect(Array.from(readTextTokens(path))).toEqual([256, ...readFileSync(path)]);
    expect(Array.from(readTextTokens(path, gpt2))).toEqual([50256, ...ref.encode("It's 42 °C.\n")]);
  });

  it('rowBos is the tokenizer BOS when batch.bos is on', () => {
    expect(rowBos({ batch: { bos: true } })).toBe(256);
    expect(rowBos({ batch: { bos: true } }, gpt2)).toBe(50256);
    expect(rowBos({ batch: { bos: false } }, gpt2)).toBeUndefined();
  });
});

describe('osp data prepare --tokenizer (the command line)', () => {
  function osp(...args: string[]) {
    const r = spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  it('gpt2: shards whose headers record gpt2 and whose ids are GPT-2 BPE of the documents', () => {
    const out = join(dir, 'cli-gpt2');
    const val = join(dir, 'cli-val.txt');
    writeFileSync(val, 'Held-out text: ünïcödé, 12345, and emoji 😀.');
    const p = osp('data', 'prepare', join(dir, 'docs.jsonl'), '--val', val, '--tokenizer', 'gpt2', '--out', out, '--shard-tokens', '500');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toContain(`tokenizer 'gpt2' (50257 ids, fingerprint 0x${gpt2.fingerprint.toString(16)})`);
    const files = readdirSync(out).sort();
    expect(files.length).toBeGreaterThan(2);
    for (const f of files) expect(header(join(out, f)).slice(3, 6)).toEqual([2, gpt2.fingerprint | 0, 50257]);
    expect(Array.from(readShard(join(out, 'data_val_000000.bin')))).toEqual([50256, ...ref.encode(readFileSync(val, 'utf8'))]);
    const train = files.filter((f) => f.includes('train')).flatMap((f) => Array.from(readShard(join(out, f))));
    expect(train).toEqual(DOCS.flatMap((d) => [50256, ...ref.encode(d)]));
    expect(p.stdout).toMatch(new RegExp(`data_val_000000\\.bin\\t${1 + ref.encode(readFileSync(val, 'utf8')).length} tokens`));
  });

  it('a tokenizer.json path works; an unknown name exits 2 naming the field and the choices', () => {
    const tdir = join(dir, 'cli-tok');
    mkdirSync(tdir);
    for (const [name, text] of byteTokenizer.hfFiles()) writeFileSync(join(tdir, name), text);
    const out = join(dir, 'cli-file');
    const p = osp('data', 'prepare', join(dir, 'docs.jsonl'), '--tokenizer', join(tdir, 'tokenizer.json'), '--out', out);
    expect(p.code, p.stderr).toBe(0);
    // The byte tokenizer's own files: same fingerprint and ids as bytes, kind "tokenizer.json" (3).
    const shard = join(out, 'data_train_000000.bin');
    expect(header(shard).slice(3, 6)).toEqual([3, BYTES_FINGERPRINT | 0, 258]);
    expect(() => checkShardTokenizer(byteTokenizer, readShardFile(shard).tokenizer, shard)).not.toThrow();
    const bad = osp('data', 'prepare', join(dir, 'docs.jsonl'), '--tokenizer', 'gpt5', '--out', join(dir, 'cli-bad'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      `tokenizer: unknown tokenizer "gpt5": expected 'bytes', 'gpt2' or the path of a Hugging Face tokenizer.json`,
    );
  });
});
