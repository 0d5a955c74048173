import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, OspError, ShapeError } from '../../src/errors.ts';
import {
  GGML_TYPE,
  GGML_TYPES,
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_TYPE,
  type GgmlType,
  type GgufArray,
  type GgufTensorInput,
  type GgufValue,
  arr,
  bool,
  decodeGguf,
  dequantizeQ4_0,
  dequantizeQ8_0,
  encodeGguf,
  f32,
  f64,
  ggufTensorBytes,
  i16,
  i32,
  i64,
  i8,
  quantizeQ4_0,
  quantizeQ8_0,
  readGgufFile,
  str,
  tensorToFloat32,
  u16,
  u32,
  u64,
  u8,
  writeGgufFile,
} from '../../src/io/gguf.ts';
import { rng } from '../helpers/prng.ts';
import { tempDir } from '../helpers/scratch.ts';

/** Standard normal samples (Box-Muller), for realistic weights. */
function gaussians(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

/**
 * The test's own little-endian byte builder: hand-built files and expectations do not go through the
 * code under test.
 */
class Buf {
  private bytes: number[] = [];
  get length(): number {
    return this.bytes.length;
  }
  raw(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  ascii(s: string): this {
    for (const c of s) this.bytes.push(c.charCodeAt(0));
    return this;
  }
  u32(v: number): this {
    return this.raw(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  i32(v: number): this {
    return this.u32(v >>> 0);
  }
  u64(v: bigint | number): this {
    let x = BigInt.asUintN(64, BigInt(v));
    for (let i = 0; i < 8; i++) {
      this.bytes.push(Number(x & 0xffn));
      x >>= 8n;
    }
    return this;
  }
  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.raw(...b);
  }
  /** GGUF string: u64 byte length + bytes (ASCII here, or raw bytes). */
  s(v: string | number[]): this {
    const b = typeof v === 'string' ? Array.from(new TextEncoder().encode(v)) : v;
    return this.u64(b.length).raw(...b);
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.bytes.push(0);
    return this;
  }
  padTo(alignment: number): this {
    return this.zeros((alignment - (this.bytes.length % alignment)) % alignment);
  }
  build(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
}

/** "GGUF" | version | tensor_count | kv_count: the 24-byte header. */
const head = (nTensors: bigint | number, nKv: bigint | number, version = 3) => new Buf().ascii('GGUF').u32(version).u64(nTensors).u64(nKv);

/** A tensor info entry; dims are given as in the file: innermost first. */
function info(b: Buf, name: string, dims: (bigint | number)[], type: number, offset: bigint | number): Buf {
  b.s(name).u32(dims.length);
  for (const d of dims) b.u64(d);
  return b.u32(type).u64(offset);
}

/** binary16 bits -> number, written independently of the module under test. */
function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The FormatError thrown by decoding `bytes` as "bad.gguf" (fails the test if none). */
function formatError(bytes: Uint8Array): FormatError {
  try {
    decodeGguf(bytes, 'bad.gguf');
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).file).toBe('bad.gguf');
    expect((e as Error).message).toMatch(/^bad\.gguf: /);
    return e as FormatError;
  }
  throw new Error('expected a FormatError, but decoding succeeded');
}

/** Decoding `bytes` fails with a FormatError whose message matches `re`. */
function rejects(bytes: Uint8Array, re: RegExp): void {
  expect(formatError(bytes).message).toMatch(re);
}

describe('GGUF layout', () => {
  it('writes bytes exactly as a hand-built file, field by field', () => {
    const bytes = encodeGguf({
      kv: [
        ['general.architecture', str('llama')],
        ['a.list', arr('i32', [1, -2])],
      ],
      tensors: [
        { name: 'w', shape: [2, 3], type: 'F32', data: new Float32Array([1, 2, 3, 4, 5, 6]) },
        { name: 'b', shape: [3], type: 'F16', data: new Float32Array([1, 2, -0.5]) },
      ],
    });
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const ascii = (a: number, b: number) => String.fromCharCode(...bytes.subarray(a, b));
    // Header.
    expect(ascii(0, 4)).toBe('GGUF');
    expect(dv.getUint32(4, true)).toBe(3);
    expect(dv.getBigUint64(8, true)).toBe(2n); // tensor_count
    expect(dv.getBigUint64(16, true)).toBe(2n); // kv_count
    // KV 1: u64 20 "general.architecture" | u32 8 (STRING) | u64 5 "llama"
    expect(dv.getBigUint64(24, true)).toBe(20n);
    expect(ascii(32, 52)).toBe('general.architecture');
    expect(dv.getUint32(52, true)).toBe(8);
    expect(dv.getBigUint64(56, true)).toBe(5n);
    expect(ascii(64, 69)).toBe('llama');
    // KV 2: u64 6 "a.list" | u32 9 (ARRAY) | u32 5 (INT32) | u64 2 | i32 1 | i32 -2
    expect(dv.getBigUint64(69, true)).toBe(6n);
    expect(ascii(77, 83)).toBe('a.list');
    expect(dv.getUint32(83, true)).toBe(9);
    expect(dv.getUint32(87, true)).toBe(5);
    expect(dv.getBigUint64(91, true)).toBe(2n);
    expect(dv.getInt32(99, true)).toBe(1);
    expect(dv.getInt32(103, true)).toBe(-2);
    // Tensor info 'w': PyTorch [2, 3] is written innermost first: 3, 2. F32 = 0, offset 0.
    expect(dv.getBigUint64(107, true)).toBe(1n);
    expect(ascii(115, 116)).toBe('w');
    expect(dv.getUint32(116, true)).toBe(2);
    expect(dv.getBigUint64(120, true)).toBe(3n);
    expect(dv.getBigUint64(128, true)).toBe(2n);
    expect(dv.getUint32(136, true)).toBe(0);
    expect(dv.getBigUint64(140, true)).toBe(0n);
    // Tensor info 'b': [3], F16 = 1, offset 32 = 24 bytes of 'w' padded to 32.
    expect(dv.getBigUint64(148, true)).toBe(1n);
    expect(ascii(156, 157)).toBe('b');
    expect(dv.getUint32(157, true)).toBe(1);
    expect(dv.getBigUint64(161, true)).toBe(3n);
    expect(dv.getUint32(169, true)).toBe(1);
    expect(dv.getBigUint64(173, true)).toBe(32n);
    // Header ends at 181; zero padding to 192, where the data section starts.
    expect([...bytes.subarray(181, 192)]).toEqual(new Array(11).fill(0));
    for (let i = 0; i < 6; i++) expect(dv.getFloat32(192 + 4 * i, true)).toBe(i + 1);
    expect([...bytes.subarray(216, 224)]).toEqual(new Array(8).fill(0));
    // F16: 1 = 0x3c00, 2 = 0x4000, -0.5 = 0xb800; then padding to 256.
    expect([...bytes.subarray(224, 230)]).toEqual([0x00, 0x3c, 0x00, 0x40, 0x00, 0xb8]);
    expect([...bytes.subarray(230)]).toEqual(new Array(26).fill(0));
    expect(bytes.length).toBe(256);

    // The same file built by hand, whole.
    const b = head(2, 2).s('general.architecture').u32(8).s('llama');
    b.s('a.list').u32(9).u32(5).u64(2).i32(1).i32(-2);
    info(b, 'w', [3, 2], 0, 0);
    info(b, 'b', [3], 1, 32);
    b.padTo(32);
    for (let i = 1; i <= 6; i++) b.f32(i);
    b.padTo(32).raw(0x00, 0x3c, 0x00, 0x40, 0x00, 0xb8).padTo(32);
    expect(bytes).toEqual(b.build());

    const back = decodeGguf(bytes);
    expect(back.version).toBe(3);
    expect(back.alignment).toBe(32);
    expect(back.dataOffset).toBe(192);
    expect([...back.kv]).toEqual([
      ['general.architecture', { type: 'STRING', value: 'llama' }],
      ['a.list', { type: 'ARRAY', itemType: 'INT32', value: [1, -2] }],
    ]);
    const summary = back.tensors.map(({ name, shape, type, offset, byteLength }) => ({
      name,
      shape,
      type,
      offset,
      byteLength,
    }));
    expect(summary).toEqual([
      { name: 'w', shape: [2, 3], type: 'F32', offset: 0, byteLength: 24 },
      { name: 'b', shape: [3], type: 'F16', offset: 32, byteLength: 6 },
    ]);
    expect(back.tensors[0]!.data.byteOffset).toBe(192); // a view, not a copy
  });

  it('writes general.alignment when it is not 32 and lays data out on it', () => {
    const t = { name: 't', shape: [5], type: 'F32' as const, data: new Float32Array(5).fill(1) };
    for (const alignment of [1, 8, 64, 4096]) {
      const bytes = encodeGguf({ kv: [['x', u8(1)]], tensors: [t, { ...t, name: 'u' }], alignment });
      const back = decodeGguf(bytes);
      expect(back.alignment).toBe(alignment);
      expect(back.dataOffset % alignment).toBe(0);
      expect(back.tensors.map((x) => x.offset)).toEqual([0, Math.ceil(20 / alignment) * alignment]);
      expect(bytes.length).toBe(back.dataOffset + 2 * Math.ceil(20 / alignment) * alignment);
      if (alignment === 32) expect(back.kv.has('general.alignment')).toBe(false);
      else expect(back.kv.get('general.alignment')).toEqual({ type: 'UINT32', value: alignment });
    }
    // Default: not written.
    expect(decodeGguf(encodeGguf({ tensors: [t] })).kv.size).toBe(0);
    // Given explicitly and consistent: kept once.
    const back = decodeGguf(encodeGguf({ kv: [['general.alignment', u32(64)]], tensors: [t], alignment: 64 }));
    expect([...back.kv.keys()]).toEqual(['general.alignment']);
  });

  it('an empty file (no KVs, no tensors) is the header padded to the alignment, as llama.cpp writes it', () => {
    const bytes = encodeGguf({});
    expect(bytes).toEqual(head(0, 0).zeros(8).build());
    expect(decodeGguf(head(0, 0).build()).tensors).toEqual([]); // the padding is optional without data
    expect(decodeGguf(bytes)).toMatchObject({ version: 3, tensors: [], alignment: 32, dataOffset: 32 });
  });
});

describe('GGUF round trips', () => {
  it('round-trips every value type, arrays of each, nested arrays and edge values', () => {
    const kv: [string, GgufValue][] = [
      ['u8', u8(255)],
      ['i8', i8(-128)],
      ['u16', u16(65535)],
      ['i16', i16(-32768)],
      ['u32', u32(4294967295)],
      ['i32', i32(-2147483648)],
      ['f32', f32(0.5)],
      ['bool.t', bool(true)],
      ['bool.f', bool(false)],
      ['str', str('ünïcødé 😀')],
      ['str.empty', str('')],
      ['u64', u64(2n ** 64n - 1n)],
      ['i64', i64(-(2n ** 63n))],
      ['f64', f64(Math.PI)],
      ['a.u8', arr('u8', [0, 255])],
      ['a.i8', arr('i8', [-128, 127])],
      ['a.u16', arr('u16', [1, 65535])],
      ['a.i16', arr('i16', [-1, 32767])],
      ['a.u32', arr('u32', [0, 4294967295])],
      ['a.i32', arr('i32', [-5, 7])],
      ['a.f32', arr('f32', [1.5, -0.25, Infinity])],
      ['a.bool', arr('bool', [true, false, true])],
      ['a.string', arr('string', ['<s>', '', 'Ġthe'])],
      ['a.u64', arr('u64', [0, 2n ** 63n])],
      ['a.i64', arr('i64', [-1, 2n ** 62n])],
      ['a.f64', arr('f64', [1e300, -0])],
      ['a.empty', arr('string', [])],
      ['a.nested', arr('array', [arr('i32', [1]), arr('string', ['x', 'y']), arr('array', [arr('u8', [])])])],
    ];
    const back = decodeGguf(encodeGguf({ kv }));
    expect([...back.kv.keys()]).toEqual(kv.map(([k]) => k));
    for (const [k, v] of kv) expect(back.kv.get(k), k).toEqual(v);
    // All 13 value types appear as scalars or items.
    const seen = new Set<string>();
    for (const [, v] of kv) seen.add(v.type === 'ARRAY' ? v.itemType : v.type).add(v.type);
    expect(seen.size).toBe(Object.keys(GGUF_TYPE).length);
  });

  it('round-trips a large vocabulary (a header far beyond the first buffer)', () => {
    const tokens = Array.from({ length: 20000 }, (_, i) => `tok${i}-${'x'.repeat(i % 17)}`);
    const scores = Float32Array.from({ length: 20000 }, (_, i) => -i / 7);
    const bytes = encodeGguf({
      kv: [
        ['tokenizer.ggml.tokens', arr('string', tokens)],
        ['s', arr('f32', scores)],
      ],
    });
    const back = decodeGguf(bytes);
    expect(back.kv.get('tokenizer.ggml.tokens')!.value).toEqual(tokens);
    expect(back.kv.get('s')!.value).toEqual(Array.from(scores));
  });

  it('rounds FLOAT32 values to float32 and keeps FLOAT64 exact', () => {
    const back = decodeGguf(
      encodeGguf({
        kv: [
          ['a', f32(0.1)],
          ['b', f64(0.1)],
          ['c', arr('f32', [1 / 3])],
        ],
      }),
    );
    expect(back.kv.get('a')!.value).toBe(Math.fround(0.1));
    expect(back.kv.get('b')!.value).toBe(0.1);
    expect(back.kv.get('c')!.value).toEqual([Math.fround(1 / 3)]);
  });

  it('round-trips every tensor type and 1 to 4 dims, each within its precision', () => {
    const r = rng(7);
    const shapes = [[64], [3, 64], [2, 3, 32], [2, 1, 2, 96]];
    const tensors: GgufTensorInput[] = [];
    for (const type of GGML_TYPES) {
      for (const shape of shapes) {
        const n = shape.reduce((a, b) => a * b, 1);
        tensors.push({ name: `${type}.${shape.join('x')}`, shape, type, data: gaussians(r, n, 0.05) });
      }
    }
    expect([...GGML_TYPES].sort()).toEqual(['BF16', 'F16', 'F32', 'Q4_0', 'Q8_0']);
    const back = decodeGguf(encodeGguf({ tensors }));
    expect(back.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    let prevEnd = 0;
    for (const [i, t] of tensors.entries()) {
      const b = back.tensors[i]!;
      expect(b.shape).toEqual(t.shape);
      expect(b.type).toBe(t.type);
      const n = t.data.length;
      // Sizes from the formats' definitions: 4 / 2 bytes per value, 34 / 18 bytes per 32 values.
      const size = { F32: 4 * n, F16: 2 * n, BF16: 2 * n, Q8_0: (n / 32) * 34, Q4_0: (n / 32) * 18 }[t.type];
      expect(b.byteLength).toBe(size);
      expect(ggufTensorBytes(t.shape, t.type)).toBe(size);
      expect(b.offset).toBe(prevEnd);
      prevEnd += Math.ceil(size / 32) * 32;
      const y = tensorToFloat32(b);
      expect(y.length).toBe(n);
      for (let j = 0; j < n; j++) {
        const x = t.data[j]!;
        const err = Math.abs(y[j]! - x);
        if (t.type === 'F32') expect(y[j]).toBe(x);
        // Round to nearest: half an ulp relative, 2^-11 for binary16 (normal range; these values
        // are far above 2^-14 except for a rare few, hence the absolute floor of half a subnormal step).
        else if (t.type === 'F16') expect(err).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
        else if (t.type === 'BF16') expect(err).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
      }
    }
  });

  it('F16 and BF16 tensors store round-to-nearest-even bit patterns', () => {
    const data = new Float32Array([1 / 3, 65504, 1 + 2 ** -11, -2]);
    const back = decodeGguf(
      encodeGguf({
        tensors: [
          { name: 'h', shape: [4], type: 'F16', data },
          { name: 'b', shape: [4], type: 'BF16', data },
        ],
      }),
    );
    const words = (u: Uint8Array) => Array.from({ length: u.length / 2 }, (_, i) => u[2 * i]! | (u[2 * i + 1]! << 8));
    // 1/3 -> 0x3555; 65504 (max half) -> 0x7bff; 1 + 2^-11 is a tie -> even 0x3c00; -2 -> 0xc000.
    expect(words(back.tensors[0]!.data)).toEqual([0x3555, 0x7bff, 0x3c00, 0xc000]);
    // bf16 keeps the top 16 bits of float32, rounded: 1/3 = 0x3eaaaaab -> 0x3eab; 65504 = 0x477fe000 ->
    // 0x4780 (rounds up); 1 + 2^-11 = 0x3f800100 -> 0x3f80; -2 = 0xc0000000 -> 0xc000.
    expect(words(back.tensors[1]!.data)).toEqual([0x3eab, 0x4780, 0x3f80, 0xc000]);
  });

  it('Q8_0: every element is within d/2 of its value, d being the stored fp16 scale', () => {
    const r = rng(11);
    // Mixed magnitudes, including blocks whose scale is an fp16 subnormal (amax < 127 * 2^-14).
    const x = new Float32Array(32 * 400);
    for (let b = 0; b < 400; b++) {
      const scale = 10 ** (-6 + (b % 8));
      x.set(gaussians(r, 32, scale), 32 * b);
    }
    const q = quantizeQ8_0(x);
    expect(q.length).toBe(400 * 34);
    const y = dequantizeQ8_0(q);
    for (let b = 0; b < 400; b++) {
      const d = f16(q[34 * b]! | (q[34 * b + 1]! << 8));
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]!));
      // The stored d is amax/127 up to fp16 rounding (or one subnormal step above it).
      expect(Math.abs(d - amax / 127)).toBeLessThanOrEqual(Math.max((amax / 127) * 2 ** -11, 2 ** -24));
      for (let j = 0; j < 32; j++) {
        const i = 32 * b + j;
        const code = (q[34 * b + 2 + j]! << 24) >> 24;
        expect(y[i]).toBe(code * d);
        expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(d / 2);
      }
    }
  });

  it('Q4_0: every element is within |d|/2, except above the clamped code 15 where it is within |d|', () => {
    const r = rng(12);
    const x = new Float32Array(32 * 400);
    for (let b = 0; b < 400; b++) x.set(gaussians(r, 32, 10 ** (-5 + (b % 7))), 32 * b);
    const q = quantizeQ4_0(x);
    expect(q.length).toBe(400 * 18);
    const y = dequantizeQ4_0(q);
    let clamped = 0;
    for (let b = 0; b < 400; b++) {
      const d = f16(q[18 * b]! | (q[18 * b + 1]! << 8));
      // The signed value with the largest |x| (first on ties) lands on code 0: -8 * d = m.
      let m = 0;
      for (let j = 0; j < 32; j++) if (Math.abs(x[32 * b + j]!) > Math.abs(m)) m = x[32 * b + j]!;
      expect(Math.sign(d)).toBe(-Math.sign(m));
      expect(Math.abs(-8 * d - m)).toBeLessThanOrEqual(Math.max(Math.abs(m) * 2 ** -11, 8 * 2 ** -24));
      for (let j = 0; j < 32; j++) {
        const i = 32 * b + j;
        const nib = j < 16 ? q[18 * b + 2 + j]! & 15 : q[18 * b + 2 + j - 16]! >> 4;
        expect(y[i]).toBe((nib - 8) * d);
        const err = Math.abs(y[i]! - x[i]!);
        // Codes run -8..7 (times d). A value with x/d >= 7.5 sits on the side opposite m and would
        // need code 16; it is clamped to 15 (= 7d), so its error is x - 7d <= |m| - 7|d| ~ |d|.
        if (x[i]! / d >= 7.5) {
          clamped++;
          expect(nib).toBe(15);
          expect(err).toBeLessThanOrEqual(Math.abs(m) - 7 * Math.abs(d) + 1e-12);
          expect(err).toBeLessThanOrEqual(Math.abs(d) * (1 + 2 ** -10));
        } else {
          expect(err).toBeLessThanOrEqual(Math.abs(d) / 2);
        }
      }
    }
    expect(clamped).toBeGreaterThan(0); // the edge was exercised
  });

  it('tensors keep PyTorch row-major order through the reversed dims', () => {
    // A [2, 32] matrix whose rows differ: quantized per row (innermost dim), read back per row.
    const data = new Float32Array(64);
    for (let j = 0; j < 32; j++) {
      data[j] = j / 8; // row 0
      data[32 + j] = -j / 4; // row 1
    }
    for (const type of ['F32', 'Q8_0'] as const) {
      const t = decodeGguf(encodeGguf({ tensors: [{ name: 'm', shape: [2, 32], type, data }] })).tensors[0]!;
      const y = tensorToFloat32(t);
      expect(y[31]).toBeCloseTo(31 / 8, 1);
      expect(y[32 + 31]).toBeCloseTo(-31 / 4, 1);
    }
  });

  it('writes and reads files atomically', async () => {
    const dir = tempDir('osp-gguf-');
    const path = join(dir, 'model.gguf');
    const input = {
      kv: [['general.architecture', str('llama')]] as [string, GgufValue][],
      tensors: [{ name: 'w', shape: [32], type: 'Q4_0' as const, data: new Float32Array(32).fill(0.5) }],
    };
    await writeGgufFile(path, input);
    expect(new Uint8Array(readFileSync(path))).toEqual(encodeGguf(input));
    const back = await readGgufFile(path);
    expect(back.kv.get('general.architecture')!.value).toBe('llama');
    expect([...tensorToFloat32(back.tensors[0]!)]).toEqual(new Array(32).fill(0.5));
    await expect(readGgufFile(join(dir, 'missing.gguf'))).rejects.toThrow(FormatError);
    await expect(readGgufFile(join(dir, 'missing.gguf'))).rejects.toThrow(/missing\.gguf: expected a GGUF file: file not found \(ENOENT\)/);
  });
});

