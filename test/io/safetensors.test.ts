import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, OspError, ShapeError } from '../../src/errors.ts';
import {
  DTYPE_SIZES,
  SAFETENSORS_DTYPES,
  type SafetensorsDtype,
  type TensorEntry,
  decodeSafetensors,
  encodeSafetensors,
  f32Entry,
  floatEntry,
  fromFloat32,
  i32Entry,
  readSafetensorsFile,
  toFloat32,
  writeSafetensorsFile,
} from '../../src/io/safetensors.ts';
import { rng } from '../helpers/prng.ts';
import { tempDir } from '../helpers/scratch.ts';

const enc = new TextEncoder();

/** u64 LE length | header text (space-padded to 8 unless pad=false) | data: for hand-built files. */
function craft(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let h = typeof header === 'string' ? enc.encode(header) : header;
  if (pad && h.length % 8 !== 0) {
    const p = new Uint8Array(Math.ceil(h.length / 8) * 8).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function withLength(len: bigint, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + rest.length);
  new DataView(out.buffer).setBigUint64(0, len, true);
  out.set(rest, 8);
  return out;
}

/** The FormatError thrown by decoding `bytes` as "bad.safetensors" (fails the test if none). */
function formatError(bytes: Uint8Array): FormatError {
  try {
    decodeSafetensors(bytes, 'bad.safetensors');
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).file).toBe('bad.safetensors');
    expect((e as Error).message).toMatch(/^bad\.safetensors: /);
    return e as FormatError;
  }
  throw new Error('expected a FormatError, but decoding succeeded');
}

const entry = (dtype: string, shape: unknown, offsets: unknown) => JSON.stringify({ dtype, shape, data_offsets: offsets });

