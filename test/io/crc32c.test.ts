import { describe, expect, it } from 'vitest';
import { crc32c, maskedCrc32c } from '../../src/io/crc32c.ts';

/** Bit-at-a-time CRC-32C straight from the definition: the oracle for the table-driven version. */
function crc32cBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function u64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

describe('crc32c', () => {
  it('matches the standard check value', () => {
    const s = new TextEncoder().encode('123456789');
    expect(crc32c(s)).toBe(0xe3069283);
    expect(crc32cBitwise(s)).toBe(0xe3069283);
  });

  it('gives the known masked CRC of the u64 length 24', () => {
    expect(maskedCrc32c(u64le(24))).toBe(0x224b7fa3);
  });

  it('is 0 for empty input and continues across pieces', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const data = new TextEncoder().encode('the quick brown fox jumps over the lazy dog');
    expect(crc32c(data.subarray(10), crc32c(data.subarray(0, 10)))).toBe(crc32c(data));
  });

  it('agrees with the bitwise implementation on random data', () => {
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
    for (let len = 0; len < 300; len += 7) {
      const b = Uint8Array.from({ length: len }, rnd);
      expect(crc32c(b)).toBe(crc32cBitwise(b));
    }
  });
});
