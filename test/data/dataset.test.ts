import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBrown, splitDocuments } from '../../src/data/brown.ts';
import { DataConfigSchema, loadDataset, TokenDataset } from '../../src/data/dataset.ts';
import { writeShard } from '../../src/data/sources.ts';
import { parseConfig } from '../../src/utils/parse_config.ts';
import { ConfigError, DataError } from '../../src/errors.ts';
import { tempDir } from '../helpers/scratch.ts';

const dir = tempDir('osp-data-dataset-');

const count = (tokens: Uint16Array, id: number) => tokens.reduce((n, t) => n + (t === id ? 1 : 0), 0);

describe('DataConfigSchema', () => {
  it('defaults to the Brown corpus with a 5% split', () => {
    expect(parseConfig(DataConfigSchema, {}, 'data')).toEqual({ source: 'brown', valFraction: 0.05, splitSeed: 0 });
  });

  it('names the field of every mistake', () => {
    const err = (input: unknown) => {
      try {
        parseConfig(DataConfigSchema, input, 'data');
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(err({ source: 'text' })).toMatch(/^data\.train: required when source is 'text'/);
    expect(err({ source: 'shards', train: ['a_*.bin'] })).toMatch(/^data\.val: required when source is 'shards'/);
    expect(err({ train: ['x.txt'] })).toMatch(/^data\.train: not used with source 'brown'/);
    expect(err({ source: 'csv' })).toMatch(/^data\.source: unknown value "csv"; valid choices: 'brown', 'text', 'jsonl', 'shards'/);
    expect(err({ valFraction: 1.5 })).toMatch(/^data\.valFraction/);
    expect(err({ trian: ['x'] })).toMatch(/^data\.trian: unknown key; valid keys here: source, train, val, valFraction, splitSeed/);
  });
});

describe('loadDataset', () => {
  it('Brown: train + val hold every document once, BOS/EOS framed', () => {
    const { train, val } = loadDataset({});
    const docs = loadBrown();
    const split = splitDocuments(docs);
    expect(train.name).toBe('brown/train');
    expect(val.name).toBe('brown/val');
    expect(count(train.tokens, 256)).toBe(split.train.length);
    expect(count(val.tokens, 257)).toBe(split.val.length);
    const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text, 'utf8'), 0);
    expect(train.length + val.length).toBe(bytes + 2 * docs.length);
    // Another seed gives another split of the same corpus.
    const other = loadDataset({ splitSeed: 1 });
    expect(other.val.length).not.toBe(val.length);
    expect(other.train.length + other.val.length).toBe(train.length + val.length);
  });

  it('jsonl without val: split by document from train', () => {
    const path = join(dir, 'many.jsonl');
    writeFileSync(path, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `doc ${i}` })).join('\n'));
    const { train, val } = loadDataset({ source: 'jsonl', train: [path], valFraction: 0.25, splitSeed: 2 });
    expect(train.name).toBe('jsonl/train');
    expect(count(train.tokens, 256) + count(val.tokens, 256)).toBe(40);
    expect(count(val.tokens, 256)).toBeGreaterThan(0);
  });

  it('text with an explicit val file', () => {
    const a = join(dir, 'a.txt');
    const v = join(dir, 'v.txt');
    writeFileSync(a, 'train text');
    writeFileSync(v, 'val');
    const { train, val } = loadDataset({ source: 'text', train: [a], val: [v] });
    expect(Array.from(val.tokens)).toEqual([256, 118, 97, 108, 257]);
    expect(train.length).toBe('train text'.length + 2);
  });

  it('a file of the other kind than the source is reported', () => {
    const j = join(dir, 'x.jsonl');
    writeFileSync(j, '{"text": "a"}\n{"text": "b"}\n');
    expect(() => loadDataset({ source: 'text', train: [j] })).toThrow(DataError);
    expect(() => loadDataset({ source: 'text', train: [j] })).toThrow(/x\.jsonl: source is 'text', so expected a \.txt file/);
  });

  it('shards: patterns expand in sorted order and concatenate', () => {
    const sd = join(dir, 'shards');
    mkdirSync(sd);
    // Written out of order; read back in name order.
    writeShard(join(sd, 'd_train_000002.bin'), Uint16Array.from([5, 6]));
    writeShard(join(sd, 'd_train_000000.bin'), Uint16Array.from([1, 2]));
    writeShard(join(sd, 'd_train_000001.bin'), Uint16Array.from([3, 4]));
    writeShard(join(sd, 'd_val_000000.bin'), Uint16Array.from([9, 8, 7]));
    const { train, val } = loadDataset({
      source: 'shards',
      train: [join(sd, 'd_train_*.bin'), join(sd, 'd_train_000000.bin')], // a file listed twice is read once
      val: [join(sd, 'd_val_00000?.bin')],
    });
    expect(Array.from(train.tokens)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(val.tokens)).toEqual([9, 8, 7]);
    expect(() =>
      loadDataset({ source: 'shards', train: [join(sd, 'd_train_*.bin')], val: [join(sd, 'd_val_*.bin')] }, { vocabSize: 8 }),
    ).toThrow(/d_val_000000\.bin: token 9 at position 0 is outside the vocabulary/);
    expect(() => TokenDataset.fromShards('t', [join(sd, 'nothing_*.bin')])).toThrow(/nothing_\*\.bin: no files match/);
    expect(() => TokenDataset.fromShards('t', [join(sd, 'missing.bin')])).toThrow(/missing\.bin: file not found/);
  });
});
