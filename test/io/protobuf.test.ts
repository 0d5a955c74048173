import { describe, expect, it } from 'vitest';
import { ProtoWriter } from '../../src/io/protobuf.ts';
import {
  decodeMessage,
  getBytes,
  getDouble,
  getDoubles,
  getFloat,
  getInt64,
  getMessage,
  getString,
  getVarint,
} from '../helpers/protobuf_decode.ts';

describe('ProtoWriter', () => {
  it('encodes varints byte-exactly (protobuf encoding guide examples)', () => {
    expect([...new ProtoWriter().varint(1, 150).finish()]).toEqual([0x08, 0x96, 0x01]);
    expect([...new ProtoWriter().varint(1, 1).finish()]).toEqual([0x08, 0x01]);
    expect([...new ProtoWriter().string(2, 'testing').finish()]).toEqual([0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
    // -1 as int64: ten bytes, all ones
    expect([...new ProtoWriter().varint(1, -1).finish()]).toEqual([0x08, ...Array(9).fill(0xff), 0x01]);
  });

  it('round-trips every field kind through an independent decoder', () => {
    const inner = new ProtoWriter().string(1, 'inner ✓');
    const bytes = new ProtoWriter()
      .varint(1, 2 ** 53 - 1)
      .varint(2, -5)
      .varint(3, 12345678901234567890n)
      .double(4, Math.PI)
      .float(5, 0.1)
      .bytes(6, new Uint8Array([0, 255, 7]))
      .message(7, inner)
      .packedDoubles(8, [1.5, -2, Infinity])
      .bool(9, true)
      .fixed32(10, 0xdeadbeef)
      .fixed64(11, 2n ** 63n)
      .varint(536870911, 7) // largest field number
      .finish();
    const m = decodeMessage(bytes);
    expect(getVarint(m, 1)).toBe(BigInt(2 ** 53 - 1));
    expect(getInt64(m, 2)).toBe(-5n);
    expect(getVarint(m, 3)).toBe(12345678901234567890n);
    expect(getDouble(m, 4)).toBe(Math.PI);
    expect(getFloat(m, 5)).toBe(Math.fround(0.1));
    expect([...getBytes(m, 6)!]).toEqual([0, 255, 7]);
    expect(getString(getMessage(m, 7)!, 1)).toBe('inner ✓');
    expect(getDoubles(m, 8)).toEqual([1.5, -2, Infinity]);
    expect(getVarint(m, 9)).toBe(1n);
    const f10 = m.get(10)![0]!;
    expect(f10.wire).toBe(5);
    const f11 = m.get(11)![0]!;
    expect(f11.wire).toBe(1);
    expect(getVarint(m, 536870911)).toBe(7n);
  });

  it('rejects invalid field numbers and unsafe integers', () => {
    expect(() => new ProtoWriter().varint(0, 1)).toThrow(/field number/);
    expect(() => new ProtoWriter().varint(2 ** 29, 1)).toThrow(/field number/);
    expect(() => new ProtoWriter().varint(1, 2 ** 60)).toThrow(/safe integer/);
    expect(() => new ProtoWriter().varint(1, 1.5)).toThrow(/safe integer/);
  });

  it('grows its buffer for large payloads', () => {
    const big = new Uint8Array(100_000).map((_, i) => i & 0xff);
    const m = decodeMessage(new ProtoWriter().bytes(1, big).finish());
    expect(Buffer.from(getBytes(m, 1)!).equals(Buffer.from(big))).toBe(true);
  });
});
