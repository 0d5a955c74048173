/**
 * GGUF format definitions shared by the encoder (write.ts) and the decoder (read.ts): version and
 * limit constants, the GGUF value-type and ggml tensor-type tables, the exported types, and the
 * layout helpers (alignment, padding, tensor byte sizes). The file layout itself is described in
 * ../gguf.ts.
 */
import { OspError, ShapeError } from '../../errors.ts';

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
export const GGML_LAYOUT: Readonly<Record<GgmlType, { block: number; bytes: number }>> = {
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
export const OTHER_GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  34: 'TQ1_0',
  35: 'TQ2_0',
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
// Sizes

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 2 ** 31 && (n & (n - 1)) === 0;
}

export function padTo(n: number, alignment: number): number {
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
    throw new ShapeError(`${type} quantizes the innermost dim in blocks of ${layout.block}; shape [${shape}] has innermost dim ${inner}`);
  }
  return (shape.reduce((a, d) => a * d, 1) / layout.block) * layout.bytes;
}

// Shared by the encoder and the decoder (names, keys and strings are UTF-8).
export const utf8 = new TextEncoder();
