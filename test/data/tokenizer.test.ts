import { describe, expect, it } from 'vitest';
import { ByteTokenizer, byteTokenizer, tokenizeDocuments } from '../../src/data/tokenizer.ts';

const tok = new ByteTokenizer();

describe('ByteTokenizer', () => {
  it('has 256 byte ids plus BOS 256 and EOS 257', () => {
    expect(tok.vocabSize).toBe(258);
    expect(tok.bos).toBe(256);
    expect(tok.eos).toBe(257);
  });

  it('encodes ASCII as its byte values and round-trips', () => {
    const ids = tok.encode('Hi, you!');
    expect(Array.from(ids)).toEqual([72, 105, 44, 32, 121, 111, 117, 33]);
    expect(tok.decode(ids)).toBe('Hi, you!');
  });

  it('encodes multi-byte UTF-8 (accents, CJK, emoji) byte by byte and round-trips', () => {
    // Hand-written UTF-8: é = C3 A9, 水 = E6 B0 B4, 😀 (U+1F600) = F0 9F 98 80.
    expect(Array.from(tok.encode('é'))).toEqual([0xc3, 0xa9]);
    expect(Array.from(tok.encode('水'))).toEqual([0xe6, 0xb0, 0xb4]);
    expect(Array.from(tok.encode('😀'))).toEqual([0xf0, 0x9f, 0x98, 0x80]);
    for (const s of ['café crème brûlée', 'Ελληνικά', '日本語テキスト', 'mixed 😀👍🏽 text', '']) {
      const ids = tok.encode(s);
      expect(ids.length).toBe(Buffer.byteLength(s, 'utf8'));
      expect(tok.decode(ids)).toBe(s);
    }
  });

  it('decode drops BOS and EOS wherever they are', () => {
    expect(tok.decode([256, 104, 257, 256, 105, 257])).toBe('hi');
    // A special in the middle of a multi-byte character is dropped without breaking the character.
    expect(tok.decode([0xc3, 257, 0xa9])).toBe('é');
  });

  it('decode replaces invalid UTF-8 with U+FFFD as TextDecoder does', () => {
    expect(tok.decode([0x61, 0xff, 0x62])).toBe('a\uFFFDb');
    expect(tok.decode([0xf0, 0x9f])).toBe('\uFFFD'); // a truncated emoji
  });

  it('decode rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([65, 258])).toThrow(/position 1.*\[0, 258\).*258/);
    expect(() => tok.decode([-1])).toThrow(RangeError);
  });
});

describe('tokenizeDocuments', () => {
  it('wraps each document in BOS ... EOS and concatenates', () => {
    expect(Array.from(tokenizeDocuments(['hi', '', 'é']))).toEqual([256, 104, 105, 257, 256, 257, 256, 0xc3, 0xa9, 257]);
  });

  it('decodes back to the concatenated documents', () => {
    const docs = ['first 😀', 'second'];
    const ids = tokenizeDocuments(docs, byteTokenizer);
    expect(ids.filter((t) => t === 256).length).toBe(2);
    expect(byteTokenizer.decode(ids)).toBe(docs.join(''));
  });
});
