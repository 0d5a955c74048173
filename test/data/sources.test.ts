import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firstInvalidUtf8, prepareShards, readJsonl, readShard, readTextFile, writeShard } from '../../src/data/sources.ts';
import { splitDocuments } from '../../src/data/brown.ts';
import { byteTokenizer, tokenizeDocuments } from '../../src/data/tokenizer.ts';
import { ConfigError, DataError } from '../../src/errors.ts';
import { tempDir } from '../helpers/scratch.ts';
import { caught } from '../helpers/caught.ts';

const dir = tempDir('osp-data-sources-');

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const dataError = (fn: () => unknown) => caught(fn, DataError);

describe('readTextFile', () => {
  it('reads one UTF-8 document per file, id = path', () => {
    const path = file('hello.txt', 'Hello, wörld 😀\nsecond line\n');
    expect(readTextFile(path)).toEqual([{ id: path, text: 'Hello, wörld 😀\nsecond line\n' }]);
  });

  it('missing file', () => {
    const path = join(dir, 'nope.txt');
    const e = dataError(() => readTextFile(path));
    expect(e.file).toBe(path);
    expect(e.message).toBe(`${path}: file not found`);
  });

  it('empty and whitespace-only files', () => {
    const empty = file('empty.txt', '');
    expect(dataError(() => readTextFile(empty)).message).toMatch(new RegExp(`^${empty}: file is empty`));
    const blank = file('blank.txt', ' \n\t\n');
    expect(dataError(() => readTextFile(blank)).message).toMatch(/blank\.txt: file is empty.*4 bytes of whitespace/);
  });

  it('invalid UTF-8 names the file and the byte offset', () => {
    // 'ab' then a Latin-1 'é' (0xE9, not UTF-8), then 'c'.
    const path = file('latin1.txt', new Uint8Array([0x61, 0x62, 0xe9, 0x63]));
    const e = dataError(() => readTextFile(path));
    expect(e.file).toBe(path);
    expect(e.message).toMatch(/expected UTF-8 text, found an invalid byte sequence at byte 2 \(0xe9\)/);
  });

  it('a directory is not a file', () => {
    expect(dataError(() => readTextFile(dir)).message).toMatch(/expected a file, found a directory/);
  });
});

describe('firstInvalidUtf8 agrees with the strict TextDecoder', () => {
  const strict = new TextDecoder('utf-8', { fatal: true });
  const cases: number[][] = [
    [0x41, 0xc3, 0xa9], // valid é
    [0xf0, 0x9f, 0x98, 0x80], // valid emoji
    [0xc0, 0x80], // overlong NUL
    [0xe0, 0x80, 0x80], // overlong
    [0xed, 0xa0, 0x80], // surrogate U+D800
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0x41, 0xe6, 0xb0], // truncated at the end
    [0x80], // lone continuation byte
    [0xff],
  ];
  for (const c of cases) {
    it(`bytes ${c.map((b) => b.toString(16)).join(' ')}`, () => {
      let valid = true;
      try {
        strict.decode(new Uint8Array(c));
      } catch {
        valid = false;
      }
      expect(firstInvalidUtf8(new Uint8Array(c)) === -1).toBe(valid);
    });
  }
});

describe('readJsonl', () => {
  it('reads one document per line, skipping blank lines and CRLF endings', () => {
    const path = file('ok.jsonl', '{"text": "one"}\r\n\n  \n{"text": "two 😀", "meta": 1}\n');
    expect(readJsonl(path)).toEqual([
      { id: `${path}:1`, text: 'one' },
      { id: `${path}:4`, text: 'two 😀' },
    ]);
  });

  it('reads another field when asked', () => {
    const path = file('content.jsonl', '{"content": "x"}\n');
    expect(readJsonl(path, 'content').map((d) => d.text)).toEqual(['x']);
  });

  it('a line that is not JSON names the file and the line number', () => {
    const path = file('bad.jsonl', '{"text": "a"}\n\n{"text": oops}\n');
    const e = dataError(() => readJsonl(path));
    expect(e.file).toBe(path);
    expect(e.message).toMatch(new RegExp(`^${path}: line 3: expected a JSON object, found invalid JSON`));
  });

  it('a line without a string text field names the line and what it found', () => {
    const missing = file('missing.jsonl', '{"text": "a"}\n{"body": "b", "id": 2}\n');
    expect(dataError(() => readJsonl(missing)).message).toBe(
      `${missing}: line 2: expected a string "text" field, found no "text" field (keys: body, id)`,
    );
    const number = file('number.jsonl', '{"text": 5}\n');
    expect(dataError(() => readJsonl(number)).message).toMatch(/line 1: expected a string "text" field, found a number/);
    const array = file('array.jsonl', '{"text": "a"}\n{"text": "b"}\n["text"]\n');
    expect(dataError(() => readJsonl(array)).message).toMatch(/array\.jsonl: line 3: expected a JSON object .*found an array/);
  });

  it('no documents, empty file, missing file', () => {
    const blank = file('blank.jsonl', '\n\n   \n');
    expect(dataError(() => readJsonl(blank)).message).toMatch(/blank\.jsonl: no documents/);
    const empty = file('empty.jsonl', '');
    expect(dataError(() => readJsonl(empty)).message).toMatch(/empty\.jsonl: file is empty/);
    expect(dataError(() => readJsonl(join(dir, 'gone.jsonl'))).message).toMatch(/gone\.jsonl: file not found/);
  });
});