describe('safetensors encode/decode', () => {
  it('round-trips every dtype, including scalars and empty tensors', () => {
    const r = rng(1);
    const tensors: [string, TensorEntry][] = [];
    for (const dtype of SAFETENSORS_DTYPES) {
      for (const shape of [[2, 3], [], [0, 4]]) {
        const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[dtype];
        const data = new Uint8Array(n).map(() => (dtype === 'BOOL' ? (r() < 0.5 ? 1 : 0) : Math.floor(r() * 256)));
        tensors.push([`${dtype.toLowerCase()}.${shape.join('x') || 'scalar'}`, { dtype, shape, data }]);
      }
    }
    expect(SAFETENSORS_DTYPES).toHaveLength(13);
    const bytes = encodeSafetensors(tensors, { step: '42', note: 'ünïcødé' });
    const { tensors: back, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt', step: '42', note: 'ünïcødé' });
    expect([...back.keys()]).toEqual(tensors.map(([n]) => n));
    for (const [name, t] of tensors) {
      const b = back.get(name)!;
      expect(b.dtype).toBe(t.dtype);
      expect(b.shape).toEqual(t.shape);
      expect([...b.data]).toEqual([...t.data]);
    }
    // The data buffer starts at a multiple of 8.
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
  });

  it('lays out bytes exactly as a hand-built file', () => {
    const bytes = encodeSafetensors([
      ['b', f32Entry([2], new Float32Array([1, -2]))],
      ['a', i32Entry([1], new Int32Array([7]))],
    ]);
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"a":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    expect(padded.length % 8).toBe(0);
    const expected = new Uint8Array(8 + padded.length + 12);
    const v = new DataView(expected.buffer);
    v.setUint32(0, padded.length, true); // low half of the u64; high half stays 0
    expected.set(enc.encode(padded), 8);
    const d = 8 + padded.length;
    v.setFloat32(d, 1, true);
    v.setFloat32(d + 4, -2, true);
    v.setInt32(d + 8, 7, true);
    expect([...bytes]).toEqual([...expected]);
  });

  it('keeps the caller order for integer-like names and lets metadata override format', () => {
    const e = () => f32Entry([1], new Float32Array([0]));
    const bytes = encodeSafetensors(
      [
        ['10', e()],
        ['2', e()],
        ['z', e()],
        ['__proto__', e()],
      ],
      { format: 'np', extra: 'x' },
    );
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))));
    expect(text.indexOf('"10"')).toBeLessThan(text.indexOf('"2"'));
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect([...tensors.keys()]).toEqual(['10', '2', 'z', '__proto__']);
    expect(tensors.get('2')!.data.byteOffset - tensors.get('10')!.data.byteOffset).toBe(4);
    expect(metadata).toEqual({ format: 'np', extra: 'x' });
  });

  it('returns views into the input by default and copies on request', () => {
    const bytes = encodeSafetensors([['w', f32Entry([2], new Float32Array([1, 2]))]]);
    const view = decodeSafetensors(bytes).tensors.get('w')!;
    expect(view.data.buffer).toBe(bytes.buffer);
    const copy = decodeSafetensors(bytes, 'x', { copy: true }).tensors.get('w')!;
    expect(copy.data.buffer).not.toBe(bytes.buffer);
    bytes[bytes.length - 1] ^= 0xff;
    expect(view.data[7]).toBe(bytes[bytes.length - 1]);
    expect(copy.data[7]).not.toBe(bytes[bytes.length - 1]);
    // A Buffer input gives plain Uint8Array views.
    const fromBuffer = decodeSafetensors(Buffer.from(bytes)).tensors.get('w')!;
    expect(fromBuffer.data.constructor).toBe(Uint8Array);
  });

  it('decodes an empty file ({} header, no data) and a file without metadata', () => {
    expect(decodeSafetensors(craft('{}'))).toEqual({ tensors: new Map(), metadata: {} });
    const data = new Uint8Array(4);
    const r = decodeSafetensors(craft(`{"t":${entry('U8', [4], [0, 4])}}`, data));
    expect(r.metadata).toEqual({});
    expect(r.tensors.get('t')!.shape).toEqual([4]);
  });

  it('rejects bad inputs to the encoder', () => {
    const e = f32Entry([1], new Float32Array([0]));
    expect(() =>
      encodeSafetensors([
        ['a', e],
        ['a', e],
      ]),
    ).toThrow(/duplicate tensor name 'a'/);
    expect(() => encodeSafetensors([['', e]])).toThrow(/empty/);
    expect(() => encodeSafetensors([['__metadata__', e]])).toThrow(/reserved/);
    expect(() => encodeSafetensors([['a', { dtype: 'F32', shape: [2], data: new Uint8Array(4) }]])).toThrow(ShapeError);
    expect(() => encodeSafetensors([['a', { dtype: 'F8' as SafetensorsDtype, shape: [1], data: new Uint8Array(1) }]])).toThrow(
      /unknown dtype 'F8'/,
    );
    expect(() => encodeSafetensors([['a', e]], { n: 1 as unknown as string })).toThrow(OspError);
    expect(() => f32Entry([3], new Float32Array(2))).toThrow(ShapeError);
    expect(() => i32Entry([-1], new Int32Array(0))).toThrow(ShapeError);
  });
});

