/**
 * An independent protobuf wire-format decoder for tests (deliberately shares no code with
 * src/io/protobuf.ts). It decodes one message level into fields by number; callers descend into
 * sub-messages by decoding a field's bytes again, following the .proto field numbers.
 */

export type Field =
  | { wire: 0; varint: bigint }
  | { wire: 1; bytes: Uint8Array } // 8 bytes
  | { wire: 2; bytes: Uint8Array }
  | { wire: 5; bytes: Uint8Array }; // 4 bytes

export type Message = Map<number, Field[]>;

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error(`varint runs past the end at ${pos}`);
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
  throw new Error('varint longer than 10 bytes');
}

/** Decodes every field of one message; throws on malformed input (which a test should report). */
export function decodeMessage(buf: Uint8Array): Message {
  const out: Message = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new Error('field number 0');
    let f: Field;
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      pos = p2;
      f = { wire: 0, varint: v };
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos + n > buf.length) throw new Error('fixed field runs past the end');
      f = { wire, bytes: buf.slice(pos, pos + n) };
      pos += n;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      pos = p2;
      const n = Number(len);
      if (pos + n > buf.length) throw new Error(`length-delimited field ${field} runs past the end`);
      f = { wire: 2, bytes: buf.slice(pos, pos + n) };
      pos += n;
    } else {
      throw new Error(`unsupported wire type ${wire} for field ${field}`);
    }
    const list = out.get(field) ?? [];
    list.push(f);
    out.set(field, list);
  }
  return out;
}

function only(msg: Message, field: number, wire: number): Field | undefined {
  const list = msg.get(field);
  if (!list) return undefined;
  const last = list[list.length - 1]!; // protobuf: the last occurrence of a singular field wins
  if (last.wire !== wire) throw new Error(`field ${field}: expected wire type ${wire}, found ${last.wire}`);
  return last;
}

export function has(msg: Message, field: number): boolean {
  return msg.has(field);
}

/** Unsigned varint (uint64 / enum / bool); undefined when absent. */
export function getVarint(msg: Message, field: number): bigint | undefined {
  const f = only(msg, field, 0);
  return f && f.wire === 0 ? f.varint : undefined;
}

/** int64 varint reinterpreted as signed. */
export function getInt64(msg: Message, field: number): bigint | undefined {
  const v = getVarint(msg, field);
  return v === undefined ? undefined : BigInt.asIntN(64, v);
}

export function getDouble(msg: Message, field: number): number | undefined {
  const f = only(msg, field, 1);
  if (!f || f.wire !== 1) return undefined;
  return new DataView(f.bytes.buffer, f.bytes.byteOffset, 8).getFloat64(0, true);
}

export function getFloat(msg: Message, field: number): number | undefined {
  const f = only(msg, field, 5);
  if (!f || f.wire !== 5) return undefined;
  return new DataView(f.bytes.buffer, f.bytes.byteOffset, 4).getFloat32(0, true);
}

export function getBytes(msg: Message, field: number): Uint8Array | undefined {
  const f = only(msg, field, 2);
  return f && f.wire === 2 ? f.bytes : undefined;
}

export function getString(msg: Message, field: number): string | undefined {
  const b = getBytes(msg, field);
  return b === undefined ? undefined : new TextDecoder('utf-8', { fatal: true }).decode(b);
}

export function getMessage(msg: Message, field: number): Message | undefined {
  const b = getBytes(msg, field);
  return b === undefined ? undefined : decodeMessage(b);
}

/** All occurrences of a repeated message field, decoded. */
export function getMessages(msg: Message, field: number): Message[] {
  return (msg.get(field) ?? []).map((f) => {
    if (f.wire !== 2) throw new Error(`field ${field}: expected wire type 2, found ${f.wire}`);
    return decodeMessage(f.bytes);
  });
}

/** `repeated double`, accepting both packed and unpacked encodings as a real parser must. */
export function getDoubles(msg: Message, field: number): number[] {
  const out: number[] = [];
  for (const f of msg.get(field) ?? []) {
    if (f.wire === 1) out.push(new DataView(f.bytes.buffer, f.bytes.byteOffset, 8).getFloat64(0, true));
    else if (f.wire === 2) {
      if (f.bytes.length % 8 !== 0) throw new Error(`packed doubles of ${f.bytes.length} bytes`);
      const v = new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.length);
      for (let i = 0; i < f.bytes.length; i += 8) out.push(v.getFloat64(i, true));
    } else throw new Error(`field ${field}: wire type ${f.wire} for repeated double`);
  }
  return out;
}
