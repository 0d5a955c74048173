/**
 * Reads TensorBoard event files with the independent protobuf decoder: splits records, checks the
 * framing and both CRCs of every record (table-driven src crc32c and a bit-at-a-time one written here
 * from the definition), and decodes each Event.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { maskedCrc32c } from '../../src/io/crc32c.ts';
import { type Message, decodeMessage, getMessage, getMessages, getString } from './protobuf_decode.ts';

/** Bit-at-a-time CRC-32C and its mask, from the definitions: a second oracle for the framing. */
export function crc32cBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
export function maskedBitwise(bytes: Uint8Array): number {
  const c = crc32cBitwise(bytes);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** Splits an event file into records, checking the framing and both CRCs of every record. */
export function readEvents(path: string): Message[] {
  const buf = new Uint8Array(readFileSync(path));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const events: Message[] = [];
  let pos = 0;
  while (pos < buf.length) {
    expect(pos + 12).toBeLessThanOrEqual(buf.length);
    const lenBytes = buf.subarray(pos, pos + 8);
    const len = Number(view.getBigUint64(pos, true));
    const lenCrc = view.getUint32(pos + 8, true);
    expect(lenCrc).toBe(maskedCrc32c(lenBytes));
    expect(lenCrc).toBe(maskedBitwise(lenBytes));
    expect(pos + 16 + len).toBeLessThanOrEqual(buf.length);
    const data = buf.subarray(pos + 12, pos + 12 + len);
    const dataCrc = view.getUint32(pos + 12 + len, true);
    expect(dataCrc).toBe(maskedCrc32c(data));
    expect(dataCrc).toBe(maskedBitwise(data));
    events.push(decodeMessage(data));
    pos += 16 + len;
  }
  expect(pos).toBe(buf.length);
  return events;
}

/** The Summary.Values of an Event (Event.summary = 5, Summary.value = 1). */
export function values(event: Message): Message[] {
  const summary = getMessage(event, 5);
  expect(summary).toBeDefined();
  return getMessages(summary!, 1);
}

export function pluginName(value: Message): string | undefined {
  const meta = getMessage(value, 9);
  return meta && getString(getMessage(meta, 1)!, 1);
}
