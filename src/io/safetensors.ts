/**
 * The safetensors format: u64 LE header length N | N bytes of UTF-8 JSON | data buffer.
 *
 * The JSON maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
 * the data buffer) plus an optional "__metadata__" string->string map. The header is space-padded
 * so the data buffer starts at a multiple of 8, which lets readers map tensors without copying.
 *
 * The decoder is strict, like the Rust reference implementation: a checkpoint that Hugging Face
 * tools would reject must fail here too, with a FormatError that names the file, the tensor and
 * what was expected, rather than load garbage into a model.
 */
import { readFileOrAsync } from './read.ts';
import { endianness } from 'node:os';
import { FormatError, OspError, ShapeError } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';

/** Element types of the safetensors format, by their header name. */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_SIZES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
};

/** All dtype names, for validation messages. */
export const SAFETENSORS_DTYPES = Object.keys(DTYPE_SIZES) as SafetensorsDtype[];

/** One tensor: dtype, shape and its raw little-endian bytes (row-major). */
export interface TensorEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

/** The contents of a safetensors file. */
export interface SafetensorsContents {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

export interface DecodeOptions {
  /**
   * Copy each tensor's bytes into its own buffer (default false). Without it every `data` is a
   * view into the input: cheap, but it keeps the whole input alive and sees later changes to it.
   */
  copy?: boolean;
}

/** The reference implementation's limit; a larger header is a corrupt length field, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const ENTRY_KEYS = ['dtype', 'shape', 'data_offsets'] as const;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';
const utf8 = new TextEncoder();

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[], what: string): void {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ShapeError(`${what}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

/**
 * A float32 tensor entry; the values are copied.
 * @example f32Entry([2, 2], new Float32Array([1, 2, 3, 4]))
 */
export function f32Entry(shape: number[], values: Float32Array): TensorEntry {
  return floatEntry(shape, values, 'F32');
}

/**
 * An int32 tensor entry; the values are copied.
 * @example i32Entry([3], new Int32Array([1, 2, 3]))
 */
export function i32Entry(shape: number[], values: Int32Array): TensorEntry {
  checkShape(shape, 'i32Entry');
  if (numelOf(shape) !== values.length) {
    throw new ShapeError(`i32Entry: shape [${shape}] needs ${numelOf(shape)} values, got ${values.length}`);
  }
  const data = new Uint8Array(values.length * 4);
  const view = new DataView(data.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i]!, true);
  return { dtype: 'I32', shape: [...shape], data };
}

/**
 * A floating-point tensor entry stored as F32, F16 or BF16 (rounded to nearest even).
 * @example floatEntry([4], weights, 'BF16')
 */
export function floatEntry(shape: number[], values: ArrayLike<number>, dtype: 'F32' | 'F16' | 'BF16'): TensorEntry {
  checkShape(shape, 'floatEntry');
  if (numelOf(shape) !== values.length) {
    throw new ShapeError(`floatEntry: shape [${shape}] needs ${numelOf(shape)} values, got ${values.length}`);
  }
  return { dtype, shape: [...shape], data: fromFloat32(values, dtype) };
}

/**
 * Serializes tensors, in the order given, into a safetensors file image. `__metadata__` always
 * holds `format: 'pt'` (which transformers requires) unless `metadata` sets `format` itself.
 * Throws OspError for an empty, duplicate or reserved name, and ShapeError when an entry's byte
 * length does not match its shape and dtype.
 *
 * @example
 *   const bytes = encodeSafetensors([['w', f32Entry([2], new Float32Array([1, 2]))]], { step: '10' });
 */
