/**
 * The GGUF decoder: decodeGguf (a strict parser of a file image; see ../gguf.ts for what it
 * rejects), tensorToFloat32 (any supported tensor type to float32) and readGgufFile.
 */
import { FormatError, ShapeError } from '../../errors.ts';
import { readFileOrAsync } from '../read.ts';
import { toFloat32 } from '../safetensors.ts';
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
  type GgufArray,
  type GgufContents,
  type GgufTensor,
  type GgufType,
  type GgufValue,
  OTHER_GGML_TYPE_NAMES,
  ggufTensorBytes,
  isPowerOfTwo,
  padTo,
  utf8,
} from './format.ts';
import { dequantizeQ4_0, dequantizeQ8_0 } from './quantize.ts';

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
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

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
      this.fail(`${what}: string length ${n} extends past the end of the file (${this.remaining} bytes left at byte ${this.pos})`);
    }
    const start = this.take(Number(n), what);
    try {
      return utf8Strict.decode(this.src.subarray(start, this.pos));
    } catch {
      return this.fail(`${what}: string at byte ${start} is not valid UTF-8`);
    }
  }
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
    fail(`kv_count ${kvCount} is impossible: each KV takes at least ${MIN_KV_BYTES} bytes and only ${left} bytes follow the header`);
  }
  if (tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) + kvCount * BigInt(MIN_KV_BYTES) > left) {
    fail(`tensor_count ${tensorCount} and kv_count ${kvCount} together need more than the ${left} bytes after the header`);
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
      fail(`${where}: shape [${[...dims].reverse()}] of ${type} needs ${byteLength} bytes, more than the whole file (${src.length})`);
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
      `tensorToFloat32: tensor '${t.name}' of shape [${t.shape}] ${t.type} needs ${expected} bytes, got ${t.data.length}`,
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