describe('shards', () => {
  it('round-trips tokens, including ids above the byte vocabulary', () => {
    const tokens = Uint16Array.from([256, 0, 1, 255, 257, 65535, 50256, 7]);
    const path = join(dir, 'rt.bin');
    writeShard(path, tokens);
    expect(Array.from(readShard(path))).toEqual(Array.from(tokens));
    // The empty shard is legal too.
    writeShard(join(dir, 'empty.bin'), new Uint16Array(0));
    expect(readShard(join(dir, 'empty.bin')).length).toBe(0);
  });

  it('writes the llm.c header field by field, then uint16 little-endian tokens', () => {
    const path = join(dir, 'header.bin');
    writeShard(path, Uint16Array.from([0x0102, 0xa0b0, 3]));
    const bytes = readFileSync(path);
    expect(bytes.length).toBe(1024 + 6);
    const expected = new Int32Array(256);
    expected[0] = 20240520;
    expected[1] = 1;
    expected[2] = 3;
    const header = new DataView(bytes.buffer, bytes.byteOffset, 1024);
    for (let i = 0; i < 256; i++) expect(header.getInt32(4 * i, true), `header[${i}]`).toBe(expected[i]);
    // 20240520 = 0x0134D888, least significant byte first.
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x88, 0xd8, 0x34, 0x01]);
    expect(Array.from(bytes.subarray(1024))).toEqual([0x02, 0x01, 0xb0, 0xa0, 0x03, 0x00]);
  });

  it('leaves no temp file behind', () => {
    writeShard(join(dir, 'clean.bin'), Uint16Array.from([1, 2]));
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  function shardBytes(magic: number, version: number, count: number, tokens: number): Uint8Array {
    const b = Buffer.alloc(1024 + 2 * tokens);
    b.writeInt32LE(magic, 0);
    b.writeInt32LE(version, 4);
    b.writeInt32LE(count, 8);
    return b;
  }

  it('a file shorter than the header', () => {
    const path = file('short.bin', new Uint8Array(100));
    expect(dataError(() => readShard(path)).message).toBe(
      `${path}: expected an llm.c token shard of at least 1024 bytes (the header), found 100 bytes`,
    );
  });

  it('wrong magic says expected 20240520 and what was found', () => {
    const path = file('magic.bin', shardBytes(12345, 1, 0, 0));
    expect(dataError(() => readShard(path)).message).toBe(`${path}: bad magic number: expected 20240520 (llm.c token shard), found 12345`);
  });

  it('unsupported version', () => {
    const path = file('v2.bin', shardBytes(20240520, 2, 0, 0));
    expect(dataError(() => readShard(path)).message).toMatch(/unsupported shard version: expected 1, found 2/);
  });

  it('a truncated shard (count disagrees with the size)', () => {
    const path = join(dir, 'trunc.bin');
    writeShard(path, new Uint16Array(10));
    writeFileSync(path, readFileSync(path).subarray(0, 1024 + 15)); // 7.5 tokens left
    expect(dataError(() => readShard(path)).message).toMatch(
      /trunc\.bin: header says 10 tokens, so the file should be 1044 bytes, but it is 1039 bytes/,
    );
    const long = file('long.bin', shardBytes(20240520, 1, 2, 3));
    expect(dataError(() => readShard(long)).message).toMatch(/header says 2 tokens/);
  });

  it('checks ids against vocabSize when asked and reports the first bad one', () => {
    const path = join(dir, 'vocab.bin');
    writeShard(path, Uint16Array.from([1, 257, 300, 258]));
    expect(readShard(path, { vocabSize: 50257 }).length).toBe(4);
    expect(dataError(() => readShard(path, { vocabSize: 258 })).message).toBe(
      `${path}: token 300 at position 2 is outside the vocabulary: expected ids below vocabSize 258`,
    );
    expect(() => readShard(path, { vocabSize: 0 })).toThrow(ConfigError);
  });
});