export function encodeSafetensors(tensors: Iterable<[string, TensorEntry]>, metadata: Record<string, string> = {}): Uint8Array {
  // The JSON text is assembled by hand: JSON.stringify of an object would move integer-like
  // names ("0", "12") to the front and so lose the caller's order.
  const parts: string[] = [];
  const meta: [string, string][] = [['format', 'pt']];
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new OspError(`safetensors metadata '${k}' must be a string, got ${typeof v}`);
    if (k === 'format') meta[0] = [k, v];
    else meta.push([k, v]);
  }
  const metaJson = meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
  parts.push(`${JSON.stringify(METADATA_KEY)}:{${metaJson}}`);

  const seen = new Set<string>();
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '') throw new OspError('safetensors: tensor name must not be empty');
    if (name === METADATA_KEY) throw new OspError(`safetensors: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (seen.has(name)) throw new OspError(`safetensors: duplicate tensor name '${name}'`);
    seen.add(name);
    const size = DTYPE_SIZES[t.dtype];
    if (size === undefined) {
      throw new OspError(`safetensors: tensor '${name}' has unknown dtype '${t.dtype}'; valid: ${SAFETENSORS_DTYPES.join(', ')}`);
    }
    checkShape(t.shape, `safetensors tensor '${name}'`);
    const expected = numelOf(t.shape) * size;
    if (t.data.length !== expected) {
      throw new ShapeError(`safetensors tensor '${name}': shape [${t.shape}] of ${t.dtype} needs ${expected} bytes, got ${t.data.length}`);
    }
    const offsets = `[${offset},${offset + expected}]`;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":${offsets}}`);
    entries.push(t);
    offset += expected;
  }

  const json = utf8.encode(`{${parts.join(',')}}`);
  const headerLen = Math.ceil(json.length / 8) * 8; // 8-byte prefix + padded header = multiple of 8
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const t of entries) {
    out.set(t.data, pos);
    pos += t.data.length;
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `array ${JSON.stringify(v).slice(0, 60)}`;
  if (typeof v === 'object') return 'object';
  return `${typeof v} ${JSON.stringify(v)?.slice(0, 60)}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets a key as an own data property, so a key such as "__proto__" stays data, not a prototype. */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Parses a safetensors file image with strict validation. Every problem is a FormatError naming
 * `file` (and the tensor where there is one) with what was expected and what was found.
 *
 * The returned `data` arrays are views into `bytes` unless `copy` is set: they share its memory
 * and are generally not aligned, so read them with a DataView or toFloat32(), or copy them.
 *
 * @example const { tensors, metadata } = decodeSafetensors(bytes, 'ckpt.safetensors');
 */
export function decodeSafetensors(bytes: Uint8Array, file = '<buffer>', options: DecodeOptions = {}): SafetensorsContents {
  const fail = (msg: string): never => {
    throw new FormatError(file, msg);
  };
  // A plain Uint8Array view, so that a Buffer input does not leak Buffer semantics into `data`.
  const src = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (src.length < 8) fail(`expected at least 8 bytes (the u64 header length), found ${src.length}`);

  // Read the length as a bigint and check it against the real size before using it for anything:
  // a corrupt field (e.g. 2^60) must not become an allocation or a slice.
  const n64 = new DataView(src.buffer, src.byteOffset, 8).getBigUint64(0, true);
  if (n64 === 0n) fail('expected a header length > 0, found 0');
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`expected a header length <= ${MAX_HEADER_BYTES} bytes, found ${n64}`);
  if (n64 > BigInt(src.length - 8)) {
    fail(`header length ${n64} extends beyond the end of the file (${src.length - 8} bytes after the length field)`);
  }
  const headerLen = Number(n64);
  const headerBytes = src.subarray(8, 8 + headerLen);
  if (headerBytes[0] !== 0x7b) {
    fail(`expected the header to start with '{', found byte 0x${headerBytes[0]!.toString(16).padStart(2, '0')}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(header)) return fail(`expected the header to be a JSON object, found ${describe(header)}`);

  const dataStart = 8 + headerLen;
  const bufferLen = src.length - dataStart;
  const metadata: Record<string, string> = {};
  type Placed = { name: string; begin: number; end: number; entry: Omit<TensorEntry, 'data'> };
  const placed: Placed[] = [];

  for (const name of Object.keys(header)) {
    const raw = header[name];
    if (name === METADATA_KEY) {
      if (!isPlainObject(raw)) fail(`expected ${METADATA_KEY} to be an object of strings, found ${describe(raw)}`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`expected ${METADATA_KEY}['${k}'] to be a string, found ${describe(v)}`);
        setOwn(metadata, k, v as string);
      }
      continue;
    }
    if (name === '') fail('tensor name is empty');
    const where = `tensor '${name}'`;
    if (!isPlainObject(raw)) fail(`${where}: expected an object with dtype, shape, data_offsets; found ${describe(raw)}`);
    const obj = raw as Record<string, unknown>;
    const keys = Object.keys(obj);
    const missing = ENTRY_KEYS.filter((k) => !Object.hasOwn(obj, k));
    const extra = keys.filter((k) => !(ENTRY_KEYS as readonly string[]).includes(k));
    if (missing.length > 0 || extra.length > 0) {
      const found = [];
      if (missing.length > 0) found.push(`missing ${missing.join(', ')}`);
      if (extra.length > 0) found.push(`unexpected ${extra.join(', ')}`);
      fail(`${where}: expected exactly the keys dtype, shape, data_offsets; found ${found.join('; ')}`);
    }
    const dtype = obj.dtype;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZES, dtype)) {
      fail(`${where}: unknown dtype ${describe(dtype)}; valid dtypes: ${SAFETENSORS_DTYPES.join(', ')}`);
    }
    const shape = obj.shape;
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      fail(`${where}: expected shape to be an array of non-negative integers, found ${describe(shape)}`);
    }
    const offs = obj.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      fail(`${where}: expected data_offsets to be two non-negative integers [begin, end], found ${describe(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`${where}: expected data_offsets begin <= end, found [${begin}, ${end}]`);
    const size = DTYPE_SIZES[dtype as SafetensorsDtype];
    // bigint: a shape like [2^40, 2^40] must not silently round before the comparison.
    const need = (shape as number[]).reduce((acc, d) => acc * BigInt(d), 1n) * BigInt(size);
    if (need !== BigInt(end - begin)) {
      fail(
        `${where}: shape [${shape as number[]}] of ${dtype} needs ${need} bytes, ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > bufferLen) {
      fail(`${where}: data_offsets [${begin}, ${end}] extend beyond the data buffer (${bufferLen} bytes)`);
    }
    placed.push({
      name,
      begin,
      end,
      entry: { dtype: dtype as SafetensorsDtype, shape: (shape as number[]).map((d) => d + 0) }, // + 0 drops -0
    });
  }

  // The tensors must tile the buffer: sorted by offset, each starts where the previous ended.
  const sorted = [...placed].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: Placed | undefined;
  for (const p of sorted) {
    if (p.begin < cursor) {
      fail(`tensor '${p.name}' [${p.begin}, ${p.end}] overlaps tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`);
    }
    if (p.begin > cursor) {
      fail(
        `hole of ${p.begin - cursor} bytes in the data buffer at [${cursor}, ${p.begin}] before tensor ` +
          `'${p.name}'; expected tensors to cover the buffer exactly`,
      );
    }
    cursor = p.end;
    prev = p;
  }
  if (cursor !== bufferLen) {
    fail(
      `expected tensors to cover the data buffer exactly (${bufferLen} bytes), ` +
        `found ${bufferLen - cursor} trailing bytes not covered by any tensor`,
    );
  }

  // File (offset) order: the order the writer laid the tensors out. Header key order is not usable
  // because JSON.parse moves integer-like names ("0", "12") to the front.
  const tensors = new Map<string, TensorEntry>();
  for (const p of sorted) {
    const view = src.subarray(dataStart + p.begin, dataStart + p.end);
    tensors.set(p.name, { ...p.entry, data: options.copy ? new Uint8Array(view) : view });
  }
  return { tensors, metadata };
}

