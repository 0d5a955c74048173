/**
 * A minimal PNG encoder (8-bit grayscale, RGB or RGBA, no interlace) for heatmap images in
 * TensorBoard. Compression is node:zlib's deflate; the chunk checksum is the standard CRC-32
 * (zlib polynomial), written here so the encoder has no dependency beyond node:zlib.
 */
import { deflateSync } from 'node:zlib';
import { ShapeError } from '../errors.ts';

const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Reflected IEEE 802.3 polynomial, the one PNG and zlib use. */
const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 (PNG / zlib / gzip) of `bytes`; pass a previous result as `crc` to continue it.
 * @example crc32(new TextEncoder().encode('123456789')) === 0xcbf43926
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** PNG color type for each channel count (0 gray, 2 truecolor, 6 truecolor + alpha). */
const COLOR_TYPE: Record<1 | 3 | 4, number> = { 1: 0, 3: 2, 4: 6 };

/** length | type | data | CRC over type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes 8-bit pixels, row-major, `channels` interleaved bytes per pixel (1 gray, 3 RGB, 4 RGBA),
 * as a PNG file. Rows use filter 0 (none): heatmaps are small, so better compression is not worth
 * the code.
 *
 * @example const png = encodePng(64, 32, heat, 3); writer.image('attn/layer0', png, 64, 32, step);
 */
