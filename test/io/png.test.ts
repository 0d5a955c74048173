import { crc32 as zlibCrc32, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { Raster, crc32, encodePng, heatmapFigurePng, lineFigurePng, niceTicks, tickText, viridisRgb } from '../../src/io/png.ts';

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

// ---------------------------------------------------------------------------------------------------
// Figures for TensorBoard: pixels decoded by the oracle above, text found by matching the glyphs the
// font draws for a string against the figure.

type Img = { width: number; height: number; channels: number; pixels: Uint8Array };

/**
 * The figures' pixels: the encoder writes filter 0 (none) on every row, so after the chunk checks of
 * chunks() the rows are the inflated data minus their filter byte (decodePixels, which checks every
 * byte, is too slow for figure-sized images).
 */
function decodeFigure(png: Uint8Array): Img {
  const cs = chunks(png);
  const ihdr = new DataView(cs[0]!.data.buffer, cs[0]!.data.byteOffset, 13);
  const width = ihdr.getUint32(0);
  const height = ihdr.getUint32(4);
  expect(ihdr.getUint8(9)).toBe(2);
  const raw = inflateSync(Buffer.concat(cs.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  expect(raw.length).toBe((width * 3 + 1) * height);
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width * 3 + 1)]).toBe(0);
    pixels.set(raw.subarray(y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1)), y * width * 3);
  }
  return { width, height, channels: 3, pixels };
}
const rgbAt = (img: Img, x: number, y: number) => [...img.pixels.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
const isInk = (img: Img, x: number, y: number) => rgbAt(img, x, y).every((v) => v < 80);

/** Whether `text`, drawn by the figure font at scale 2, appears somewhere in the figure. */
function containsText(img: Img, text: string): boolean {
  const w = Raster.textWidth(text, 2);
  const r = new Raster(w, 14, [255, 255, 255]);
  r.text(text, 0, 0, [0, 0, 0], { scale: 2 });
  const ink: [number, number][] = [];
  for (let y = 0; y < 14; y++) for (let x = 0; x < w; x++) if (r.pixels[(y * w + x) * 3] === 0) ink.push([x, y]);
  for (let oy = 0; oy + 14 <= img.height; oy++) {
    for (let ox = 0; ox + w <= img.width; ox++) {
      if (ink.every(([x, y]) => isInk(img, ox + x, oy + y))) return true;
    }
  }
  return false;
}

describe('figure font', () => {
  it('has a distinct glyph for every digit, letter and . - + e (any case)', () => {
    const chars = '0123456789abcdefghijklmnopqrstuvwxyz.-+';
    const bitmaps = [...chars].map((ch) => {
      const r = new Raster(5, 7);
      r.text(ch, 0, 0, [0, 0, 0]);
      return Buffer.from(r.pixels).toString('hex');
    });
    const blank = Buffer.from(new Raster(5, 7).pixels).toString('hex');
    bitmaps.forEach((b, i) => expect(b, chars[i]).not.toBe(blank));
    expect(new Set(bitmaps).size).toBe(chars.length);
    const upper = new Raster(5, 7);
    upper.text('E', 0, 0, [0, 0, 0]);
    expect(Buffer.from(upper.pixels).toString('hex')).toBe(bitmaps[chars.indexOf('e')]);
  });

  it('vertical text is the horizontal text turned a quarter counter-clockwise', () => {
    const h = new Raster(17, 7);
    h.text('a1.', 0, 0, [0, 0, 0]);
    const v = new Raster(7, 17);
    v.text('a1.', 0, 0, [0, 0, 0], { vertical: true });
    for (let y = 0; y < 7; y++) {
      for (let x = 0; x < 17; x++) expect(v.pixels[((16 - x) * 7 + y) * 3]).toBe(h.pixels[(y * 17 + x) * 3]);
    }
  });

  it('ticks and tick labels are short and round', () => {
    expect(niceTicks(0, 63, 4)).toEqual([0, 20, 40, 60]);
    expect(niceTicks(-0.3, 1.1, 5)).toEqual([0, 0.5, 1]);
    expect(niceTicks(-0.3, 1.1, 10)).toEqual([-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(tickText(0.001)).toBe('1e-3');
    expect(tickText(25000)).toBe('2.5e4');
    expect(tickText(37.46)).toBe('37.5');
  });
});

describe('heatmapFigurePng', () => {
  const rows = [0, 1, 2].map((l) => Float64Array.from({ length: 32 }, (_, i) => (i === 5 && l === 1 ? 50 : 0.5 + ((i + l) % 4) * 0.25)));
  const fig = heatmapFigurePng(rows, {
    title: 'channel rms, step 7',
    rowLabels: ['embed', '0', 'final'],
    xLabel: 'channel',
    yLabel: 'layer',
    colorLabel: 'rms',
  });
  const img = decodeFigure(fig.png);

  it('is a valid RGB PNG larger than its cells, with the value range', () => {
    expect(img.channels).toBe(3);
    expect([img.width, img.height]).toEqual([fig.width, fig.height]);
    expect(fig.width).toBeGreaterThan(32 * 4 + 100);
    expect(fig.range).toEqual([0.5, 50]);
  });

  it('draws the cells in viridis: the largest value in the top colour', () => {
    const top = viridisRgb(1);
    const bottom = viridisRgb(0);
    let topCount = 0;
    let bottomCount = 0;
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const c = rgbAt(img, x, y);
        if (c.every((v, k) => v === top[k])) topCount++;
        if (c.every((v, k) => v === bottom[k])) bottomCount++;
      }
    }
    // The one cell at 50 and the top of the colour bar; the smallest value and the bar's bottom.
    expect(topCount).toBeGreaterThan(10);
    expect(bottomCount).toBeGreaterThan(10);
  });

  it("writes the title, row labels, axis titles, channel ticks and the colour bar's min and max", () => {
    for (const text of ['channel rms, step 7', 'embed', 'final', 'channel', '0', '20', '50', '0.5']) {
      expect(containsText(img, text), text).toBe(true);
    }
  });

  it('rejects empty and ragged input', () => {
    expect(() => heatmapFigurePng([])).toThrow(ShapeError);
    expect(() => heatmapFigurePng([new Float64Array(3), new Float64Array(2)])).toThrow(/row 1/);
  });
});

describe('lineFigurePng', () => {
  it('draws a log density with eigenvalue ticks, decade labels and axis titles; zeros do not break it', () => {
    const grid = Array.from({ length: 100 }, (_, i) => i * 0.5);
    const density = grid.map((x) => (x > 40 ? 0 : Math.exp(-((x - 10) ** 2) / 8)));
    const fig = lineFigurePng(grid, density, { title: 'hessian spectral density', xLabel: 'eigenvalue', yLabel: 'density', logY: true });
    const img = decodeFigure(fig.png);
    expect([img.width, img.height]).toEqual([560, 340]);
    for (const text of ['hessian spectral density', 'eigenvalue', '0', '20', '40', '1', '1e-4', '1e-8']) {
      expect(containsText(img, text), text).toBe(true);
    }
    let curve = 0;
    for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) if (rgbAt(img, x, y).join() === '0,114,178') curve++;
    expect(curve).toBeGreaterThan(200);
  });

  it('handles no finite data', () => {
    const fig = lineFigurePng([NaN], [1], { title: 'x' });
    expect(decodeFigure(fig.png).width).toBe(560);
  });
});
