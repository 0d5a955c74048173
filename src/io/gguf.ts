/**
 * GGUF v3, the single-file model format of llama.cpp (and of the npm package node-llama-cpp).
 *
 *   "GGUF" | u32 version = 3 | u64 tensor_count | u64 kv_count | KVs | tensor infos |
 *   zero padding to `alignment` | data section (each tensor padded to `alignment`)
 *
 * All integers are little-endian. A string is a u64 byte length and UTF-8 bytes (no terminator). A KV
 * is key (string), u32 value type, value; an ARRAY value is u32 item type, u64 count, items. A tensor
 * info is name, u32 n_dims, n_dims u64 dims INNERMOST FIRST (the reverse of the PyTorch shape), u32
 * ggml type and a u64 offset into the data section. `general.alignment` (UINT32, default 32) sets
 * the alignment.
 *
 * Memory order needs no transposition: ggml's dim 0 is the contiguous one, exactly as PyTorch's last
 * dim is, so a row-major PyTorch tensor's values are written as they are and only the shape list is
 * reversed.
 *
 * The decoder is strict: it rejects what llama.cpp's gguf_init_from_file rejects (bad magic or
 * version, duplicate keys or tensor names, names of 64+ bytes, more than 4 dims, overflowing shapes,
 * rows that are not whole blocks, offsets other than the running sum of padded sizes) and a little
 * more (0-dim tensors, zero dims, invalid UTF-8, BOOL bytes other than 0/1, ggml types this module
 * cannot convert). Every size field is checked against the bytes actually present before it is used
 * for a loop or an allocation, so a corrupt count of 2^60 fails at once with a FormatError instead of
 * exhausting memory.
 */
import { readFileOrAsync } from './read.ts';
import { FormatError, OspError, ShapeError } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';
import { fromFloat32, toFloat32 } from './safetensors.ts';

/** The only version this module reads and writes (llama.cpp has written v3 since late 2023). */
export const GGUF_VERSION = 3;
/** Alignment used when the file has no `general.alignment` key. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** llama.cpp stores names in char[64] with a terminating NUL: names must be shorter than this, in bytes. */
export const GGML_MAX_NAME = 64;
/** ggml tensors have at most 4 dims. */
export const GGML_MAX_DIMS = 4;
/**
 * Deepest ARRAY-of-ARRAY nesting accepted. The format allows nesting but llama.cpp reads none;
 * the bound keeps a crafted file from recursing without limit.
 */
export const GGUF_MAX_ARRAY_DEPTH = 8;

/** GGUF metadata value types and their ids in the file. */
export const GGUF_TYPE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufType = keyof typeof GGUF_TYPE;

/** The ggml tensor types this module can write and convert, with their ids in the file. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPE;
/** Names of the supported tensor types, for validation messages. */
export const GGML_TYPES: readonly GgmlType[] = Object.freeze(Object.keys(GGML_TYPE) as GgmlType[]);

/** Elements per block and bytes per block of each supported tensor type. */
const GGML_LAYOUT: Readonly<Record<GgmlType, { block: number; bytes: number }>> = {
  F32: { block: 1, bytes: 4 },
  F16: { block: 1, bytes: 2 },
  BF16: { block: 1, bytes: 2 },
  Q8_0: { block: 32, bytes: 34 },
  Q4_0: { block: 32, bytes: 18 },
};

/**
 * Names of the other ggml type ids, only so that a file using one (a Q4_K model from the internet)
 * gets "type 12 (Q4_K) is not supported" rather than "unknown type 12". Gaps are removed types.
 */
const OTHER_GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K',
  15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0',
  39: 'MXFP4',
};

export type GgufNumberType = 'UINT8' | 'INT8' | 'UINT16' | 'INT16' | 'UINT32' | 'INT32' | 'FLOAT32' | 'FLOAT64';
export type GgufBigIntType = 'UINT64' | 'INT64';

/** An ARRAY value: the item type and the items as plain JS values (nested arrays for ARRAY items). */
export type GgufArray =
  | { type: 'ARRAY'; itemType: GgufNumberType; value: number[] }
  | { type: 'ARRAY'; itemType: GgufBigIntType; value: bigint[] }
  | { type: 'ARRAY'; itemType: 'BOOL'; value: boolean[] }
  | { type: 'ARRAY'; itemType: 'STRING'; value: string[] }
  | { type: 'ARRAY'; itemType: 'ARRAY'; value: GgufArray[] };

/** A typed metadata value. 64-bit integers are bigint so that no value is silently rounded. */
export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: 'BOOL'; value: boolean }
  | { type: 'STRING'; value: string }
  | GgufArray;

/** One tensor to write: values in PyTorch row-major order, shape outermost first. */
export interface GgufTensorInput {
  name: string;
  /** PyTorch order, outermost first; written reversed. 1 to 4 dims, each >= 1. */
  shape: readonly number[];
  type: GgmlType;
  data: Float32Array;
}