describe('safetensors validation', () => {
  const f4 = new Uint8Array(4);
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['file shorter than 8 bytes', () => new Uint8Array(5), /at least 8 bytes.*found 5/],
    ['header length 0', () => withLength(0n, new Uint8Array(16)), /header length > 0, found 0/],
    ['header length over the limit', () => withLength(100_000_001n, new Uint8Array(16)), /<= 100000000 bytes, found 100000001/],
    ['header length 2^60', () => withLength(2n ** 60n, enc.encode('{}')), /found 1152921504606846976/],
    ['header length 2^64 - 1', () => withLength(2n ** 64n - 1n, enc.encode('{}')), /found 18446744073709551615/],
    [
      'header beyond the file end',
      () => withLength(64n, enc.encode('{"a":1}')),
      /header length 64 extends beyond the end of the file \(7 bytes/,
    ],
    ['header not UTF-8', () => craft(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), /not valid UTF-8/],
    ['header starting with a space', () => craft(' {}'), /start with '\{', found byte 0x20/],
    ['header that is an array', () => craft('[]'), /start with '\{', found byte 0x5b/],
    ['header not JSON', () => craft('{"a":'), /not valid JSON/],
    ['header with trailing garbage', () => craft('{}x'), /not valid JSON/],
    ['entry that is a number', () => craft('{"w":5}'), /tensor 'w': expected an object.*found number 5/],
    ['entry that is an array', () => craft('{"w":[1]}'), /tensor 'w': expected an object.*found array/],
    ['entry that is null', () => craft('{"w":null}'), /tensor 'w'.*found null/],
    [
      'entry with an extra key',
      () => craft(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`, f4),
      /tensor 'w': expected exactly the keys dtype, shape, data_offsets; found unexpected extra/,
    ],
    ['entry missing a key', () => craft(`{"w":{"dtype":"F32","shape":[1]}}`, f4), /tensor 'w'.*missing data_offsets/],
    [
      'unknown dtype',
      () => craft(`{"w":${entry('F8', [1], [0, 1])}}`, new Uint8Array(1)),
      /tensor 'w': unknown dtype string "F8"; valid dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, U16, U32, U64, BOOL/,
    ],
    ['dtype not a string', () => craft(`{"w":${entry(4 as unknown as string, [1], [0, 4])}}`, f4), /tensor 'w': unknown dtype number 4/],
    ['dtype from Object.prototype', () => craft(`{"w":${entry('toString', [1], [0, 4])}}`, f4), /unknown dtype/],
    [
      'shape not an array',
      () => craft(`{"w":${entry('F32', 1, [0, 4])}}`, f4),
      /tensor 'w': expected shape to be an array of non-negative integers, found number 1/,
    ],
    ['negative shape', () => craft(`{"w":${entry('F32', [-1], [0, 4])}}`, f4), /tensor 'w': expected shape.*\[-1\]/],
    ['fractional shape', () => craft(`{"w":${entry('F32', [1.5], [0, 4])}}`, f4), /tensor 'w': expected shape/],
    ['string in shape', () => craft(`{"w":${entry('F32', ['1'], [0, 4])}}`, f4), /tensor 'w': expected shape/],
    [
      'unsafe integer in shape',
      () => craft(`{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}}`, f4),
      /tensor 'w': expected shape/,
    ],
    [
      'offsets not an array',
      () => craft(`{"w":${entry('F32', [1], 'x')}}`, f4),
      /tensor 'w': expected data_offsets to be two non-negative integers/,
    ],
    ['three offsets', () => craft(`{"w":${entry('F32', [1], [0, 4, 8])}}`, f4), /tensor 'w': expected data_offsets to be two/],
    ['negative offset', () => craft(`{"w":${entry('F32', [1], [-4, 0])}}`, f4), /tensor 'w': expected data_offsets/],
    ['fractional offset', () => craft(`{"w":${entry('F32', [1], [0, 4.5])}}`, f4), /tensor 'w': expected data_offsets/],
    [
      'begin > end',
      () => craft(`{"w":${entry('F32', [0], [4, 0])}}`, f4),
      /tensor 'w': expected data_offsets begin <= end, found \[4, 0\]/,
    ],
    [
      'span != numel * size',
      () => craft(`{"w":${entry('F32', [2], [0, 4])}}`, f4),
      /tensor 'w': shape \[2\] of F32 needs 8 bytes, but data_offsets \[0, 4\] span 4/,
    ],
    [
      'huge shape whose product overflows',
      () => craft(`{"w":${entry('F32', [2 ** 40, 2 ** 40], [0, 4])}}`, f4),
      /tensor 'w'.*needs 4835703278458516698824704 bytes/,
    ],
    [
      'offsets beyond the buffer',
      () => craft(`{"w":${entry('F32', [2], [0, 8])}}`, f4),
      /tensor 'w': data_offsets \[0, 8\] extend beyond the data buffer \(4 bytes\)/,
    ],
    [
      'overlapping tensors',
      () => craft(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [2], [4, 12])}}`, new Uint8Array(12)),
      /tensor 'b' \[4, 12\] overlaps tensor 'a' \[0, 8\]/,
    ],
    [
      'a hole between tensors',
      () => craft(`{"a":${entry('F32', [1], [0, 4])},"b":${entry('F32', [1], [8, 12])}}`, new Uint8Array(12)),
      /hole of 4 bytes.*\[4, 8\] before tensor 'b'/,
    ],
    ['a hole at the start', () => craft(`{"a":${entry('F32', [1], [4, 8])}}`, new Uint8Array(8)), /hole of 4 bytes.*before tensor 'a'/],
    [
      'trailing bytes',
      () => craft(`{"a":${entry('F32', [1], [0, 4])}}`, new Uint8Array(8)),
      /cover the data buffer exactly \(8 bytes\), found 4 trailing bytes/,
    ],
    ['data but no tensors', () => craft('{}', new Uint8Array(8)), /found 8 trailing bytes/],
    ['metadata that is an array', () => craft('{"__metadata__":["pt"]}'), /expected __metadata__ to be an object of strings, found array/],
    [
      'metadata with a number',
      () => craft('{"__metadata__":{"format":"pt","step":3}}'),
      /expected __metadata__\['step'\] to be a string, found number 3/,
    ],
    ['metadata null', () => craft('{"__metadata__":null}'), /__metadata__.*found null/],
    ['empty tensor name', () => craft(`{"":${entry('F32', [1], [0, 4])}}`, f4), /tensor name is empty/],
  ];

  it.each(cases)('%s', (_name, make, message) => {
    expect(formatError(make()).message).toMatch(message);
  });

  it('checks a 2^60 header length against the file size without allocating', () => {
    // 2^60 bytes could never be allocated: getting a FormatError at all (rather than a RangeError)
    // shows the size field was checked before use; it must also be immediate.
    const t0 = performance.now();
    const err = formatError(withLength(2n ** 60n, new Uint8Array(32).fill(0x7b)));
    expect(performance.now() - t0).toBeLessThan(50);
    expect(err.message).toMatch(/header length/);
  });

  it('produces only FormatErrors or valid decodes under thousands of random mutations', () => {
    const r = rng(20240520);
    const base = encodeSafetensors(
      [
        ['model.embed_tokens.weight', floatEntry([4, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'BF16')],
        ['model.norm.weight', f32Entry([3], new Float32Array([1, 1, 1]))],
        ['ids', i32Entry([2], new Int32Array([5, -5]))],
        ['mask', { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }],
        ['empty', { dtype: 'F16', shape: [0], data: new Uint8Array(0) }],
      ],
      { step: '7' },
    );
    const headerEnd = 8 + Number(new DataView(base.buffer).getBigUint64(0, true));
    const jsonChars = enc.encode('{}[]":,0123456789-.eE ntfaF_x\\');
    let ok = 0;
    let rejected = 0;
    const unexpected: string[] = [];
    for (let iter = 0; iter < 4000; iter++) {
      let b: Uint8Array = base.slice();
      const kind = Math.floor(r() * 6);
      const flips = 1 + Math.floor(r() * 3);
      if (kind === 0) {
        // random bytes anywhere
        for (let k = 0; k < flips; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      } else if (kind === 1 || kind === 2) {
        // JSON-significant characters inside the header, where most of the validation lives
        for (let k = 0; k < flips; k++) b[8 + Math.floor(r() * (headerEnd - 8))] = jsonChars[Math.floor(r() * jsonChars.length)]!;
      } else if (kind === 3) {
        b = b.slice(0, Math.floor(r() * b.length));
      } else if (kind === 4) {
        // a different length field: small deltas, random u32, random u64
        const v = new DataView(b.buffer);
        const which = r();
        const len =
          which < 0.4
            ? BigInt(headerEnd - 8 + Math.floor(r() * 33) - 16)
            : which < 0.7
              ? BigInt(Math.floor(r() * 2 ** 32))
              : (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
        v.setBigUint64(0, len < 0n ? 0n : len, true);
      } else {
        // extra bytes appended, or a bit flip in the data region
        if (r() < 0.5) {
          const extra = new Uint8Array(1 + Math.floor(r() * 16));
          const c = new Uint8Array(b.length + extra.length);
          c.set(b);
          b = c;
        } else {
          const i = headerEnd + Math.floor(r() * (b.length - headerEnd));
          b[i] ^= 1 << Math.floor(r() * 8);
        }
      }
      try {
        const { tensors } = decodeSafetensors(b, 'mutant.safetensors');
        ok++;
        // A successful decode must still describe a consistent file.
        let total = 0;
        for (const t of tensors.values()) {
          expect(t.data.length).toBe(t.shape.reduce((a, d) => a * d, 1) * DTYPE_SIZES[t.dtype]);
          total += t.data.length;
        }
        const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
        expect(total).toBe(b.length - 8 - n);
      } catch (e) {
        if (e instanceof FormatError && e.message.startsWith('mutant.safetensors: ')) rejected++;
        else unexpected.push(`iteration ${iter}: ${String(e)}`);
      }
    }
    expect(unexpected).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(1000);
  });
});

// --- float conversions -------------------------------------------------------------------------

/** binary16 bits -> value, from the IEEE 754 definition (independent of the code under test). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (e === 0 ? (m / 1024) * 2 ** -14 : (1 + m / 1024) * 2 ** (e - 15));
}

/** bfloat16 bits -> value: the top half of a float32. */
function bf16Value(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, h << 16);
  return dv.getFloat32(0);
}

function bits16(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) out.push(bytes[i]! | (bytes[i + 1]! << 8));
  return out;
}