// Scratch pair for reinterpreting float32 bits.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bit pattern -> binary16 bit pattern, round to nearest, ties to even. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf stays Inf; NaN stays a (quiet) NaN, keeping the top payload bits.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15; // binary16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): value / 2^-24 = mant24 * 2^(e - 14).
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++; // may carry into the smallest normal: correct
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct, up to Inf
  return sign | h;
}

function f16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  return s * (1024 + m) * 2 ** (e - 25);
}

/** float32 bit pattern -> bfloat16 bit pattern, round to nearest, ties to even. */
function f32BitsToBf16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x0040) & 0xffff; // quiet NaN
  // Adding 0x7fff plus the kept LSB rounds half to even; no overflow since x <= 0xff800000 here.
  return ((x >>> 0) + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/**
 * Encodes numbers as raw little-endian F32, F16 or BF16 bytes. Values are first rounded to float32
 * (as the name says), then to the target type with round-to-nearest-even; NaN, ±Inf, signed zero
 * and subnormals are preserved, and values beyond the target's range become ±Inf.
 *
 * @example fromFloat32([1], 'F16') // Uint8Array [0x00, 0x3c]
 */
export function fromFloat32(values: ArrayLike<number>, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') {
    const out = new Uint8Array(values.length * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
    return out;
  }
  if (dtype !== 'F16' && dtype !== 'BF16') {
    throw new OspError(`fromFloat32: dtype must be F32, F16 or BF16, got '${dtype as string}'`);
  }
  const convert = dtype === 'F16' ? f32BitsToF16 : f32BitsToBf16;
  const out = new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!;
    const h = convert(u32[0]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

/**
 * Decodes a tensor's values as float32, whatever its dtype: floats are converted (F64 rounds),
 * integers become their numeric value (I64/U64 beyond 2^24 lose precision, as any float32 does),
 * BOOL becomes 0/1. Works on unaligned views such as those decodeSafetensors returns.
 *
 * @example const w = toFloat32(tensors.get('model.norm.weight')!);
 */
export function toFloat32(entry: TensorEntry): Float32Array {
  const size = DTYPE_SIZES[entry.dtype];
  if (size === undefined) throw new OspError(`toFloat32: unknown dtype '${entry.dtype}'`);
  if (entry.data.length % size !== 0) {
    throw new ShapeError(`toFloat32: ${entry.data.length} bytes is not a whole number of ${entry.dtype} elements`);
  }
  const n = entry.data.length / size;
  const d = entry.data;
  if (entry.dtype === 'F32' && LITTLE_ENDIAN_HOST) {
    // Copy into a fresh, aligned buffer and reinterpret: far faster than a DataView loop.
    return new Float32Array(new Uint8Array(d).buffer);
  }
  const out = new Float32Array(n);
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  switch (entry.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(d[2 * i]! | (d[2 * i + 1]! << 8));
      break;
    case 'BF16':
      {
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) bits[i] = ((d[2 * i]! | (d[2 * i + 1]! << 8)) << 16) >>> 0;
      }
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case 'U64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigUint64(8 * i, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case 'U32':
      for (let i = 0; i < n; i++) out[i] = view.getUint32(4 * i, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true);
      break;
    case 'U16':
      for (let i = 0; i < n; i++) out[i] = view.getUint16(2 * i, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      break;
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = d[i]!;
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = d[i] ? 1 : 0;
      break;
  }
  return out;
}

/**
 * Reads and validates a safetensors file. A missing or unreadable file, like a malformed one, is a
 * FormatError naming the path.
 *
 * @example const { tensors } = await readSafetensorsFile('runs/a/model.safetensors');
 */
export async function readSafetensorsFile(path: string, options: DecodeOptions = {}): Promise<SafetensorsContents> {
  const bytes = await readFileOrAsync(path, (msg) => new FormatError(path, `expected a safetensors file: ${msg}`));
  // The file's bytes are ours alone, so views into them are as good as copies.
  return decodeSafetensors(bytes, path, options);
}

/**
 * Writes tensors to a safetensors file atomically (see writeFileAtomic): a crash leaves either the
 * previous file or the complete new one.
 *
 * @example await writeSafetensorsFile('model.safetensors', model.entries(), { step: '1000' });
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Iterable<[string, TensorEntry]>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