export interface GgufEncodeInput {
  /** Metadata in file order. `general.alignment` is added when `alignment` is not 32. */
  kv?: Iterable<readonly [string, GgufValue]>;
  tensors?: Iterable<GgufTensorInput>;
  /** Data alignment in bytes: a power of two (default 32). */
  alignment?: number;
}

/** One tensor of a decoded file. */
export interface GgufTensor {
  name: string;
  /** PyTorch order, outermost first (the file's dims reversed). */
  shape: number[];
  type: GgmlType;
  /** Offset from the start of the data section (the file offset is dataOffset + offset). */
  offset: number;
  byteLength: number;
  /** A view into the decoded bytes: shares their memory and is generally unaligned. */
  data: Uint8Array;
}

/** The contents of a GGUF file. */
export interface GgufContents {
  version: number;
  /** Metadata in file order, including `general.alignment` when present. */
  kv: Map<string, GgufValue>;
  /** Tensors in info order. */
  tensors: GgufTensor[];
  alignment: number;
  /** File offset of the data section. */
  dataOffset: number;
}

// ---------------------------------------------------------------------------------------------
// Value constructors

/** A STRING value. @example str('llama') */
export const str = (value: string): { type: 'STRING'; value: string } => ({ type: 'STRING', value });
/** A UINT8 value. @example u8(1) */
export const u8 = (value: number): { type: 'UINT8'; value: number } => ({ type: 'UINT8', value });
/** An INT8 value. @example i8(-1) */
export const i8 = (value: number): { type: 'INT8'; value: number } => ({ type: 'INT8', value });
/** A UINT16 value. @example u16(1) */
export const u16 = (value: number): { type: 'UINT16'; value: number } => ({ type: 'UINT16', value });
/** An INT16 value. @example i16(-1) */
export const i16 = (value: number): { type: 'INT16'; value: number } => ({ type: 'INT16', value });
/** A UINT32 value. @example u32(2048) // llama.context_length */
export const u32 = (value: number): { type: 'UINT32'; value: number } => ({ type: 'UINT32', value });
/** An INT32 value. @example i32(-1) */
export const i32 = (value: number): { type: 'INT32'; value: number } => ({ type: 'INT32', value });
/** A FLOAT32 value (rounded to float32 when written). @example f32(1e-5) // layer_norm_rms_epsilon */
export const f32 = (value: number): { type: 'FLOAT32'; value: number } => ({ type: 'FLOAT32', value });
/** A FLOAT64 value. @example f64(Math.PI) */
export const f64 = (value: number): { type: 'FLOAT64'; value: number } => ({ type: 'FLOAT64', value });
/** A BOOL value. @example bool(true) */
export const bool = (value: boolean): { type: 'BOOL'; value: boolean } => ({ type: 'BOOL', value });
/** A UINT64 value. @example u64(2n ** 40n) */
export const u64 = (value: bigint | number): { type: 'UINT64'; value: bigint } => ({
  type: 'UINT64',
  value: toBigInt(value, 'u64'),
});
/** An INT64 value. @example i64(-5) */
export const i64 = (value: bigint | number): { type: 'INT64'; value: bigint } => ({
  type: 'INT64',
  value: toBigInt(value, 'i64'),
});

function toBigInt(v: bigint | number, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new OspError(`${what}: expected an integer (a bigint, or a number up to 2^53), got ${String(v)}`);
  }
  return BigInt(v);
}

/** Item kinds of arr() and the JS values each takes. */
export interface GgufArrayKinds {
  u8: number;
  i8: number;
  u16: number;
  i16: number;
  u32: number;
  i32: number;
  f32: number;
  f64: number;
  u64: bigint | number;
  i64: bigint | number;
  bool: boolean;
  string: string;
  array: GgufArray;
}

const ARRAY_KIND_TYPE: Readonly<Record<keyof GgufArrayKinds, GgufType>> = {
  u8: 'UINT8',
  i8: 'INT8',
  u16: 'UINT16',
  i16: 'INT16',
  u32: 'UINT32',
  i32: 'INT32',
  f32: 'FLOAT32',
  f64: 'FLOAT64',
  u64: 'UINT64',
  i64: 'INT64',
  bool: 'BOOL',
  string: 'STRING',
  array: 'ARRAY',
};

/**
 * An ARRAY value of one item kind; the items are copied.
 * @example arr('string', ['<s>', '</s>'])   // tokenizer.ggml.tokens
 * @example arr('f32', scores)               // tokenizer.ggml.scores
 * @example arr('array', [arr('i32', [1]), arr('i32', [2, 3])])
 */
