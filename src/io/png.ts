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
    throw new ShapeError(
      `encodePng: ${width} x ${height} x ${channels} needs ${stride * height} bytes, got ${pixels.length}`,
    );
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