describe('prepareShards', () => {
  const inputs = () => {
    const sub = mkdtempSync(join(dir, 'in-'));
    const docs: string[] = [];
    const lines: string[] = [];
    for (let i = 0; i < 60; i++) {
      const text = `Document number ${i}: ${'lorem ipsum é '.repeat(i % 7)}end.`;
      docs.push(text);
      lines.push(JSON.stringify({ text }));
    }
    const jsonl = join(sub, 'docs.jsonl');
    writeFileSync(jsonl, lines.join('\n') + '\n');
    const txt = join(sub, 'story.txt');
    writeFileSync(txt, 'A whole text file is one document.\n');
    return { jsonl, txt, docs };
  };

  it('writes val then train shards of shardTokens that hold exactly the split documents', () => {
    const { jsonl, txt } = inputs();
    const out = join(dir, 'out');
    const written = prepareShards([jsonl, txt], out, { shardTokens: 1000, valFraction: 0.2, seed: 5, prefix: 'mini' });

    // Oracle: the same documents split and tokenized directly.
    const all = [...readJsonl(jsonl), ...readTextFile(txt)];
    const { train, val } = splitDocuments(all, { valFraction: 0.2, seed: 5 });
    const trainTokens = tokenizeDocuments(train.map((d) => d.text));
    const valTokens = tokenizeDocuments(val.map((d) => d.text));

    const names = written.map((w) => w.path.slice(out.length + 1));
    const trainShards = Math.ceil(trainTokens.length / 1000);
    const valShards = Math.ceil(valTokens.length / 1000);
    expect(trainShards).toBeGreaterThan(1);
    expect(names).toEqual([
      ...Array.from({ length: valShards }, (_, i) => `mini_val_${String(i).padStart(6, '0')}.bin`),
      ...Array.from({ length: trainShards }, (_, i) => `mini_train_${String(i).padStart(6, '0')}.bin`),
    ]);
    expect(readdirSync(out).sort()).toEqual([...names].sort());
    for (const w of written) {
      expect(w.tokens).toBe(readShard(w.path).length);
      expect(w.tokens).toBeLessThanOrEqual(1000);
    }
    const concat = (split: 'train' | 'val') =>
      written.filter((w) => w.split === split).flatMap((w) => Array.from(readShard(w.path, { vocabSize: 258 })));
    expect(concat('train')).toEqual(Array.from(trainTokens));
    expect(concat('val')).toEqual(Array.from(valTokens));
    // Decoding the val stream gives back its documents' text.
    expect(byteTokenizer.decode(concat('val'))).toBe(val.map((d) => d.text).join(''));
  });

  it('refuses to mix with an earlier run unless told to overwrite', () => {
    const { jsonl } = inputs();
    const out = join(dir, 'out2');
    prepareShards([jsonl], out, { shardTokens: 200 });
    const before = readdirSync(out).length;
    expect(dataError(() => prepareShards([jsonl], out, { shardTokens: 5000 })).message).toMatch(
      /already holds shards with prefix 'data' \(data_train_000000\.bin/,
    );
    const again = prepareShards([jsonl], out, { shardTokens: 5000, overwrite: true });
    expect(readdirSync(out).length).toBe(again.length);
    expect(again.length).toBeLessThan(before);
  });

  it('rejects unsupported extensions, listing the supported ones', () => {
    const csv = file('table.csv', 'a,b\n');
    expect(dataError(() => prepareShards([csv], join(dir, 'out3'))).message).toBe(
      `${csv}: unsupported file type '.csv'; supported: .txt, .jsonl`,
    );
  });

  it('splits a single document by position (too short: says so) and needs valid options', () => {
    const one = file('one.txt', 'abc');
    expect(dataError(() => prepareShards([one], join(dir, 'out4'))).message).toBe(
      `${one}: too short to split into train and val (3 characters); give a separate validation file`,
    );
    // By characters, never inside one: the val side of "héllo wörld" x 20 at 0.1 starts on a character.
    const text = 'héllo wörld '.repeat(20);
    const long = file('long.txt', text);
    const lines: string[] = [];
    const written = prepareShards([long], join(dir, 'out4b'), { valFraction: 0.1, log: (l) => lines.push(l) });
    const chars = [...text].length;
    const valText = [...text].slice(Math.round(chars * 0.9)).join('');
    const val = written.find((w) => w.split === 'val')!;
    expect(val.tokens).toBe(new TextEncoder().encode(valText).length + 2); // BOS + bytes + EOS
    expect(lines[0]).toContain('its last 10.0% (by characters) is the validation split');
    const { jsonl } = inputs();
    expect(() => prepareShards([jsonl], join(dir, 'out5'), { shardTokens: 0 })).toThrow(ConfigError);
    expect(() => prepareShards([jsonl], join(dir, 'out5'), { prefix: '../x' })).toThrow(/prefix/);
  });
});