export function arr<K extends keyof GgufArrayKinds>(kind: K, values: Iterable<GgufArrayKinds[K]>): GgufArray {
  if (!Object.hasOwn(ARRAY_KIND_TYPE, kind)) {
    throw new OspError(`arr: unknown item kind '${String(kind)}'; valid: ${Object.keys(ARRAY_KIND_TYPE).join(', ')}`);
  }
  const itemType = ARRAY_KIND_TYPE[kind];
  let items: unknown[] = Array.from(values);
  if (kind === 'u64' || kind === 'i64') {
    items = items.map((v, i) => toBigInt(v as bigint | number, `arr('${kind}') item ${i}`));
  }
  // The kind -> item type correspondence is fixed by ARRAY_KIND_TYPE; TypeScript cannot follow it.
  return { type: 'ARRAY', itemType, value: items } as GgufArray;
}

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

// ---------------------------------------------------------------------------------------------
// Sizes

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 2 ** 31 && (n & (n - 1)) === 0;
}

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/**
 * Bytes of a tensor of `shape` (PyTorch order) and `type`; quantized rows must be whole blocks.
 * @example ggufTensorBytes([64, 128], 'Q8_0') // 64 * 4 blocks * 34 = 8704
 */
export function ggufTensorBytes(shape: readonly number[], type: GgmlType): number {
  const layout = GGML_LAYOUT[type];
  if (layout === undefined) throw new OspError(`unknown ggml type '${type}'; valid: ${GGML_TYPES.join(', ')}`);
  const inner = shape[shape.length - 1] ?? 1;
  if (inner % layout.block !== 0) {
    throw new ShapeError(
      `${type} quantizes the innermost dim in blocks of ${layout.block}; shape [${shape}] has innermost dim ${inner}`,
    );
  }
  return (shape.reduce((a, d) => a * d, 1) / layout.block) * layout.bytes;
}

