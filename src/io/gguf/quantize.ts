/**
 * Block quantization for GGUF tensors: the fp16 scale helpers and the Q8_0 and Q4_0 quantizers and
 * dequantizers (32 values per block, as llama.cpp).
 */
import { OspError, ShapeError } from '../../errors.ts';
import { fromFloat32, toFloat32 } from '../safetensors.ts';

// ---------------------------------------------------------------------------------------------
// Quantization

// fp16 bit patterns of the block scales are produced and read through safetensors' converters, so
// that F16 tensors and Q4_0/Q8_0 scales share one (round-to-nearest-even) implementation.
function f16Bits(values: Float32Array): Uint8Array {
  return fromFloat32(values, 'F16');
}
function f16Values(bits: Uint8Array): Float32Array {
  return toFloat32({ dtype: 'F16', shape: [bits.length / 2], data: bits });
}

function blockCount(x: ArrayLike<number>, what: string): number {
  if (x.length % 32 !== 0) {
    throw new ShapeError(`${what}: expected a multiple of 32 values (whole blocks), got ${x.length}`);
  }
  return x.length / 32;
}

function finiteAt(x: ArrayLike<number>, i: number, what: string): number {
  const v = Math.fround(x[i]!);
  if (!Number.isFinite(v)) throw new OspError(`${what}: value ${v} at index ${i} cannot be quantized (not finite)`);
  return v;
}

/** C's roundf: halves go away from zero (Math.round sends -2.5 to -2, llama.cpp gets -3). */
function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/**
 * Quantizes float32 values to Q8_0: per block of 32, an fp16 scale d = amax / 127 followed by 32 int8
 * codes q = round(x / d) (halves away from zero), 34 bytes per block. An all-zero block has d = 0 and
 * zero codes.
 *
 * Which d the codes use: the fp16-rounded d that is stored, not the float32 d. llama.cpp's
 * quantize_row_q8_0_ref divides by the float32 d, so its codes are nearest for a scale the file does
 * not hold and the dequantization error can exceed d/2 (by up to 127 * |d - fp16(d)| ~ d/16). Dividing
 * by the stored d makes every code the nearest one for the value actually used, so each element's
 * error is at most d/2 of the stored d. The bytes differ from llama.cpp's only where the two scales
 * round a code differently, and either is valid Q8_0. When fp16(d) is a subnormal too small for amax
 * (amax / d >= 127.5, which needs amax < ~0.008), d is raised by one fp16 step so no code overflows.
 *
 * @example const bytes = quantizeQ8_0(weights); // weights.length a multiple of 32
 */
export function quantizeQ8_0(x: ArrayLike<number>): Uint8Array {
  const nb = blockCount(x, 'quantizeQ8_0');
  const amaxes = new Float32Array(nb);
  const ds = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(finiteAt(x, 32 * b + j, 'quantizeQ8_0')));
    amaxes[b] = amax;
    ds[b] = amax / 127; // rounded to float32 first, as llama.cpp's float d is
  }
  const dBits = f16Bits(ds);
  const d16 = f16Values(dBits);
  const out = new Uint8Array(nb * 34);
  for (let b = 0; b < nb; b++) {
    const amax = amaxes[b]!;
    let d = d16[b]!;
    if (amax > 0 && (d === 0 || amax / d >= 127.5)) d = bumpScale(dBits, b);
    if (!Number.isFinite(d)) {
      throw new OspError(`quantizeQ8_0: block ${b} has max |x| = ${amax}; its scale amax/127 exceeds fp16 (65504)`);
    }
    const o = 34 * b;
    out[o] = dBits[2 * b]!;
    out[o + 1] = dBits[2 * b + 1]!;
    if (d === 0) continue; // all-zero block: codes stay 0
    for (let j = 0; j < 32; j++) out[o + 2 + j] = roundHalfAway(Math.fround(x[32 * b + j]!) / d) & 0xff;
  }
  return out;
}

/** Raises the magnitude of fp16 scale `b` in `bits` by one step (sign-magnitude: bits + 1) and returns it. */
function bumpScale(bits: Uint8Array, b: number): number {
  const h = (bits[2 * b]! | (bits[2 * b + 1]! << 8)) + 1;
  bits[2 * b] = h & 0xff;
  bits[2 * b + 1] = (h >>> 8) & 0xff;
  return f16Values(bits.subarray(2 * b, 2 * b + 2))[0]!;
}

