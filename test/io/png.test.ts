import { crc32 as zlibCrc32, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { crc32, encodePng } from '../../src/io/png.ts';

interface Chunk {
  type: string;
  data: Uint8Array;
}

/** Splits a PNG into chunks, checking the signature and every chunk CRC against node:zlib's crc32. */
function chunks(png: Uint8Array): Chunk[] {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Chunk[] = [];
  let pos = 8;
  while (pos < png.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...png.subarray(pos + 4, pos + 8));
    const data = png.subarray(pos + 8, pos + 8 + len);
    expect(view.getUint32(pos + 8 + len)).toBe(zlibCrc32(png.subarray(pos + 4, pos + 8 + len)));
    out.push({ type, data });
    pos += 12 + len;
  }
  expect(pos).toBe(png.length);
  return out;
}

/** Decodes 8-bit non-interlaced PNG pixels, undoing all five row filters (an independent oracle). */
function decodePixels(png: Uint8Array): { width: number; height: number; channels: number; pixels: Uint8Array } {
  const cs = chunks(png);
  expect(cs[0]!.type).toBe('IHDR');
  expect(cs[cs.length - 1]!.type).toBe('IEND');
  expect(cs[cs.length - 1]!.data.length).toBe(0);
  const ihdr = new DataView(cs[0]!.data.buffer, cs[0]!.data.byteOffset, 13);
  const width = ihdr.getUint32(0);
  const height = ihdr.getUint32(4);
  expect(ihdr.getUint8(8)).toBe(8);
  const channels = { 0: 1, 2: 3, 6: 4 }[ihdr.getUint8(9)]!;
  expect([ihdr.getUint8(10), ihdr.getUint8(11), ihdr.getUint8(12)]).toEqual([0, 0, 0]);
  const idat = Buffer.concat(cs.filter((c) => c.type === 'IDAT').map((c) => c.data));
  const raw = inflateSync(idat);
  const stride = width * channels;
  expect(raw.length).toBe((stride + 1) * height);
  const px = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const r = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= channels ? px[y * stride + x - channels]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f];
      expect(pred).toBeDefined();
      px[y * stride + x] = (r + pred!) & 0xff;
    }
  }
  return { width, height, channels, pixels: px };
}

describe('encodePng', () => {
  for (const channels of [1, 3, 4] as const) {
    it(`round-trips ${channels}-channel pixels`, () => {
      const width = 7;
      const height = 5;
      const pixels = new Uint8Array(width * height * channels).map((_, i) => (i * 73 + 11) & 0xff);
      const d = decodePixels(encodePng(width, height, pixels, channels));
      expect(d.width).toBe(width);
      expect(d.height).toBe(height);
      expect(d.channels).toBe(channels);
      expect([...d.pixels]).toEqual([...pixels]);
    });
  }

  it('handles a 1x1 image and a wide one', () => {
    expect([...decodePixels(encodePng(1, 1, new Uint8Array([200]), 1)).pixels]).toEqual([200]);
    const wide = new Uint8Array(1000 * 2 * 4).map((_, i) => i % 251);
    expect(Buffer.from(decodePixels(encodePng(1000, 2, wide, 4)).pixels).equals(Buffer.from(wide))).toBe(true);
  });

  it('rejects bad sizes with a ShapeError', () => {
    expect(() => encodePng(2, 2, new Uint8Array(11), 3)).toThrow(ShapeError);
    expect(() => encodePng(2, 2, new Uint8Array(11), 3)).toThrow(/12 bytes, got 11/);
    expect(() => encodePng(0, 2, new Uint8Array(0), 1)).toThrow(ShapeError);
    expect(() => encodePng(1.5, 2, new Uint8Array(3), 1)).toThrow(ShapeError);
    expect(() => encodePng(1, 1, new Uint8Array(2), 2 as 1)).toThrow(/channels/);
  });

  it('exports a CRC-32 that matches the check value and zlib', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    const b = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
    expect(crc32(b)).toBe(zlibCrc32(b));
  });
});