// ---------------------------------------------------------------------------------------------
// Encoder

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(2 * this.buf.length, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const p = this.length;
    this.length += n;
    return p;
  }
  // reserve() may replace buf and view, so it must run before either is read.
  u8(v: number): void {
    const p = this.reserve(1);
    this.view.setUint8(p, v);
  }
  i8(v: number): void {
    const p = this.reserve(1);
    this.view.setInt8(p, v);
  }
  u16(v: number): void {
    const p = this.reserve(2);
    this.view.setUint16(p, v, true);
  }
  i16(v: number): void {
    const p = this.reserve(2);
    this.view.setInt16(p, v, true);
  }
  u32(v: number): void {
    const p = this.reserve(4);
    this.view.setUint32(p, v, true);
  }
  i32(v: number): void {
    const p = this.reserve(4);
    this.view.setInt32(p, v, true);
  }
  f32(v: number): void {
    const p = this.reserve(4);
    this.view.setFloat32(p, v, true);
  }
  f64(v: number): void {
    const p = this.reserve(8);
    this.view.setFloat64(p, v, true);
  }
  u64(v: bigint): void {
    const p = this.reserve(8);
    this.view.setBigUint64(p, v, true);
  }
  i64(v: bigint): void {
    const p = this.reserve(8);
    this.view.setBigInt64(p, v, true);
  }
  bytes(b: Uint8Array): void {
    const p = this.reserve(b.length);
    this.buf.set(b, p);
  }
  string(s: string, where: string): void {
    // TextEncoder would silently turn a lone surrogate into U+FFFD, so the file would not round-trip.
    if (/\p{Surrogate}/u.test(s)) throw new OspError(`${where}: string contains a lone UTF-16 surrogate`);
    const b = utf8.encode(s);
    this.u64(BigInt(b.length));
    this.bytes(b);
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const INT_RANGE: Readonly<Record<'UINT8' | 'INT8' | 'UINT16' | 'INT16' | 'UINT32' | 'INT32', [number, number]>> = {
  UINT8: [0, 0xff],
  INT8: [-0x80, 0x7f],
  UINT16: [0, 0xffff],
  INT16: [-0x8000, 0x7fff],
  UINT32: [0, 0xffffffff],
  INT32: [-0x80000000, 0x7fffffff],
};
const BIGINT_RANGE: Readonly<Record<GgufBigIntType, [bigint, bigint]>> = {
  UINT64: [0n, 2n ** 64n - 1n],
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** Checks and writes one non-ARRAY item of `type`; `where` names it in errors. */
function writeScalar(w: ByteWriter, type: GgufType, v: unknown, where: string): void {
  const bad = (expected: string): never => {
    const shown = typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? JSON.stringify(v) : String(v);
    throw new OspError(`${where}: ${type} value must be ${expected}, got ${typeof v} ${shown}`);
  };
  switch (type) {
    case 'UINT8':
    case 'INT8':
    case 'UINT16':
    case 'INT16':
    case 'UINT32':
    case 'INT32': {
      const [lo, hi] = INT_RANGE[type];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) bad(`an integer in [${lo}, ${hi}]`);
      const n = v as number;
      if (type === 'UINT8') w.u8(n);
      else if (type === 'INT8') w.i8(n);
      else if (type === 'UINT16') w.u16(n);
      else if (type === 'INT16') w.i16(n);
      else if (type === 'UINT32') w.u32(n);
      else w.i32(n);
      return;
    }
    case 'FLOAT32':
    case 'FLOAT64':
      if (typeof v !== 'number') bad('a number');
      if (type === 'FLOAT32') w.f32(v as number);
      else w.f64(v as number);
      return;
    case 'UINT64':
    case 'INT64': {
      const [lo, hi] = BIGINT_RANGE[type];
      if (typeof v !== 'bigint' || v < lo || v > hi) bad(`a bigint in [${lo}, ${hi}]`);
      if (type === 'UINT64') w.u64(v as bigint);
      else w.i64(v as bigint);
      return;
    }
    case 'BOOL':
      if (typeof v !== 'boolean') bad('a boolean');
      w.u8(v ? 1 : 0);
      return;
    case 'STRING':
      if (typeof v !== 'string') bad('a string');
      w.string(v as string, where);
      return;
    default:
      throw new OspError(`${where}: unknown value type '${String(type)}'; valid: ${Object.keys(GGUF_TYPE).join(', ')}`);
  }
}

/** Checks and writes the u32 type id and the value of `v` (validated: it may come from untyped code). */
function writeValue(w: ByteWriter, v: GgufValue, where: string, depth: number, withType: boolean): void {
  if (typeof v !== 'object' || v === null || !Object.hasOwn(GGUF_TYPE, (v as { type?: unknown }).type as string)) {
    throw new OspError(
      `${where}: expected a typed value such as str('x') or u32(1) ({type, value}), ` +
        `got ${JSON.stringify(v)?.slice(0, 60)}`,
    );
  }
  if (withType) w.u32(GGUF_TYPE[v.type]);
  if (v.type !== 'ARRAY') {
    writeScalar(w, v.type, v.value, where);
    return;
  }
  if (depth >= GGUF_MAX_ARRAY_DEPTH) throw new OspError(`${where}: arrays nested deeper than ${GGUF_MAX_ARRAY_DEPTH}`);
  const itemType = v.itemType as GgufType;
  if (!Object.hasOwn(GGUF_TYPE, itemType)) {
    throw new OspError(
      `${where}: unknown array item type '${String(itemType)}'; valid: ${Object.keys(GGUF_TYPE).join(', ')}`,
    );
  }
  if (!Array.isArray(v.value)) throw new OspError(`${where}: ARRAY value must be an array of items`);
  w.u32(GGUF_TYPE[itemType]);
  w.u64(BigInt(v.value.length));
  const items: unknown[] = v.value;
  for (let i = 0; i < items.length; i++) {
    if (itemType === 'ARRAY') {
      const item = items[i] as GgufValue;
      if ((item as { type?: unknown } | null)?.type !== 'ARRAY') {
        throw new OspError(`${where}[${i}]: an ARRAY of ARRAY needs ARRAY items, e.g. arr('i32', [...])`);
      }
      writeValue(w, item, `${where}[${i}]`, depth + 1, false);
    } else {
      writeScalar(w, itemType, items[i], `${where}[${i}]`);
    }
  }
}

function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw new OspError(`${what}: name must be a non-empty string`);
  if (utf8.encode(name).length >= GGML_MAX_NAME) {
    throw new OspError(`${what} '${name}': name must be shorter than ${GGML_MAX_NAME} bytes (llama.cpp's limit)`);
  }
  return name;
}

/**
 * Serializes metadata and tensors into a GGUF v3 file image. Tensors are converted from float32 to
 * their `type` (F16/BF16 rounded to nearest even, Q8_0/Q4_0 quantized along the innermost dim) and
 * laid out in the order given, each padded to the alignment.
 *
 * Throws OspError for a bad key, value, name or alignment, and ShapeError when a tensor's data does
 * not match its shape or a quantized tensor's innermost dim is not a multiple of 32.
 *
 * @example
 *   const bytes = encodeGguf({
 *     kv: [['general.architecture', str('llama')], ['llama.block_count', u32(2)]],
 *     tensors: [{ name: 'output_norm.weight', shape: [64], type: 'F32', data: norm }],
 *   });
 */