describe('Q8_0 and Q4_0 blocks computed by hand', () => {
  it('Q8_0 of a ramp: d = 1/64 exactly, codes round half away from zero', () => {
    // x_k = k * 127 / 1024 for k = -16..15: amax = 127/64 (k = -16), so d = amax / 127 = 1/64 = 2^-6,
    // fp16 0x2400 (exponent 9, mantissa 0), bytes 00 24. x / d = 7.9375 k: k = ±8 gives ±63.5, a tie.
    const x = new Float32Array(32).map((_, j) => ((j - 16) * 127) / 1024);
    const codes = [
      -127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8, 0, 8, 16, 24, 32, 40, 48, 56, 64, 71, 79, 87, 95,
      103, 111, 119,
    ];
    const q = quantizeQ8_0(x);
    expect([...q]).toEqual([0x00, 0x24, ...codes.map((c) => c & 0xff)]);
    expect([...dequantizeQ8_0(q)]).toEqual(codes.map((c) => c / 64));
  });

  it('Q8_0 of a zero block is all zero bytes; of an integer ramp, d rounds to fp16 0x3008', () => {
    expect([...quantizeQ8_0(new Float32Array(32))]).toEqual(new Array(34).fill(0));
    // amax 16: d = 16/127 = 0.12598..., nearest fp16 is 1032 * 2^-13 = 0.1259765625 = 0x3008.
    // Codes k / 0.1259765625 = 7.93798 k: -16 -> -127.008 -> -127, 15 -> 119.07 -> 119, 8 -> 63.50 -> 64.
    const q = quantizeQ8_0(new Float32Array(32).map((_, j) => j - 16));
    expect([q[0], q[1]]).toEqual([0x08, 0x30]);
    expect((q[2]! << 24) >> 24).toBe(-127);
    expect((q[2 + 31]! << 24) >> 24).toBe(119);
    expect((q[2 + 24]! << 24) >> 24).toBe(64);
  });

  it('Q4_0 of a ramp with a negative maximum: d = +1/8, code 16 clamps to 15', () => {
    // x_j = (j - 16) / 16: the largest |x| is x_0 = -1, so d = -1 / -8 = 0.125 = fp16 0x3000.
    // code_j = min(15, trunc(x_j / d + 8.5)) = min(15, trunc(j/2 + 0.5)): 0 1 1 2 2 ... 15 15 15
    // (j = 31 would be 16). Byte j = code_j | code_{j+16} << 4.
    const x = new Float32Array(32).map((_, j) => (j - 16) / 16);
    const qs = [0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4, 0xc4, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7, 0xf8];
    const q = quantizeQ4_0(x);
    expect([...q]).toEqual([0x00, 0x30, ...qs]);
    const y = dequantizeQ4_0(q);
    expect(y[0]).toBe(-1); // the maximum is exact: (0 - 8) * 0.125
    expect(y[31]).toBe(0.875); // 15/16 clamped to code 15 = 7 * 0.125
    expect(y[29]).toBe(0.875); // 13/16: x/d = 6.5, the tie goes up (trunc of 15.0)
  });

  it('Q4_0 sign convention: a positive maximum gives a negative d and the same codes', () => {
    // x_j = (16 - j) / 16: the largest |x| is x_0 = +1, so d = 1 / -8 = -0.125 = fp16 0xb000, and
    // x / d = (j - 16) / 2 exactly as above, so the nibbles are identical.
    const x = new Float32Array(32).map((_, j) => (16 - j) / 16);
    const q = quantizeQ4_0(x);
    const qs = [0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4, 0xc4, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7, 0xf8];
    expect([...q]).toEqual([0x00, 0xb0, ...qs]);
    const y = dequantizeQ4_0(q);
    expect(y[0]).toBe(1); // (0 - 8) * -0.125
    expect(y[31]).toBe(-0.875);
  });

  it('Q4_0 ties on |x| go to the first element; zero blocks store d = -0 and codes 8', () => {
    // +0.5 at j = 3 comes before -0.5 at j = 7: d = 0.5 / -8 = -0.0625 = fp16 0xac00. Zeros -> code 8;
    // x_3 / d = -8 -> code 0; x_7 / d = 8 -> 16.5 -> clamped 15, dequantized to 7 * -0.0625 = -0.4375.
    const x = new Float32Array(32);
    x[3] = 0.5;
    x[7] = -0.5;
    const qs = new Array(16).fill(0x88);
    qs[3] = 0x80;
    qs[7] = 0x8f;
    const q = quantizeQ4_0(x);
    expect([...q]).toEqual([0x00, 0xac, ...qs]);
    expect(dequantizeQ4_0(q)[7]).toBe(-0.4375);
    // 0 / -8 = -0 (llama.cpp's bytes too: max starts at +0), and no scale means code 8 everywhere.
    expect([...quantizeQ4_0(new Float32Array(32))]).toEqual([0x00, 0x80, ...new Array(16).fill(0x88)]);
  });

  it('tiny blocks get a scale big enough for their codes (fp16 subnormals)', () => {
    // amax = 1e-7: amax / 127 rounds to fp16 0, which would lose the block; one subnormal step
    // (2^-24 ~ 6e-8) is used instead and the values come back within d/2.
    const x = new Float32Array(32).fill(0);
    x[0] = 1e-7;
    x[1] = -5e-8;
    for (const [quant, deq] of [
      [quantizeQ8_0, dequantizeQ8_0],
      [quantizeQ4_0, dequantizeQ4_0],
    ] as const) {
      const q = quant(x);
      const d = f16(q[0]! | (q[1]! << 8));
      expect(Math.abs(d)).toBe(2 ** -24);
      const y = deq(q);
      for (let j = 0; j < 32; j++) expect(Math.abs(y[j]! - x[j]!)).toBeLessThanOrEqual(Math.abs(d) / 2 + 1e-20);
    }
  });

  it('rejects partial blocks, non-finite values and scales beyond fp16', () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(ShapeError);
    expect(() => quantizeQ4_0(new Float32Array(31))).toThrow(/multiple of 32/);
    const x = new Float32Array(32);
    x[5] = NaN;
    expect(() => quantizeQ8_0(x)).toThrow(/index 5 .*not finite/);
    x[5] = Infinity;
    expect(() => quantizeQ4_0(x)).toThrow(/not finite/);
    x[5] = 1e7; // 1e7 / 127 > 65504
    expect(() => quantizeQ8_0(x)).toThrow(/exceeds fp16/);
    expect(() => quantizeQ4_0(x)).toThrow(/exceeds fp16/);
    expect(() => dequantizeQ8_0(new Uint8Array(35))).toThrow(ShapeError);
    expect(() => dequantizeQ4_0(new Uint8Array(17))).toThrow(ShapeError);
  });
});

