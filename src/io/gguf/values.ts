/**
 * GGUF metadata value constructors: str, u8, i8, u16, i16, u32, i32, f32, f64, bool, u64, i64 and
 * arr, which build the typed {type, value} objects that encodeGguf writes.
 */
import { OspError } from '../../errors.ts';
import type { GgufArray, GgufType } from './format.ts';

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