export function encodeGguf(input: GgufEncodeInput): Uint8Array {
  const alignment = input.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (typeof alignment !== 'number' || !isPowerOfTwo(alignment)) {
    throw new OspError(`encodeGguf: alignment must be a power of two in [1, 2^31], got ${String(alignment)}`);
  }

  const kv: [string, GgufValue][] = [];
  const keys = new Set<string>();
  for (const [key, value] of input.kv ?? []) {
    if (typeof key !== 'string' || key === '') {
      throw new OspError('encodeGguf: metadata key must be a non-empty string');
    }
    if (keys.has(key)) throw new OspError(`encodeGguf: duplicate metadata key '${key}'`);
    keys.add(key);
    kv.push([key, value]);
  }
  const given = kv.find(([k]) => k === 'general.alignment')?.[1];
  if (given !== undefined) {
    // Readers take the alignment from this key, so it must agree with the layout actually written.
    if (given.type !== 'UINT32' || given.value !== alignment) {
      throw new OspError(
        `encodeGguf: metadata general.alignment (${given.type} ${String(given.value)}) must be UINT32 ${alignment}, ` +
          'the alignment option; leave the key out and it is written for you',
      );
    }
  } else if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    kv.push(['general.alignment', u32(alignment)]);
  }

  type Prepared = { name: string; shape: number[]; type: GgmlType; bytes: Uint8Array; offset: number };
  const prepared: Prepared[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of input.tensors ?? []) {
    const name = checkName(t.name, 'encodeGguf: tensor');
    if (names.has(name)) throw new OspError(`encodeGguf: duplicate tensor name '${name}'`);
    names.add(name);
    const where = `encodeGguf: tensor '${name}'`;
    if (!Object.hasOwn(GGML_LAYOUT, t.type)) {
      throw new OspError(`${where}: unknown type '${String(t.type)}'; valid: ${GGML_TYPES.join(', ')}`);
    }
    const shape = Array.from(t.shape);
    if (shape.length < 1 || shape.length > GGML_MAX_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
      throw new ShapeError(
        `${where}: shape must have 1 to ${GGML_MAX_DIMS} dims, each an integer >= 1, got [${shape}]`,
      );
    }
    const numel = shape.reduce((a, d) => a * d, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== numel) {
      const got = t.data instanceof Float32Array ? `${t.data.length} values` : 'no Float32Array';
      throw new ShapeError(`${where}: shape [${shape}] needs a Float32Array of ${numel} values, got ${got}`);
    }
    let bytes: Uint8Array;
    try {
      ggufTensorBytes(shape, t.type); // checks whole blocks along the innermost dim
      if (t.type === 'Q8_0') bytes = quantizeQ8_0(t.data);
      else if (t.type === 'Q4_0') bytes = quantizeQ4_0(t.data);
      else bytes = fromFloat32(t.data, t.type);
    } catch (e) {
      if (e instanceof ShapeError) throw new ShapeError(`${where}: ${e.message}`);
      if (e instanceof OspError) throw new OspError(`${where}: ${e.message}`);
      throw e;
    }
    prepared.push({ name, shape, type: t.type, bytes, offset });
    offset += padTo(bytes.length, alignment);
  }

  const w = new ByteWriter();
  w.bytes(utf8.encode('GGUF'));
  w.u32(GGUF_VERSION);
  w.u64(BigInt(prepared.length));
  w.u64(BigInt(kv.length));
  for (const [key, value] of kv) {
    w.string(key, `metadata key '${key}'`);
    writeValue(w, value, `metadata '${key}'`, 0, true);
  }
  for (const p of prepared) {
    w.string(p.name, `tensor '${p.name}'`);
    w.u32(p.shape.length);
    for (let i = p.shape.length - 1; i >= 0; i--) w.u64(BigInt(p.shape[i]!)); // innermost first
    w.u32(GGML_TYPE[p.type]);
    w.u64(BigInt(p.offset));
  }
  const header = w.result();
  const dataOffset = padTo(header.length, alignment);
  const out = new Uint8Array(dataOffset + offset); // zero-filled: the padding is zeros
  out.set(header, 0);
  for (const p of prepared) out.set(p.bytes, dataOffset + p.offset);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder

/** Smallest possible encodings, to reject counts the file cannot hold before looping over them. */
const MIN_KV_BYTES = 8 + 4 + 1; // empty key, type, a 1-byte value
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8; // empty name, n_dims, one dim, type, offset
const MIN_ITEM_BYTES: Readonly<Record<GgufType, number>> = {
  UINT8: 1,
  INT8: 1,
  BOOL: 1,
  UINT16: 2,
  INT16: 2,
  UINT32: 4,
  INT32: 4,
  FLOAT32: 4,
  UINT64: 8,
  INT64: 8,
  FLOAT64: 8,
  STRING: 8, // the length of an empty string
  ARRAY: 12, // item type and count of an empty array
};
const GGUF_TYPE_BY_ID: readonly GgufType[] = Object.keys(GGUF_TYPE) as GgufType[]; // ids are 0..12 in order
const GGML_TYPE_BY_ID = new Map<number, GgmlType>(GGML_TYPES.map((t) => [GGML_TYPE[t], t]));
const VALUE_TYPE_LIST = GGUF_TYPE_BY_ID.map((t, i) => `${t} ${i}`).join(', ');
const GGML_TYPE_LIST = GGML_TYPES.map((t) => `${t} ${GGML_TYPE[t]}`).join(', ');
const INT64_MAX = 2n ** 63n - 1n;