const f16 = (x: number) => bits16(fromFloat32([x], 'F16'))[0]!;
const bf16 = (x: number) => bits16(fromFloat32([x], 'BF16'))[0]!;

describe('float conversions', () => {
  it('encodes known F16 bit patterns', () => {
    expect(f16(1)).toBe(0x3c00);
    expect(f16(-2)).toBe(0xc000);
    expect(f16(0)).toBe(0x0000);
    expect(f16(-0)).toBe(0x8000);
    expect(f16(65504)).toBe(0x7bff); // largest finite
    expect(f16(65519)).toBe(0x7bff); // below the halfway point to 65536
    expect(f16(65520)).toBe(0x7c00); // halfway, odd mantissa: ties to even = Inf
    expect(f16(1e6)).toBe(0x7c00);
    expect(f16(-1e6)).toBe(0xfc00);
    expect(f16(Infinity)).toBe(0x7c00);
    expect(f16(-Infinity)).toBe(0xfc00);
    const nan = f16(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(f16(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f16(2 ** -14 - 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(f16(2 ** -25)).toBe(0x0000); // halfway to the smallest subnormal: ties to even (0)
    expect(f16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f16(3 * 2 ** -25)).toBe(0x0002); // 1.5 subnormal units: tie, to even (2)
    expect(f16(5 * 2 ** -25)).toBe(0x0002); // 2.5 units: tie, to even (2)
    expect(f16(2 ** -14 - 2 ** -25)).toBe(0x0400); // tie between 0x3ff and 0x400: rounds up into the normals
    expect(f16(1 + 2 ** -11)).toBe(0x3c00); // tie, even is 1.0
    expect(f16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02
    expect(f16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f16(-(1 + 3 * 2 ** -11))).toBe(0xbc02);
    expect(f16(2 ** -30)).toBe(0x0000);
    expect(f16(-(2 ** -30))).toBe(0x8000);
  });

  it('encodes known BF16 bit patterns', () => {
    expect(bf16(1)).toBe(0x3f80);
    expect(bf16(-2)).toBe(0xc000);
    expect(bf16(-0)).toBe(0x8000);
    expect(bf16(1 + 2 ** -8)).toBe(0x3f80); // tie, even
    expect(bf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie between 0x3f81 and 0x3f82
    expect(bf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(bf16(3.4028234663852886e38)).toBe(0x7f80); // float32 max rounds up to Inf
    expect(bf16(Infinity)).toBe(0x7f80);
    expect(bf16(-Infinity)).toBe(0xff80);
    const nan = bf16(NaN);
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
    expect(bf16(2 ** -133)).toBe(0x0001); // float32 subnormal, exactly a bf16 subnormal
    expect(bf16(2 ** -149)).toBe(0x0000); // smallest float32 subnormal: far below half a bf16 unit
  });

  it('rounds every F16 and BF16 halfway point to even, and neighbours of it to the nearer value', () => {
    for (const [dtype, value, top] of [
      ['F16', halfValue, 0x7bff],
      ['BF16', bf16Value, 0x7f7f],
    ] as const) {
      const mids: number[] = [];
      const below: number[] = [];
      const above: number[] = [];
      for (let h = 0; h < top; h++) {
        const mid = (value(h) + value(h + 1)) / 2;
        expect(Math.fround(mid)).toBe(mid); // the tie itself is exactly representable in float32
        mids.push(mid);
        const f = new Float32Array([mid]);
        const u = new Uint32Array(f.buffer);
        u[0]! -= 1;
        below.push(f[0]!);
        u[0]! += 2;
        above.push(f[0]!);
      }
      const m = bits16(fromFloat32(mids, dtype));
      const lo = bits16(fromFloat32(below, dtype));
      const hi = bits16(fromFloat32(above, dtype));
      const neg = bits16(
        fromFloat32(
          mids.map((x) => -x),
          dtype,
        ),
      );
      for (let h = 0; h < top; h++) {
        const even = h % 2 === 0 ? h : h + 1;
        if (m[h] !== even || lo[h] !== h || hi[h] !== h + 1 || neg[h] !== (even | 0x8000)) {
          throw new Error(`${dtype} h=0x${h.toString(16)}: tie->${m[h]}, below->${lo[h]}, above->${hi[h]}, -tie->${neg[h]}`);
        }
      }
    }
  });

  it('decodes every F16 and BF16 bit pattern and re-encodes it unchanged', () => {
    const all = new Uint8Array(65536 * 2);
    for (let h = 0; h < 65536; h++) {
      all[2 * h] = h & 0xff;
      all[2 * h + 1] = h >> 8;
    }
    for (const [dtype, value] of [
      ['F16', halfValue],
      ['BF16', bf16Value],
    ] as const) {
      const vals = toFloat32({ dtype, shape: [65536], data: all });
      const again = bits16(fromFloat32(vals, dtype));
      for (let h = 0; h < 65536; h++) {
        const want = value(h);
        if (Number.isNaN(want)) {
          if (!Number.isNaN(vals[h]!)) throw new Error(`${dtype} 0x${h.toString(16)} should be NaN`);
          continue;
        }
        if (!Object.is(vals[h], want) || again[h] !== h) {
          throw new Error(`${dtype} 0x${h.toString(16)}: decoded ${vals[h]}, want ${want}; re-encoded ${again[h]}`);
        }
      }
    }
  });

  it('converts every dtype to float32, from unaligned views', () => {
    const cases: [SafetensorsDtype, (v: DataView, i: number, x: number) => void, number[]][] = [
      ['F64', (v, i, x) => v.setFloat64(i * 8, x, true), [1.5, -1e300, 0.1]],
      ['F32', (v, i, x) => v.setFloat32(i * 4, x, true), [1.5, -3, 1e-40]],
      ['I64', (v, i, x) => v.setBigInt64(i * 8, BigInt(x), true), [-5, 2 ** 40, 0]],
      ['U64', (v, i, x) => v.setBigUint64(i * 8, BigInt(x), true), [7, 2 ** 50, 1]],
      ['I32', (v, i, x) => v.setInt32(i * 4, x, true), [-2147483648, 5, 16777216]],
      ['U32', (v, i, x) => v.setUint32(i * 4, x, true), [4294967295, 0, 3]],
      ['I16', (v, i, x) => v.setInt16(i * 2, x, true), [-32768, 1, 32767]],
      ['U16', (v, i, x) => v.setUint16(i * 2, x, true), [65535, 2, 0]],
      ['I8', (v, i, x) => v.setInt8(i, x), [-128, 127, 0]],
      ['U8', (v, i, x) => v.setUint8(i, x), [255, 1, 0]],
      ['BOOL', (v, i, x) => v.setUint8(i, x), [1, 0, 1]],
    ];
    for (const [dtype, set, xs] of cases) {
      const size = DTYPE_SIZES[dtype];
      const backing = new Uint8Array(1 + xs.length * size);
      const data = backing.subarray(1); // odd byte offset: not aligned for any multi-byte type
      const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
      xs.forEach((x, i) => set(v, i, x));
      expect([...toFloat32({ dtype, shape: [xs.length], data })], dtype).toEqual(xs.map((x) => Math.fround(x)));
    }
    // F64 -> F32 rounds (and overflows to Inf like any float32 conversion).
    expect(toFloat32({ dtype: 'F64', shape: [1], data: new Uint8Array(new Float64Array([-1e300]).buffer) })[0]).toBe(-Infinity);
  });

  it('builds entries with floatEntry in each float dtype', () => {
    const xs = [0.1, -2.5, 65504, 1e-8];
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const e = floatEntry([2, 2], xs, dtype);
      expect(e.data.length).toBe(4 * DTYPE_SIZES[dtype]);
      const back = toFloat32(e);
      xs.forEach((x, i) => {
        const rel = dtype === 'F32' ? 1e-7 : dtype === 'F16' ? 1e-3 : 4e-3;
        if (Math.abs(x) > 1e-4) expect(Math.abs(back[i]! - x) / Math.abs(x)).toBeLessThan(rel);
      });
    }
    expect(() => fromFloat32([1], 'I32' as 'F32')).toThrow(OspError);
  });
});

describe('safetensors files', () => {
  it('writes atomically and reads back', async () => {
    const dir = tempDir('osp-st-');
    const p = join(dir, 'model.safetensors');
    await writeSafetensorsFile(p, [['w', f32Entry([2], new Float32Array([3, 4]))]], { step: '1' });
    const { tensors, metadata } = await readSafetensorsFile(p);
    expect([...toFloat32(tensors.get('w')!)]).toEqual([3, 4]);
    expect(metadata).toEqual({ format: 'pt', step: '1' });
    await writeSafetensorsFile(p, new Map([['v', i32Entry([1], new Int32Array([9]))]]));
    expect([...(await readSafetensorsFile(p)).tensors.keys()]).toEqual(['v']);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    expect(readFileSync(p).length).toBeGreaterThan(8);
  });

  it('gives a FormatError naming the path for missing and malformed files', async () => {
    const dir = tempDir('osp-st-');
    const missing = join(dir, 'nope.safetensors');
    await expect(readSafetensorsFile(missing)).rejects.toThrow(FormatError);
    await expect(readSafetensorsFile(missing)).rejects.toThrow(/nope\.safetensors: .*ENOENT/);
    const bad = join(dir, 'bad.safetensors');
    writeFileSync(bad, new Uint8Array([1, 2, 3]));
    await expect(readSafetensorsFile(bad)).rejects.toThrow(/bad\.safetensors: expected at least 8 bytes/);
    await expect(readSafetensorsFile(dir)).rejects.toThrow(FormatError); // a directory
  });
});