describe('GGUF encoder errors', () => {
  const t = (over: Partial<GgufTensorInput> = {}): GgufTensorInput => ({
    name: 'w',
    shape: [32],
    type: 'F32',
    data: new Float32Array(32),
    ...over,
  });

  it('rejects bad tensors', () => {
    expect(() => encodeGguf({ tensors: [t({ type: 'Q8_0', shape: [2, 48], data: new Float32Array(96) })] })).toThrow(
      /tensor 'w'.*Q8_0 quantizes the innermost dim in blocks of 32; shape \[2,48\] has innermost dim 48/,
    );
    expect(() => encodeGguf({ tensors: [t({ type: 'Q4_0', shape: [48, 2], data: new Float32Array(96) })] })).toThrow(ShapeError);
    expect(() => encodeGguf({ tensors: [t({ data: new Float32Array(31) })] })).toThrow(/needs a Float32Array of 32 values, got 31/);
    expect(() => encodeGguf({ tensors: [t({ shape: [] })] })).toThrow(/1 to 4 dims/);
    expect(() => encodeGguf({ tensors: [t({ shape: [1, 1, 1, 1, 32] })] })).toThrow(/1 to 4 dims/);
    expect(() => encodeGguf({ tensors: [t({ shape: [0], data: new Float32Array(0) })] })).toThrow(/>= 1/);
    expect(() => encodeGguf({ tensors: [t(), t()] })).toThrow(/duplicate tensor name 'w'/);
    expect(() => encodeGguf({ tensors: [t({ name: 'x'.repeat(64) })] })).toThrow(/shorter than 64 bytes/);
    expect(() => encodeGguf({ tensors: [t({ name: '' })] })).toThrow(/non-empty/);
    expect(() => encodeGguf({ tensors: [t({ type: 'Q4_K' as GgmlType })] })).toThrow(/unknown type 'Q4_K'; valid: F32, F16/);
  });

  it('rejects bad keys, values and alignments', () => {
    expect(() => encodeGguf({ kv: [['a', u32(-1)]] })).toThrow(/metadata 'a': UINT32 value must be an integer in \[0, 4294967295\]/);
    expect(() => encodeGguf({ kv: [['a', u8(1.5)]] })).toThrow(OspError);
    expect(() => encodeGguf({ kv: [['a', i8(128)]] })).toThrow(/INT8/);
    expect(() => encodeGguf({ kv: [['a', arr('i32', [1, 2 ** 31])]] })).toThrow(/metadata 'a'\[1\]: INT32/);
    expect(() => encodeGguf({ kv: [['a', { type: 'UINT64', value: -1n }]] })).toThrow(/UINT64/);
    const nope = { type: 'NOPE', value: 1 } as unknown as GgufValue;
    expect(() => encodeGguf({ kv: [['a', nope]] })).toThrow(/typed value/);
    expect(() => encodeGguf({ kv: [['a', 5 as unknown as GgufValue]] })).toThrow(/typed value/);
    expect(() => encodeGguf({ kv: [['a', str('\ud800')]] })).toThrow(/lone UTF-16 surrogate/);
    expect(() =>
      encodeGguf({
        kv: [
          ['a', u8(1)],
          ['a', u8(2)],
        ],
      }),
    ).toThrow(/duplicate metadata key 'a'/);
    expect(() => encodeGguf({ kv: [['', u8(1)]] })).toThrow(/non-empty/);
    expect(() => encodeGguf({ alignment: 48 })).toThrow(/power of two/);
    expect(() => encodeGguf({ alignment: 0 })).toThrow(/power of two/);
    expect(() => encodeGguf({ kv: [['general.alignment', u32(64)]] })).toThrow(/must be UINT32 32/);
    expect(() => encodeGguf({ kv: [['general.alignment', i32(64)]], alignment: 64 })).toThrow(/must be UINT32 64/);
    expect(() => u64(1.5)).toThrow(OspError);
    expect(() => arr('nope' as 'u8', [])).toThrow(/unknown item kind 'nope'/);
    let deep: GgufArray = arr('u8', [1]);
    for (let i = 0; i < GGUF_MAX_ARRAY_DEPTH; i++) deep = arr('array', [deep]);
    expect(() => encodeGguf({ kv: [['deep', deep]] })).toThrow(/nested deeper than 8/);
    const bad = { type: 'ARRAY', itemType: 'ARRAY', value: [u8(1)] } as unknown as GgufValue;
    expect(() => encodeGguf({ kv: [['n', bad]] })).toThrow(/needs ARRAY items/);
  });
});