/** A bounds-checked little-endian cursor; every read names what it reads, for the error message. */
class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly src: Uint8Array,
    private readonly fail: (msg: string) => never,
  ) {
    this.view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  }

  get remaining(): number {
    return this.src.length - this.pos;
  }

  private take(n: number, what: string): number {
    if (this.remaining < n) {
      this.fail(`unexpected end of file reading ${what} at byte ${this.pos}: need ${n} bytes, ${this.remaining} left`);
    }
    const p = this.pos;
    this.pos += n;
    return p;
  }

  u8(what: string): number {
    return this.view.getUint8(this.take(1, what));
  }
  i8(what: string): number {
    return this.view.getInt8(this.take(1, what));
  }
  u16(what: string): number {
    return this.view.getUint16(this.take(2, what), true);
  }
  i16(what: string): number {
    return this.view.getInt16(this.take(2, what), true);
  }
  u32(what: string): number {
    return this.view.getUint32(this.take(4, what), true);
  }
  i32(what: string): number {
    return this.view.getInt32(this.take(4, what), true);
  }
  f32(what: string): number {
    return this.view.getFloat32(this.take(4, what), true);
  }
  f64(what: string): number {
    return this.view.getFloat64(this.take(8, what), true);
  }
  u64(what: string): bigint {
    return this.view.getBigUint64(this.take(8, what), true);
  }
  i64(what: string): bigint {
    return this.view.getBigInt64(this.take(8, what), true);
  }

  string(what: string): string {
    const n = this.u64(`the length of ${what}`);
    // Compare as bigint before converting: a length of 2^62 must not reach subarray or a loop.
    if (n > BigInt(this.remaining)) {
      this.fail(
        `${what}: string length ${n} extends past the end of the file ` +
          `(${this.remaining} bytes left at byte ${this.pos})`,
      );
    }
    const start = this.take(Number(n), what);
    try {
      return utf8Strict.decode(this.src.subarray(start, this.pos));
    } catch {
      return this.fail(`${what}: string at byte ${start} is not valid UTF-8`);
    }
  }
}

function typeName(id: number): string {
  return GGUF_TYPE_BY_ID[id] ?? `unknown (${id})`;
}

/** Reads one value of type id `t` (validated here); `depth` counts enclosing arrays. */
function readValue(r: Reader, t: number, where: string, depth: number, fail: (msg: string) => never): GgufValue {
  const type = GGUF_TYPE_BY_ID[t];
  if (type === undefined) fail(`${where}: unknown value type ${t}; valid types: ${VALUE_TYPE_LIST}`);
  if (type !== 'ARRAY') return { type, value: readScalar(r, type!, where, fail) } as GgufValue;

  if (depth >= GGUF_MAX_ARRAY_DEPTH) fail(`${where}: arrays nested deeper than ${GGUF_MAX_ARRAY_DEPTH} levels`);
  const itemId = r.u32(`the item type of ${where}`);
  const itemType = GGUF_TYPE_BY_ID[itemId];
  if (itemType === undefined) fail(`${where}: unknown array item type ${itemId}; valid types: ${VALUE_TYPE_LIST}`);
  const count = r.u64(`the item count of ${where}`);
  const minBytes = count * BigInt(MIN_ITEM_BYTES[itemType!]);
  if (minBytes > BigInt(r.remaining)) {
    fail(
      `${where}: array of ${count} ${itemType} items needs at least ${minBytes} bytes, ` +
        `but only ${r.remaining} remain at byte ${r.pos}`,
    );
  }
  const n = Number(count);
  const items: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) {
    items[i] =
      itemType === 'ARRAY'
        ? readValue(r, GGUF_TYPE.ARRAY, `${where}[${i}]`, depth + 1, fail)
        : readScalar(r, itemType!, `${where}[${i}]`, fail);
  }
  return { type: 'ARRAY', itemType, value: items } as GgufArray;
}

function readScalar(
  r: Reader,
  type: Exclude<GgufType, 'ARRAY'>,
  where: string,
  fail: (msg: string) => never,
): number | bigint | boolean | string {
  switch (type) {
    case 'UINT8':
      return r.u8(where);
    case 'INT8':
      return r.i8(where);
    case 'UINT16':
      return r.u16(where);
    case 'INT16':
      return r.i16(where);
    case 'UINT32':
      return r.u32(where);
    case 'INT32':
      return r.i32(where);
    case 'FLOAT32':
      return r.f32(where);
    case 'FLOAT64':
      return r.f64(where);
    case 'UINT64':
      return r.u64(where);
    case 'INT64':
      return r.i64(where);
    case 'STRING':
      return r.string(where);
    case 'BOOL': {
      const b = r.u8(where);
      // C++ readers load this byte straight into a bool: anything but 0/1 is undefined behaviour there.
      if (b > 1) fail(`${where}: expected a BOOL byte of 0 or 1, found ${b}`);
      return b === 1;
    }
  }
}