/**
 * Dequantizes Q8_0 blocks (34 bytes each) to float32: x = q * d with the stored fp16 d.
 * @example const w = dequantizeQ8_0(quantizeQ8_0(weights));
 */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  if (bytes.length % 34 !== 0) {
    throw new ShapeError(`dequantizeQ8_0: expected whole 34-byte blocks, got ${bytes.length} bytes`);
  }
  const nb = bytes.length / 34;
  const dBits = new Uint8Array(2 * nb);
  for (let b = 0; b < nb; b++) {
    dBits[2 * b] = bytes[34 * b]!;
    dBits[2 * b + 1] = bytes[34 * b + 1]!;
  }
  const d16 = f16Values(dBits);
  const out = new Float32Array(32 * nb);
  for (let b = 0; b < nb; b++) {
    const d = d16[b]!;
    for (let j = 0; j < 32; j++) out[32 * b + j] = ((bytes[34 * b + 2 + j]! << 24) >> 24) * d; // sign-extend int8
  }
  return out;
}

/**
 * Quantizes float32 values to Q4_0: per block of 32, an fp16 scale d = m / -8, where m is the signed
 * value with the largest |x| (the first one on ties, as llama.cpp), followed by 16 bytes of 4-bit codes
 * c = min(15, trunc(x / d + 8.5)); byte j holds c(x_j) in its low nibble and c(x_{j+16}) in its high
 * nibble. 18 bytes per block. Dequantization is (c - 8) * d.
 *
 * The sign of d makes m itself land on code 0, i.e. exactly -8 * d = m, so the largest value is
 * represented exactly and the asymmetric grid -8d..7d spends its extra step on m's side. A value
 * on the other side with x / d >= 7.5 (|x| >= 15/16 of |m|) would need code 16 and is clamped to 15,
 * so its error is up to |d| instead of |d| / 2.
 *
 * As in quantizeQ8_0, codes divide by the stored fp16 d (not llama.cpp's float32 d), so apart from
 * the clamp each element's error is at most |d| / 2 of the stored d; a subnormal d too small for m
 * (|m| / |d| > 8.5) is raised by one fp16 step. An all-zero block stores d = -0 (0x8000, what
 * 0 / -8 gives in llama.cpp too) and codes 8.
 *
 * @example const bytes = quantizeQ4_0(weights); // weights.length a multiple of 32
 */
export function quantizeQ4_0(x: ArrayLike<number>): Uint8Array {
  const nb = blockCount(x, 'quantizeQ4_0');
  const amaxes = new Float32Array(nb);
  const ds = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = finiteAt(x, 32 * b + j, 'quantizeQ4_0');
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    amaxes[b] = amax;
    ds[b] = max / -8;
  }
  const dBits = f16Bits(ds);
  const d16 = f16Values(dBits);
  const out = new Uint8Array(nb * 18);
  for (let b = 0; b < nb; b++) {
    const amax = amaxes[b]!;
    let d = d16[b]!;
    if (amax > 0 && (d === 0 || amax / Math.abs(d) > 8.5)) d = bumpScale(dBits, b);
    if (!Number.isFinite(d)) {
      throw new OspError(`quantizeQ4_0: block ${b} has max |x| = ${amax}; its scale amax/8 exceeds fp16 (65504)`);
    }
    const o = 18 * b;
    out[o] = dBits[2 * b]!;
    out[o + 1] = dBits[2 * b + 1]!;
    if (d === 0) {
      out.fill(0x88, o + 2, o + 18); // code 8 = value 0, as llama.cpp's id = 0 gives
      continue;
    }
    // x / d >= -|m| / |d| > -8.5 here, so x / d + 8.5 > 0 and trunc is floor: no code below 0.
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(Math.fround(x[32 * b + j]!) / d + 8.5));
      const hi = Math.min(15, Math.trunc(Math.fround(x[32 * b + 16 + j]!) / d + 8.5));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

/**
 * Dequantizes Q4_0 blocks (18 bytes each) to float32: x = (nibble - 8) * d with the stored fp16 d.
 * @example const w = dequantizeQ4_0(quantizeQ4_0(weights));
 */
export function dequantizeQ4_0(bytes: Uint8Array): Float32Array {
  if (bytes.length % 18 !== 0) {
    throw new ShapeError(`dequantizeQ4_0: expected whole 18-byte blocks, got ${bytes.length} bytes`);
  }
  const nb = bytes.length / 18;
  const dBits = new Uint8Array(2 * nb);
  for (let b = 0; b < nb; b++) {
    dBits[2 * b] = bytes[18 * b]!;
    dBits[2 * b + 1] = bytes[18 * b + 1]!;
  }
  const d16 = f16Values(dBits);
  const out = new Float32Array(32 * nb);
  for (let b = 0; b < nb; b++) {
    const d = d16[b]!;
    for (let j = 0; j < 16; j++) {
      const q = bytes[18 * b + 2 + j]!;
      out[32 * b + j] = ((q & 0x0f) - 8) * d;
      out[32 * b + 16 + j] = ((q >>> 4) - 8) * d;
    }
  }
  return out;
}