describe('GGUF decoder validation', () => {
  /** A valid one-KV, one-tensor file built by hand, for the tests below to break one field at a time. */
  const F32 = GGML_TYPE.F32;

  it('bad magic and empty files', () => {
    rejects(new Uint8Array(0), /expected the magic "GGUF" \(47 47 55 46\), found an empty file/);
    rejects(new Uint8Array([0x47, 0x47]), /found 47 47$/);
    const st = new Buf().u64(16).ascii('{"__metadata__"}').build(); // a safetensors file
    rejects(st, /expected the magic "GGUF" \(47 47 55 46\), found 10 00 00 00/);
  });

  it('unsupported versions, saying which are supported', () => {
    rejects(head(0, 0, 2).build(), /unsupported GGUF version 2; supported: version 3 only/);
    rejects(head(0, 0, 4).build(), /unsupported GGUF version 4/);
    rejects(head(0, 0, 0x03000000).build(), /version 50331648 \(a big-endian file\?/);
  });

  it('truncated headers', () => {
    const full = head(0, 0).build();
    rejects(full.subarray(0, 6), /unexpected end of file reading the version at byte 4/);
    rejects(full.subarray(0, 20), /unexpected end of file reading kv_count at byte 16: need 8 bytes, 4 left/);
  });

  it('absurd counts fail fast without allocating', () => {
    const t0 = performance.now();
    rejects(
      head(2n ** 60n, 0)
        .zeros(64)
        .build(),
      /tensor_count 1152921504606846976 is impossible: each tensor info takes at least 32 bytes and only 64 bytes/,
    );
    rejects(head(0, 2n ** 60n).build(), /kv_count 1152921504606846976 is impossible/);
    rejects(head(2n ** 64n - 1n, 2n ** 64n - 1n).build(), /tensor_count 18446744073709551615/);
    // Each count alone could fit, both together cannot.
    rejects(head(1, 2).zeros(40).build(), /together need more than the 40 bytes/);
    // A key of length 2^62.
    rejects(
      head(0, 1)
        .u64(2n ** 62n)
        .u32(0)
        .raw(1)
        .build(),
      /the key of KV #0: string length 4611686018427387904 extends past the end of the file \(5 bytes left at byte 32/,
    );
    // A string value of length 2^62, and an array claiming 2^60 items.
    rejects(
      head(0, 1)
        .s('k')
        .u32(8)
        .u64(2n ** 62n)
        .zeros(8)
        .build(),
      /KV 'k': string length 4611686018427387904 extends past the end/,
    );
    rejects(
      head(0, 1)
        .s('k')
        .u32(9)
        .u32(4)
        .u64(2n ** 60n)
        .zeros(16)
        .build(),
      /KV 'k': array of 1152921504606846976 UINT32 items needs at least 4611686018427387904 bytes, but only 16 remain/,
    );
    rejects(
      head(0, 1)
        .s('k')
        .u32(9)
        .u32(9)
        .u64(2n ** 40n)
        .zeros(16)
        .build(),
      /array of 1099511627776 ARRAY items/,
    );
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('bad values: unknown types, deep nesting, UTF-8, BOOL bytes, duplicate keys', () => {
    rejects(head(0, 1).s('k').u32(13).zeros(8).build(), /KV 'k': unknown value type 13; valid types: UINT8 0, INT8 1, .*FLOAT64 12/);
    rejects(head(0, 1).s('k').u32(9).u32(77).u64(0).build(), /KV 'k': unknown array item type 77/);
    // Items of a nested array are typed too.
    rejects(head(0, 1).s('k').u32(9).u32(9).u64(1).u32(20).u64(0).build(), /KV 'k'\[0\]: unknown array item type 20/);
    // 8 levels of ARRAY of ARRAY are fine, 9 are not.
    const nested = (levels: number) => {
      const b = head(0, 1).s('k').u32(9);
      for (let i = 1; i < levels; i++) b.u32(9).u64(1);
      return b.u32(0).u64(0).build();
    };
    expect(decodeGguf(nested(GGUF_MAX_ARRAY_DEPTH)).kv.get('k')!.type).toBe('ARRAY');
    rejects(nested(GGUF_MAX_ARRAY_DEPTH + 1), /arrays nested deeper than 8 levels/);
    rejects(head(0, 1).s('k').u32(8).s([0xc3, 0x28]).build(), /KV 'k': string at byte \d+ is not valid UTF-8/);
    rejects(head(0, 1).s('k').u32(7).raw(2).build(), /KV 'k': expected a BOOL byte of 0 or 1, found 2/);
    rejects(head(0, 1).s('k').u32(9).u32(7).u64(2).raw(1, 9).build(), /KV 'k'\[1\]: expected a BOOL/);
    rejects(head(0, 2).s('k').u32(0).raw(1).s('k').u32(0).raw(2).build(), /duplicate key 'k' \(KV #1\)/);
    rejects(head(0, 1).s('k').u32(4).raw(1, 2).build(), /unexpected end of file reading KV 'k'/);
  });

  it('general.alignment must be a UINT32 power of two', () => {
    rejects(head(0, 1).s('general.alignment').u32(5).i32(64).build(), /KV 'general.alignment': expected type UINT32, found INT32/);
    for (const a of [0, 48, 3]) {
      rejects(
        head(0, 1).s('general.alignment').u32(4).u32(a).build(),
        new RegExp(`KV 'general.alignment': expected a power of two, found ${a}$`),
      );
    }
  });

  /** A file of one tensor info (given in file order) and `data`, aligned to 32. */
  function oneTensor(name: string, dims: (bigint | number)[], type: number, offset: bigint | number, data = 128) {
    return info(head(1, 0), name, dims, type, offset).padTo(32).zeros(data).build();
  }

  it('bad tensor infos: names, n_dims, dims, types', () => {
    rejects(oneTensor('x'.repeat(64), [4], F32, 0), /tensor #0 'x+': name is 64 bytes; expected fewer than 64/);
    expect(decodeGguf(oneTensor('x'.repeat(63), [4], F32, 0)).tensors[0]!.name).toHaveLength(63);
    const dup = info(info(head(2, 0), 'a', [4], F32, 0), 'a', [4], F32, 32)
      .padTo(32)
      .zeros(64)
      .build();
    rejects(dup, /duplicate tensor name 'a' \(tensor #1\)/);
    rejects(oneTensor('t', [], F32, 0), /tensor 't': expected n_dims in 1..4, found 0/);
    rejects(oneTensor('t', [1, 1, 1, 1, 1], F32, 0), /expected n_dims in 1..4, found 5/);
    rejects(oneTensor('t', [4, 0], F32, 0), /tensor 't': dim 1 is 0; expected every dim >= 1/);
    rejects(oneTensor('t', [2n ** 63n], F32, 0), /dim 0 is 9223372036854775808, which is negative/);
    rejects(oneTensor('t', [2n ** 32n, 2n ** 32n], F32, 0), /tensor 't': the product of dims \[4294967296,4294967296...\] overflows int64/);
    rejects(
      oneTensor('t', [2n ** 40n], F32, 0),
      /tensor 't': shape \[1099511627776\] of F32 needs 4398046511104 bytes, more than the whole file \(\d+\)/,
    );
    // 2^61 F32 values: 2^63 bytes, which overflows nothing in bigint but is not in the file.
    rejects(oneTensor('t', [2n ** 31n, 2n ** 30n], F32, 0), /more than the whole file/);
    rejects(oneTensor('t', [32], 99, 0), /tensor 't': unknown ggml type 99; supported: F32 0, F16 1, Q4_0 2, Q8_0 8, BF16 30/);
    rejects(oneTensor('t', [256], 12, 0), /ggml type 12 \(Q4_K\) is not supported; supported: F32 0/);
    rejects(oneTensor('t', [48, 2], GGML_TYPE.Q8_0, 0), /tensor 't': Q8_0 rows must be whole blocks of 32, but the innermost dim is 48/);
    // n_dims 4 but the file ends in dim 2 (the 32 bytes the count check wants are there).
    rejects(
      head(1, 0).s('t').u32(4).u64(4).u64(1).zeros(3).build(),
      /unexpected end of file reading dim 2 of tensor 't' at byte 53: need 8 bytes, 3 left/,
    );
  });

  it('bad offsets: unaligned, past the end, overlapping, not packed', () => {
    rejects(oneTensor('t', [4], F32, 4), /tensor 't': offset 4 is not a multiple of the alignment 32/);
    rejects(
      oneTensor('t', [4], F32, 128),
      /tensor 't': data \[128, 144\) extends past the end of the data section \(128 bytes from byte 64\)/,
    );
    rejects(oneTensor('t', [4], F32, 2n ** 64n - 32n), /extends past the end of the data section/);
    rejects(oneTensor('t', [4], F32, 0, 15), /data \[0, 16\) extends past the end of the data section \(15 bytes/);
    const two = (offA: number, offB: number, dimsA = [4]) =>
      info(info(head(2, 0), 'a', dimsA, F32, offA), 'b', [4], F32, offB)
        .padTo(32)
        .zeros(256)
        .build();
    rejects(two(0, 0), /tensor '(a|b)' \[0, 16\) overlaps tensor '(a|b)' \[0, 16\)/);
    rejects(two(0, 32, [16]), /tensor 'b' \[32, 48\) overlaps tensor 'a' \[0, 64\)/);
    rejects(two(0, 64), /tensor 'b': offset 64, expected 32 \(tensors must be packed in info order/);
    rejects(two(32, 0), /tensor 'a': offset 32, expected 0/);
    expect(decodeGguf(two(0, 32)).tensors.map((t) => t.offset)).toEqual([0, 32]);
    // With general.alignment 64 the same 32 is misaligned.
    const a64 = info(head(1, 1).s('general.alignment').u32(4).u32(64), 't', [4], F32, 32).padTo(64).zeros(128).build();
    rejects(a64, /offset 32 is not a multiple of the alignment 64/);
  });

  it('tensorToFloat32 checks the byte length', () => {
    expect(() => tensorToFloat32({ name: 't', shape: [32], type: 'Q8_0', data: new Uint8Array(33) })).toThrow(
      /tensor 't' of shape \[32\] Q8_0 needs 34 bytes, got 33/,
    );
  });

  it('fuzz: truncations and corruptions give a FormatError or a valid decode, nothing else', () => {
    const r = rng(2024);
    const valid = encodeGguf({
      kv: [
        ['general.architecture', str('llama')],
        ['llama.block_count', u32(2)],
        ['llama.attention.layer_norm_rms_epsilon', f32(1e-5)],
        ['tokenizer.ggml.tokens', arr('string', ['a', 'b', 'Ġc'])],
        ['tokenizer.ggml.merges', arr('string', [])],
        ['x.nested', arr('array', [arr('i64', [1, -1]), arr('bool', [true])])],
        ['x.u64', u64(123)],
        ['x.f64', f64(2.5)],
      ],
      tensors: GGML_TYPES.map((type, i) => ({
        name: `blk.${i}.weight`,
        shape: [2, 32],
        type,
        data: gaussians(r, 64, 0.1),
      })),
    });
    const headerEnd = decodeGguf(valid).dataOffset;
    let failures = 0;
    let successes = 0;
    const attempt = (bytes: Uint8Array, what: string) => {
      let decoded;
      try {
        decoded = decodeGguf(bytes, 'fuzz.gguf');
      } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`${what}: ${String(e)}`);
        failures++;
        return;
      }
      successes++;
      for (const t of decoded.tensors) expect(tensorToFloat32(t).length).toBe(t.shape.reduce((a, b) => a * b, 1));
    };
    for (let i = 0; i < 2000; i++) {
      const len = Math.floor(r() * valid.length);
      attempt(valid.subarray(0, len), `truncation to ${len}`);
    }
    for (let i = 0; i < 4000; i++) {
      const bytes = new Uint8Array(valid);
      const edits = 1 + Math.floor(r() * 4);
      const log: string[] = [];
      for (let e = 0; e < edits; e++) {
        // Mostly in the header, where the structure is; data corruptions always decode.
        const pos = Math.floor(r() * (r() < 0.9 ? headerEnd : bytes.length));
        const mode = r();
        if (mode < 0.6) bytes[pos] = Math.floor(r() * 256);
        else if (mode < 0.8) bytes[pos] ^= 1 << Math.floor(r() * 8);
        else bytes.fill(0xff, pos, pos + 8); // a huge u64 or length
        log.push(`${pos}`);
      }
      attempt(bytes, `corruption at ${log.join(',')} (iteration ${i})`);
    }
    expect(failures).toBeGreaterThan(3000);
    expect(successes).toBeGreaterThan(100);
  });
});