/**
 * Parses a GGUF v3 file image with strict validation. Every problem is a FormatError naming `file`
 * (and the key or tensor where there is one) with what was expected and what was found.
 *
 * Tensor `data` arrays are views into `bytes` (no copy, generally unaligned); convert them with
 * tensorToFloat32().
 *
 * @example
 *   const { kv, tensors } = decodeGguf(bytes, 'model.gguf');
 *   const arch = kv.get('general.architecture')?.value; // 'llama'
 */
export function decodeGguf(bytes: Uint8Array, file = '<buffer>'): GgufContents {
  const fail = (msg: string): never => {
    throw new FormatError(file, msg);
  };
  const src = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(src, fail);

  if (src.length < 4 || src[0] !== 0x47 || src[1] !== 0x47 || src[2] !== 0x55 || src[3] !== 0x46) {
    const found = Array.from(src.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    fail(`expected the magic "GGUF" (47 47 55 46), found ${src.length === 0 ? 'an empty file' : found}`);
  }
  r.pos = 4;
  const version = r.u32('the version');
  if (version !== GGUF_VERSION) {
    // A byte-swapped (big-endian) v3 file reads as 0x03000000: llama.cpp spots it the same way.
    const hint = (version & 0xffff) === 0 ? ' (a big-endian file? only little-endian is supported)' : '';
    fail(`unsupported GGUF version ${version}${hint}; supported: version ${GGUF_VERSION} only`);
  }
  const tensorCount = r.u64('tensor_count');
  const kvCount = r.u64('kv_count');
  // Fail fast on counts the file cannot possibly hold: nothing below loops or allocates on them.
  const left = BigInt(r.remaining);
  if (tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) > left) {
    fail(
      `tensor_count ${tensorCount} is impossible: each tensor info takes at least ${MIN_TENSOR_INFO_BYTES} bytes ` +
        `and only ${left} bytes follow the header`,
    );
  }
  if (kvCount * BigInt(MIN_KV_BYTES) > left) {
    fail(
      `kv_count ${kvCount} is impossible: each KV takes at least ${MIN_KV_BYTES} bytes ` +
        `and only ${left} bytes follow the header`,
    );
  }
  if (tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) + kvCount * BigInt(MIN_KV_BYTES) > left) {
    fail(
      `tensor_count ${tensorCount} and kv_count ${kvCount} together need more than the ${left} bytes ` +
        'after the header',
    );
  }

  const kv = new Map<string, GgufValue>();
  for (let i = 0, n = Number(kvCount); i < n; i++) {
    const key = r.string(`the key of KV #${i}`);
    if (kv.has(key)) fail(`duplicate key '${key}' (KV #${i})`);
    const t = r.u32(`the value type of KV '${key}'`);
    kv.set(key, readValue(r, t, `KV '${key}'`, 0, fail));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const align = kv.get('general.alignment');
  if (align !== undefined) {
    if (align.type !== 'UINT32') fail(`KV 'general.alignment': expected type UINT32, found ${align.type}`);
    alignment = align.value as number;
    if (!isPowerOfTwo(alignment)) fail(`KV 'general.alignment': expected a power of two, found ${alignment}`);
  }

  type Info = { name: string; shape: number[]; type: GgmlType; offset: bigint; byteLength: number };
  const infos: Info[] = [];
  const names = new Set<string>();
  for (let i = 0, n = Number(tensorCount); i < n; i++) {
    const name = r.string(`the name of tensor #${i}`);
    const nameBytes = utf8.encode(name).length;
    if (nameBytes >= GGML_MAX_NAME) {
      fail(`tensor #${i} '${name.slice(0, 80)}': name is ${nameBytes} bytes; expected fewer than ${GGML_MAX_NAME}`);
    }
    if (names.has(name)) fail(`duplicate tensor name '${name}' (tensor #${i})`);
    names.add(name);
    const where = `tensor '${name}'`;
    const nDims = r.u32(`n_dims of ${where}`);
    if (nDims < 1 || nDims > GGML_MAX_DIMS) fail(`${where}: expected n_dims in 1..${GGML_MAX_DIMS}, found ${nDims}`);
    const dims: bigint[] = [];
    let numel = 1n;
    for (let j = 0; j < nDims; j++) {
      const d = r.u64(`dim ${j} of ${where}`);
      if (d === 0n) fail(`${where}: dim ${j} is 0; expected every dim >= 1`);
      if (d > INT64_MAX) fail(`${where}: dim ${j} is ${d}, which is negative as ggml's int64`);
      numel *= d;
      if (numel > INT64_MAX) fail(`${where}: the product of dims [${[...dims, d]}...] overflows int64`);
      dims.push(d);
    }
    const typeId = r.u32(`the ggml type of ${where}`);
    const type = GGML_TYPE_BY_ID.get(typeId);
    if (type === undefined) {
      const other = OTHER_GGML_TYPE_NAMES[typeId];
      fail(
        `${where}: ${other ? `ggml type ${typeId} (${other}) is not supported` : `unknown ggml type ${typeId}`}; ` +
          `supported: ${GGML_TYPE_LIST}`,
      );
    }
    const { block, bytes: blockBytes } = GGML_LAYOUT[type!];
    if (dims[0]! % BigInt(block) !== 0n) {
      fail(`${where}: ${type} rows must be whole blocks of ${block}, but the innermost dim is ${dims[0]}`);
    }
    const byteLength = (numel / BigInt(block)) * BigInt(blockBytes);
    if (byteLength > BigInt(src.length)) {
      fail(
        `${where}: shape [${[...dims].reverse()}] of ${type} needs ${byteLength} bytes, ` +
          `more than the whole file (${src.length})`,
      );
    }
    const offset = r.u64(`the offset of ${where}`);
    // Every dim is at most the file size here, so the Numbers are exact.
    infos.push({ name, shape: [...dims].reverse().map(Number), type: type!, offset, byteLength: Number(byteLength) });
  }

  const dataOffset = padTo(r.pos, alignment);
  const dataLen = Math.max(0, src.length - dataOffset);
  for (const t of infos) {
    if (t.offset % BigInt(alignment) !== 0n) {
      fail(`tensor '${t.name}': offset ${t.offset} is not a multiple of the alignment ${alignment}`);
    }
    if (t.offset + BigInt(t.byteLength) > BigInt(dataLen)) {
      fail(
        `tensor '${t.name}': data [${t.offset}, ${t.offset + BigInt(t.byteLength)}) extends past the end of the ` +
          `data section (${dataLen} bytes from byte ${dataOffset})`,
      );
    }
  }
  // Offsets now fit in the file, so Numbers are exact.
  const placed = infos.map((t) => ({ ...t, offset: Number(t.offset) }));
  const byOffset = [...placed].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const a = byOffset[i - 1]!;
    const b = byOffset[i]!;
    if (b.offset < a.offset + a.byteLength) {
      fail(
        `tensor '${b.name}' [${b.offset}, ${b.offset + b.byteLength}) overlaps tensor '${a.name}' ` +
          `[${a.offset}, ${a.offset + a.byteLength})`,
      );
    }
  }
  // llama.cpp accepts only the packed layout: offsets are the running sum of padded sizes in info order.
  let expected = 0;
  for (const t of placed) {
    if (t.offset !== expected) {
      fail(
        `tensor '${t.name}': offset ${t.offset}, expected ${expected} (tensors must be packed in info order, ` +
          `each padded to ${alignment} bytes)`,
      );
    }
    expected += padTo(t.byteLength, alignment);
  }

  const tensors = placed.map((t) => ({
    ...t,
    data: src.subarray(dataOffset + t.offset, dataOffset + t.offset + t.byteLength),
  }));
  return { version, kv, tensors, alignment, dataOffset };
}

