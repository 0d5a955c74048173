/**
 * A minimal protocol-buffer wire-format encoder: just enough for the TensorBoard messages
 * (Event, Summary, HistogramProto, TensorProto, hparams plugin data). There is no schema here;
 * callers write fields by number, in ascending order by convention (decoders accept any order).
 *
 * Wire types: 0 varint, 1 fixed64 (double), 2 length-delimited (bytes, strings, sub-messages,
 * packed repeated scalars), 5 fixed32 (float).
 */
import { OspError } from '../errors.ts';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const MAX_FIELD = 2 ** 29 - 1;
const utf8 = new TextEncoder();

/**
 * Builds one serialized message. Every method appends one field and returns `this` so that small
 * messages can be written as one expression.
 *
 * @example
 *   const value = new ProtoWriter().string(1, 'loss').float(2, 0.5).finish(); // Summary.Value
 *   const summary = new ProtoWriter().message(1, value).finish();
 */
export class ProtoWriter {
  private buf = new Uint8Array(64);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  /** Number of bytes written so far. */
  get length(): number {
    return this.len;
  }

  /** Unsigned or signed integer as a varint (int32, int64, uint32, uint64, enum). */
  varint(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(value);
    return this;
  }

  /** bool as a varint 0/1. */
  bool(field: number, value: boolean): this {
    return this.varint(field, value ? 1 : 0);
  }

  /** fixed32 / uint32 stored as 4 little-endian bytes. */
  fixed32(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.ensure(4);
    this.view.setUint32(this.len, value >>> 0, true);
    this.len += 4;
    return this;
  }

  /** fixed64 / sfixed64 stored as 8 little-endian bytes. */
  fixed64(field: number, value: number | bigint): this {
    this.tag(field, WIRE_FIXED64);
    this.ensure(8);
    this.view.setBigUint64(this.len, BigInt.asUintN(64, toBigInt(value)), true);
    this.len += 8;
    return this;
  }

  /** float (IEEE single): the value is rounded to float32. */
  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.ensure(4);
    this.view.setFloat32(this.len, value, true);
    this.len += 4;
    return this;
  }

  /** double (IEEE double). */
  double(field: number, value: number): this {
    this.tag(field, WIRE_FIXED64);
    this.ensure(8);
    this.view.setFloat64(this.len, value, true);
    this.len += 8;
    return this;
  }

  /** bytes: length-delimited raw bytes. */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.rawVarint(value.length);
    this.raw(value);
    return this;
  }

  /** string: length-delimited UTF-8. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** Embedded message, given serialized or as a writer (which is finished here). */
  message(field: number, value: Uint8Array | ProtoWriter): this {
    return this.bytes(field, value instanceof ProtoWriter ? value.finish() : value);
  }

  /** `repeated double` in packed form (the proto3 default): one length-delimited run of doubles. */
  packedDoubles(field: number, values: ArrayLike<number>): this {
    this.tag(field, WIRE_LEN);
    this.rawVarint(values.length * 8);
    this.ensure(values.length * 8);
    for (let i = 0; i < values.length; i++) {
      this.view.setFloat64(this.len, values[i]!, true);
      this.len += 8;
    }
    return this;
  }

  /** The serialized message (a copy; the writer may be reused to append more fields). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  private tag(field: number, wire: number): void {
    if (!Number.isInteger(field) || field < 1 || field > MAX_FIELD) {
      throw new OspError(`protobuf: field number must be an integer in [1, ${MAX_FIELD}], got ${field}`);
    }
    // field << 3 overflows int32 for fields >= 2^28; multiply instead.
    this.rawVarint(field * 8 + wire);
  }

  private rawVarint(value: number | bigint): void {
    if (typeof value === 'number' && value >= 0) {
      if (!Number.isSafeInteger(value)) {
        throw new OspError(`protobuf: varint must be a safe integer, got ${value}`);
      }
      this.ensure(10);
      // Division instead of >>> 7: bit operators truncate to 32 bits and steps exceed 2^32.
      while (value >= 0x80) {
        this.buf[this.len++] = (value % 0x80) | 0x80;
        value = Math.floor(value / 0x80);
      }
      this.buf[this.len++] = value;
      return;
    }
    // Negative numbers are sign-extended to 64 bits (always 10 bytes), as protobuf does for int32/int64.
    let v = BigInt.asUintN(64, toBigInt(value));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  private raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  private ensure(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}

function toBigInt(value: number | bigint): bigint {
  if (typeof value === 'bigint') return value;
  if (!Number.isSafeInteger(value)) {
    throw new OspError(`protobuf: integer field must be a safe integer, got ${value}`);
  }
  return BigInt(value);
}
