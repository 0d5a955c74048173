/**
 * CRC-32C (Castagnoli) and the "masked" variant that TFRecord / TensorBoard event files store.
 * The Castagnoli polynomial is used there (not the zlib one) because it has better error detection
 * for the record sizes involved and hardware support (SSE4.2 crc32 instruction) on the C++ side.
 */

/** Reflected Castagnoli polynomial: bit-reversed 0x1EDC6F41. */
const POLY = 0x82f63b78;

/** One entry per byte value: the CRC of that byte alone, so the loop does 8 bits per step. */
const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32C of `bytes` as an unsigned 32-bit integer. Pass a previous result as `crc` to continue a
 * checksum over data arriving in pieces.
 *
 * @example crc32c(new TextEncoder().encode('123456789')) === 0xe3069283
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * The masked CRC that TFRecord framing stores: rotate right by 15 bits and add a constant, so that
 * a CRC computed over data that itself contains CRCs does not degenerate (TensorFlow's crc32c.h).
 *
 * @example maskedCrc32c(u64le(24)) === 0x224b7fa3
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}