/**
 * A tensor's values as float32 in PyTorch row-major order, whatever its type: F32 copied, F16/BF16
 * widened, Q8_0/Q4_0 dequantized with their stored fp16 scales. Throws ShapeError when `data` does
 * not hold exactly `shape` of `type`.
 *
 * @example const w = tensorToFloat32(decodeGguf(bytes).tensors[0]!);
 */
export function tensorToFloat32(t: Pick<GgufTensor, 'name' | 'shape' | 'type' | 'data'>): Float32Array {
  const expected = ggufTensorBytes(t.shape, t.type);
  if (t.data.length !== expected) {
    throw new ShapeError(
      `tensorToFloat32: tensor '${t.name}' of shape [${t.shape}] ${t.type} needs ${expected} bytes, ` +
        `got ${t.data.length}`,
    );
  }
  switch (t.type) {
    case 'Q8_0':
      return dequantizeQ8_0(t.data);
    case 'Q4_0':
      return dequantizeQ4_0(t.data);
    default:
      return toFloat32({ dtype: t.type, shape: [...t.shape], data: t.data });
  }
}

/**
 * Reads and validates a GGUF file. A missing or unreadable file, like a malformed one, is a
 * FormatError naming the path.
 *
 * @example const { kv, tensors } = await readGgufFile('export/model.gguf');
 */
export async function readGgufFile(path: string): Promise<GgufContents> {
  const bytes = await readFileOrAsync(path, (msg) => new FormatError(path, `expected a GGUF file: ${msg}`));
  return decodeGguf(bytes, path);
}

/**
 * Encodes (see encodeGguf) and writes a GGUF file atomically (see writeFileAtomic): a crash leaves
 * either the previous file or the complete new one.
 *
 * @example await writeGgufFile('model.gguf', { kv, tensors });
 */
export async function writeGgufFile(path: string, input: GgufEncodeInput): Promise<void> {
  await writeFileAtomic(path, encodeGguf(input));
}
