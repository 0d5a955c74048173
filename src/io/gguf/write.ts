/**
 * The GGUF encoder: encodeGguf (metadata and tensors to a file image, with validation) and
 * writeGgufFile (the same, written atomically).
 */
import { OspError, ShapeError } from '../../errors.ts';
import { writeFileAtomic } from '../atomic.ts';
import { fromFloat32 } from '../safetensors.ts';
import {
  GGML_LAYOUT,
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPE,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_TYPE,
  GGUF_VERSION,
  type GgmlType,
  type GgufBigIntType,
  type GgufEncodeInput,
  type GgufType,
  type GgufValue,
  ggufTensorBytes,
  isPowerOfTwo,
  padTo,
  utf8,
} from './format.ts';
import { quantizeQ4_0, quantizeQ8_0 } from './quantize.ts';
import { u32 } from './values.ts';

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
      `${where}: expected a typed value such as str('x') or u32(1) ({type, value}), got ${JSON.stringify(v)?.slice(0, 60)}`,
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
    throw new OspError(`${where}: unknown array item type '${String(itemType)}'; valid: ${Object.keys(GGUF_TYPE).join(', ')}`);
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
      throw new ShapeError(`${where}: shape must have 1 to ${GGML_MAX_DIMS} dims, each an integer >= 1, got [${shape}]`);
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

/**
 * Encodes (see encodeGguf) and writes a GGUF file atomically (see writeFileAtomic): a crash leaves
 * either the previous file or the complete new one.
 *
 * @example await writeGgufFile('model.gguf', { kv, tensors });
 */
export async function writeGgufFile(path: string, input: GgufEncodeInput): Promise<void> {
  await writeFileAtomic(path, encodeGguf(input));
}