export function encodePng(width: number, height: number, pixels: Uint8Array, channels: 1 | 3 | 4): Uint8Array {
  const validDim = (d: number) => Number.isInteger(d) && d >= 1 && d <= 2 ** 31 - 1; // IHDR limit
  if (!validDim(width) || !validDim(height)) {
    throw new ShapeError(`encodePng: width and height must be integers in [1, 2^31 - 1], got ${width} x ${height}`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new ShapeError(`encodePng: channels must be 1, 3 or 4, got ${channels as number}`);
  }
  const stride = width * channels;
  if (pixels.length !== stride * height) {
    throw new ShapeError(`encodePng: ${width} x ${height} x ${channels} needs ${stride * height} bytes, got ${pixels.length}`);
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[channels];
  // ihdr[10..12]: compression 0 (deflate), filter method 0, interlace 0 (none)

  // Each scanline is prefixed with its filter type byte.
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const parts = [PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Figures for TensorBoard images: an RGB raster with a 5x7 bitmap font, axes with ticks, a colour bar.

/** An RGB colour, 0..255 per channel. */
export type Rgb = readonly [number, number, number];

/**
 * 5x7 glyphs: each entry is the character, then its 7 rows top to bottom as base-32 digits whose 5
 * bits are the pixels left to right. Letters have capital shapes (one case is enough for axis labels).
 */
const GLYPH_DATA =
  '0ehjlphe14c4444e2eh1248v3v2421he426aiv225vgu11he668guhhe7v1248888ehhehhe9ehhf12ca' +
  'ehhvhhhbuhhuhhucehgggheduhhhhhuevgguggvfvgguggggehgnhhfhhhhvhhhie44444ej72222ickhikokih' +
  'lggggggvmhrllhhhnhhpljhhoehhhhhepuhhugggqehhhlidruhhukihsfgge11utv444444uhhhhhhevhhhhha4' +
  'whhhlllaxhha4ahhyhha4444zv1248gv.00000cc,0000c48-000v000+044v440=00v0v00:0cc0cc0/11248gg' +
  '(2488842)8422248_000000v|4444444%pp248jj';

const GLYPHS: Map<string, number[]> = (() => {
  const m = new Map<string, number[]>();
  for (let i = 0; i + 8 <= GLYPH_DATA.length; i += 8) {
    m.set(
      GLYPH_DATA[i]!,
      [...GLYPH_DATA.slice(i + 1, i + 8)].map((c) => parseInt(c, 32)),
    );
  }
  return m;
})();

export interface TextOptions {
  /** Pixels per font pixel (default 1: glyphs 5x7, 6 px apart). */
  scale?: number;
  /** Where `x` is: the left end (default), the middle or the right end of the text. */
  align?: 'left' | 'center' | 'right';
  /** Read bottom to top (a y axis title); `x`, `y` are then the top-left of the rotated box. */
  vertical?: boolean;
}

/** An RGB image being drawn on, encoded with `png()`. Coordinates outside the image are clipped. */
export class Raster {
  readonly pixels: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.pixels.set(c, (y * this.width + x) * 3);
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let yy = Math.round(y); yy < Math.round(y + h); yy++)
      for (let xx = Math.round(x); xx < Math.round(x + w); xx++) this.set(xx, yy, c);
  }

  /** A 1-pixel line (Bresenham). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    [x0, y0, x1, y1] = [x0, y0, x1, y1].map(Math.round) as [number, number, number, number];
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      this.set(x0, y0, c);
      if (x0 === x1 && y0 === y1) return;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

  /** Width in pixels of `text` at `scale` (along its reading direction). */
  static textWidth(text: string, scale = 1): number {
    return text.length === 0 ? 0 : (text.length * 6 - 1) * scale;
  }

  /** Draws text with the 5x7 font; `y` is the top of the glyphs. Characters without a glyph are blank. */
  text(text: string, x: number, y: number, c: Rgb, opts: TextOptions = {}): void {
    const s = opts.scale ?? 1;
    const w = Raster.textWidth(text, s);
    const shift = opts.align === 'center' ? w / 2 : opts.align === 'right' ? w : 0;
    [...text.toLowerCase()].forEach((ch, k) => {
      const rows = GLYPHS.get(ch);
      if (!rows) return;
      rows.forEach((bits, gy) => {
        for (let gx = 0; gx < 5; gx++) {
          if (!((bits >> (4 - gx)) & 1)) continue;
          const along = k * 6 * s + gx * s - shift;
          // Vertical text runs upwards from y + w - shift... its glyph tops face left.
          if (opts.vertical) this.rect(x + gy * s, y + w - along - s, s, s, c);
          else this.rect(x + along, y + gy * s, s, s, c);
        }
      });
    });
  }

  png(): Uint8Array {
    return encodePng(this.width, this.height, this.pixels, 3);
  }
}

/**
 * Tick values for [lo, hi]: multiples of 1, 2 or 5 times a power of ten, about `target` of them,
 * inside the range.
 */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

/**
 * A number in few characters for a tick or colour-bar label: 3 significant digits, exponent notation
 * ('1e-3', '2.5e4') below 0.01 and from 10000.
 * @example tickText(0.001) // '1e-3'
 */
export function tickText(v: number): string {
  if (!Number.isFinite(v)) return String(v).toLowerCase();
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-2 || a >= 1e4)
    return v
      .toExponential(2)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

/** Viridis at 5 evenly spaced points (perceptually uniform, readable in grey scale). */
const VIRIDIS5: readonly Rgb[] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** The colour of t in [0, 1] on viridis. */
export function viridisRgb(t: number): Rgb {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS5.length - 1);
  const i = Math.min(VIRIDIS5.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS5[i]!;
  const b = VIRIDIS5[i + 1]!;
  return [0, 1, 2].map((k) => Math.round(a[k]! + f * (b[k]! - a[k]!))) as unknown as Rgb;
}

const INK: Rgb = [30, 30, 30];
const GRID: Rgb = [228, 228, 228];
const FONT = 2; // font scale of figure text: 10x14 pixel glyphs
const CH = 7 * FONT; // text height
const NOT_DRAWABLE: Rgb = [0, 0, 0];

export interface HeatmapFigureOptions {
  title?: string;
  /** One label per row, drawn left of it (e.g. 'embed', '0', '1', 'final'). */
  rowLabels?: readonly string[];
  xLabel?: string;
  yLabel?: string;
  /** What the colours are; written along the colour bar. */
  colorLabel?: string;
  /** Pixels per column (default: enough for a heatmap about 400 pixels wide, 1..8). */
  cellWidth?: number;
  /** Pixels per row (default 20, room for a row label). */
  cellHeight?: number;
}

/**
 * A heatmap as a figure: rows (top to bottom) by columns, colour = viridis of log10(value) between the
 * smallest positive and the largest value, with a title, row labels and column ticks, axis titles, and
 * a colour bar labelled with its minimum and maximum. Cells that cannot be log-scaled (<= 0, NaN) are
 * black. For TensorBoard image summaries.
 * @example const img = heatmapFigurePng(rms, { rowLabels: ['embed', '0', '1', 'final'], xLabel: 'channel' });
 */
export function heatmapFigurePng(
  rows: readonly ArrayLike<number>[],
  opts: HeatmapFigureOptions = {},
): { png: Uint8Array; width: number; height: number; range: [number, number] } {
  if (rows.length === 0 || rows[0]!.length === 0) throw new ShapeError('heatmapFigurePng: needs at least one row and one column');
  const d = rows[0]!.length;
  rows.forEach((r, i) => {
    if (r.length !== d) throw new ShapeError(`heatmapFigurePng: row ${i} has ${r.length} values, row 0 has ${d}`);
  });
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of rows) {
    for (let i = 0; i < d; i++) {
      const v = r[i]!;
      if (v > 0 && Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  }
  if (lo === Infinity) [lo, hi] = [1, 1];
  const logLo = Math.log10(lo);
  const span = Math.log10(hi) - logLo;
  const colour = (v: number): Rgb =>
    v > 0 && Number.isFinite(v) ? viridisRgb(span > 0 ? (Math.log10(v) - logLo) / span : 0.5) : NOT_DRAWABLE;

  const cw = opts.cellWidth ?? Math.min(8, Math.max(1, Math.ceil(400 / d)));
  const ch = opts.cellHeight ?? 20;
  const labels = opts.rowLabels ?? rows.map((_, i) => String(i));
  const labelW = Math.max(...labels.map((l) => Raster.textWidth(l, FONT)));
  const barLabels = [tickText(hi), tickText(lo)];
  const x0 = 8 + (opts.yLabel ? CH + 10 : 0) + labelW + 10;
  const y0 = opts.title ? 14 + CH + 12 : 12;
  const W = d * cw;
  // Tall enough for the rotated axis and colour-bar titles to fit along it.
  const vertical = [opts.yLabel, opts.colorLabel].map((t) => (t ? Raster.textWidth(t, FONT) + 8 : 0));
  const H = Math.max(rows.length * ch, 80, ...vertical);
  const rowH = H / rows.length;
  const barX = x0 + W + 20;
  const width = barX + 16 + 8 + Math.max(...barLabels.map((l) => Raster.textWidth(l, FONT))) + (opts.colorLabel ? 12 + CH : 0) + 10;
  const height = y0 + H + 8 + CH + (opts.xLabel ? 12 + CH : 0) + 12;
  const img = new Raster(width, height);

  if (opts.title) img.text(opts.title, width / 2, 12, INK, { scale: FONT, align: 'center' });
  rows.forEach((r, l) => {
    const top = Math.round(y0 + l * rowH);
    const bottom = Math.round(y0 + (l + 1) * rowH);
    for (let i = 0; i < d; i++) img.rect(x0 + i * cw, top, cw, bottom - top, colour(r[i]!));
    img.text(labels[l] ?? '', x0 - 8, (top + bottom) / 2 - CH / 2, INK, { scale: FONT, align: 'right' });
  });
  // Frame, column ticks at cell centres.
  img.line(x0 - 1, y0 - 1, x0 + W, y0 - 1, INK);
  img.line(x0 - 1, y0 + H, x0 + W, y0 + H, INK);
  img.line(x0 - 1, y0 - 1, x0 - 1, y0 + H, INK);
  img.line(x0 + W, y0 - 1, x0 + W, y0 + H, INK);
  const ticks = niceTicks(0, d - 1, Math.max(2, Math.floor(W / 80))).filter((t) => Number.isInteger(t));
  for (const t of ticks) {
    const x = x0 + (t + 0.5) * cw;
    img.line(x, y0 + H, x, y0 + H + 4, INK);
    img.text(String(t), x, y0 + H + 7, INK, { scale: FONT, align: 'center' });
  }
  if (opts.xLabel) img.text(opts.xLabel, x0 + W / 2, y0 + H + 7 + CH + 10, INK, { scale: FONT, align: 'center' });
  if (opts.yLabel) {
    const w = Raster.textWidth(opts.yLabel, FONT);
    img.text(opts.yLabel, 8, y0 + H / 2 - w / 2, INK, { scale: FONT, vertical: true });
  }
  // Colour bar: max at the top, min at the bottom, log-spaced like the cells.
  for (let y = 0; y < H; y++) img.rect(barX, y0 + y, 16, 1, viridisRgb(1 - y / Math.max(1, H - 1)));
  img.line(barX - 1, y0 - 1, barX + 16, y0 - 1, INK);
  img.line(barX - 1, y0 + H, barX + 16, y0 + H, INK);
  img.line(barX - 1, y0 - 1, barX - 1, y0 + H, INK);
  img.line(barX + 16, y0 - 1, barX + 16, y0 + H, INK);
  img.text(barLabels[0]!, barX + 16 + 6, y0, INK, { scale: FONT });
  img.text(barLabels[1]!, barX + 16 + 6, y0 + H - CH, INK, { scale: FONT });
  if (opts.colorLabel) {
    const w = Raster.textWidth(opts.colorLabel, FONT);
    img.text(opts.colorLabel, width - 10 - CH, y0 + H / 2 - w / 2, INK, { scale: FONT, vertical: true });
  }
  return { png: img.png(), width, height, range: [lo, hi] };
}

export interface LineFigureOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Log y axis (decade ticks); values below max * `logFloor` are clamped to the bottom. */
  logY?: boolean;
  /** Default 1e-8: a log axis spans at most 8 decades under the maximum. */
  logFloor?: number;
  /** Default 560 x 340. */
  width?: number;
  height?: number;
}

/**
 * A line plot as a figure: the curve through (xs[i], ys[i]), with a title, x and y ticks with labels,
 * axis titles and light grid lines; linear or log y. Non-finite points (and non-positive ones on a log
 * axis, where they are clamped to the bottom) do not break the axes. For TensorBoard image summaries
 * (the Hessian's spectral density).
 * @example const img = lineFigurePng(grid, density, { logY: true, xLabel: 'eigenvalue', yLabel: 'density' });
 */
export function lineFigurePng(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  opts: LineFigureOptions = {},
): { png: Uint8Array; width: number; height: number } {
  const width = opts.width ?? 560;
  const height = opts.height ?? 340;
  const pts: [number, number][] = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    if (Number.isFinite(xs[i]!) && Number.isFinite(ys[i]!)) pts.push([xs[i]!, ys[i]!]);
  }
  const log = opts.logY ?? false;
  const xlo = Math.min(...pts.map(([x]) => x));
  const xhi = Math.max(...pts.map(([x]) => x));
  const ymax = Math.max(...pts.map(([, y]) => y));
  let ylo: number;
  let yhi: number;
  let yTicks: number[];
  const tr = (y: number) => (log ? Math.log10(y) : y);
  if (log) {
    const positive = pts.map(([, y]) => y).filter((y) => y > 0);
    const top = positive.length > 0 ? Math.max(...positive) : 1;
    const bottom = Math.max(positive.length > 0 ? Math.min(...positive) : top / 10, top * (opts.logFloor ?? 1e-8));
    const e0 = Math.floor(Math.log10(bottom));
    const e1 = Math.max(e0 + 1, Math.ceil(Math.log10(top)));
    [ylo, yhi] = [e0, e1];
    const stride = Math.ceil((e1 - e0) / 6);
    yTicks = [];
    for (let e = e0; e <= e1; e += stride) yTicks.push(e);
  } else {
    const ymin = Math.min(...pts.map(([, y]) => y));
    [ylo, yhi] = pts.length === 0 ? [0, 1] : ymax > ymin ? [ymin, ymax] : [ymin - 1, ymax + 1];
    yTicks = niceTicks(ylo, yhi, 5);
  }
  const yText = (t: number) => (log ? tickText(10 ** t) : tickText(t));
  const tickW = Math.max(...yTicks.map((t) => Raster.textWidth(yText(t), FONT)));
  const x0 = 8 + (opts.yLabel ? CH + 10 : 0) + tickW + 10;
  const x1 = width - 20;
  const y0 = opts.title ? 14 + CH + 12 : 12;
  const y1 = height - 12 - CH - 8 - (opts.xLabel ? CH + 12 : 0);
  const img = new Raster(width, height);
  const [ax, bx] = pts.length > 0 && xhi > xlo ? [xlo, xhi] : [xlo - 1, xhi + 1];
  const X = (x: number) => x0 + ((x - ax) / (bx - ax)) * (x1 - x0);
  const Y = (y: number) => y1 - ((Math.min(yhi, Math.max(ylo, y)) - ylo) / (yhi - ylo)) * (y1 - y0);

  if (opts.title) img.text(opts.title, width / 2, 12, INK, { scale: FONT, align: 'center' });
  for (const t of yTicks) {
    const y = Y(t);
    img.line(x0, y, x1, y, GRID);
    img.line(x0 - 4, y, x0, y, INK);
    img.text(yText(t), x0 - 8, y - CH / 2, INK, { scale: FONT, align: 'right' });
  }
  const xTicks = pts.length > 0 ? niceTicks(ax, bx, 5) : [];
  for (const t of xTicks) {
    const x = X(t);
    img.line(x, y0, x, y1, GRID);
    img.line(x, y1, x, y1 + 4, INK);
    img.text(tickText(t), x, y1 + 8, INK, { scale: FONT, align: 'center' });
  }
  img.line(x0, y0, x0, y1, INK);
  img.line(x0, y1, x1, y1, INK);
  const blue: Rgb = [0, 114, 178];
  const tint: Rgb = [200, 224, 240];
  const yOf = (y: number) => Y(log ? (y > 0 ? tr(y) : ylo) : y);
  // The area under the curve in a light tint first: narrow peaks (a spectral density's outliers) stay
  // visible as filled spikes, not hairlines.
  const base = Y(log ? ylo : Math.max(ylo, Math.min(yhi, 0)));
  for (let i = 1; i < pts.length; i++) {
    const [xa, ya] = pts[i - 1]!;
    const [xb, yb] = pts[i]!;
    const [pa, pb] = [X(xa), X(xb)];
    for (let x = Math.round(Math.min(pa, pb)); x <= Math.round(Math.max(pa, pb)); x++) {
      const f = pb === pa ? 1 : Math.min(1, Math.max(0, (x - pa) / (pb - pa)));
      const y = yOf(ya) + f * (yOf(yb) - yOf(ya));
      img.line(x, Math.min(y, base), x, Math.max(y, base), tint);
    }
  }
  for (let i = 1; i < pts.length; i++) {
    const [xa, ya] = pts[i - 1]!;
    const [xb, yb] = pts[i]!;
    img.line(X(xa), yOf(ya), X(xb), yOf(yb), blue);
    img.line(X(xa), yOf(ya) - 1, X(xb), yOf(yb) - 1, blue);
  }
  if (pts.length === 0) img.text('no data', (x0 + x1) / 2, (y0 + y1) / 2, INK, { scale: FONT, align: 'center' });
  if (opts.xLabel) img.text(opts.xLabel, (x0 + x1) / 2, y1 + 8 + CH + 12, INK, { scale: FONT, align: 'center' });
  if (opts.yLabel) {
    const label = log ? `${opts.yLabel} (log)` : opts.yLabel;
    img.text(label, 8, (y0 + y1) / 2 - Raster.textWidth(label, FONT) / 2, INK, { scale: FONT, vertical: true });
  }
  return { png: img.png(), width, height };
}
