import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OspError } from '../../src/errors.ts';
import { pluginName, readEvents, values } from '../helpers/tfevents_read.ts';
import { encodePng } from '../../src/io/png.ts';
import { EventWriter } from '../../src/io/tfevents.ts';
import {
  type Message,
  decodeMessage,
  getBytes,
  getDouble,
  getDoubles,
  getFloat,
  getInt64,
  getMessage,
  getMessages,
  getString,
  getVarint,
} from '../helpers/protobuf_decode.ts';
import { tempDir } from '../helpers/scratch.ts';

function writer(dir: string, opts: { maxBufferBytes?: number } = {}): EventWriter {
  let t = 1_700_000_000.25;
  return new EventWriter(dir, { hostname: 'testhost', now: () => (t += 0.5) - 0.5, ...opts });
}

describe('EventWriter file', () => {
  it('is named events.out.tfevents.<secs>.<host>.<pid>.<n> and starts with the file_version record', () => {
    const dir = tempDir('osp-tfevents-');
    const w = writer(dir);
    expect(basename(w.path)).toMatch(new RegExp(`^events\\.out\\.tfevents\\.1700000000\\.testhost\\.${process.pid}\\.\\d+$`));
    expect(readdirSync(dir)).toEqual([basename(w.path)]);
    // The header record is on disk before any flush, so TensorBoard sees the run at once.
    const events = readEvents(w.path);
    expect(events).toHaveLength(1);
    expect(getString(events[0]!, 3)).toBe('brain.Event:2');
    expect(getDouble(events[0]!, 1)).toBeCloseTo(1_700_000_000.25, 3);
    expect(getMessage(events[0]!, 5)).toBeUndefined();
    w.close();
  });

  it('pads the unix time to 10 digits and gives each writer its own file', () => {
    const dir = tempDir('osp-tfevents-');
    const a = new EventWriter(dir, { hostname: 'h', now: () => 12.5 });
    const b = new EventWriter(dir, { hostname: 'h', now: () => 12.5 });
    expect(basename(a.path)).toMatch(/^events\.out\.tfevents\.0000000012\.h\.\d+\.\d+$/);
    expect(a.path).not.toBe(b.path);
    a.close();
    b.close();
  });

  it('buffers until flush(), flushes on close(), and flushes by itself past maxBufferBytes', () => {
    const dir = tempDir('osp-tfevents-');
    const w = writer(dir);
    const size0 = statSync(w.path).size;
    w.scalar('a', 1, 1);
    expect(statSync(w.path).size).toBe(size0);
    w.flush();
    expect(readEvents(w.path)).toHaveLength(2);
    w.scalar('a', 2, 2);
    w.close();
    expect(readEvents(w.path)).toHaveLength(3);
    w.close(); // idempotent

    const small = writer(tempDir('osp-tfevents-'), { maxBufferBytes: 100 });
    for (let i = 0; i < 10; i++) small.scalar('x', i, i); // ~40 bytes each
    expect(readEvents(small.path).length).toBeGreaterThan(1);
    small.close();
    expect(readEvents(small.path)).toHaveLength(11);
  });

  it('raises an OspError naming the file when a write fails, and after close()', () => {
    const dir = tempDir('osp-tfevents-');
    const w = writer(dir);
    w.scalar('a', 1, 1);
    rmSync(dir, { recursive: true, force: true });
    let err: unknown;
    try {
      w.flush();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OspError);
    expect((err as Error).message).toContain(w.path);
    expect((err as Error).message).toContain('ENOENT');

    const w2 = writer(tempDir('osp-tfevents-'));
    w2.close();
    expect(() => w2.scalar('a', 1, 1)).toThrow(/closed/);
  });

  it('raises an OspError when the log directory cannot be created', () => {
    const dir = tempDir('osp-tfevents-');
    const file = join(dir, 'plainfile');
    writeFileSync(file, 'x');
    expect(() => new EventWriter(join(file, 'logs'))).toThrow(OspError);
    expect(() => new EventWriter(join(file, 'logs'))).toThrow(/plainfile/);
  });

  it('rejects empty tags and non-integer steps', () => {
    const w = writer(tempDir('osp-tfevents-'));
    expect(() => w.scalar('', 1, 1)).toThrow(OspError);
    expect(() => w.scalar('a', 1, 1.5)).toThrow(/step/);
    w.close();
  });
});

describe('EventWriter records', () => {
  it('writes scalars as simple_value with tag, step and wall time', () => {
    const w = writer(tempDir('osp-tfevents-'));
    w.scalar('train/loss', 3.14159, 7);
    w.scalar('train/loss', NaN, 8);
    w.scalar('big/step', -Infinity, 2 ** 40);
    w.close();
    const [, e1, e2, e3] = readEvents(w.path);
    expect(getInt64(e1!, 2)).toBe(7n);
    expect(getDouble(e1!, 1)).toBeGreaterThan(1_700_000_000);
    const [v1] = values(e1!);
    expect(getString(v1!, 1)).toBe('train/loss');
    expect(getFloat(v1!, 2)).toBe(Math.fround(3.14159));
    expect(getFloat(values(e2!)[0]!, 2)).toBeNaN();
    expect(getInt64(e3!, 2)).toBe(2n ** 40n);
    expect(getFloat(values(e3!)[0]!, 2)).toBe(-Infinity);
    expect(getString(values(e3!)[0]!, 1)).toBe('big/step');
  });

  it('writes histograms whose buckets match an independent count', () => {
    const w = writer(tempDir('osp-tfevents-'));
    // Deterministic pseudo-normal values plus non-finite ones that must be skipped.
    let s = 42;
    const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const vals: number[] = [];
    for (let i = 0; i < 5000; i++) vals.push(Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd()) * 3 + 1);
    const withBad = [...vals, NaN, Infinity, -Infinity];
    expect(w.histogram('acts', Float32Array.from(withBad), 5)).toBe(3);
    w.close();
    const f32 = Array.from(Float32Array.from(vals));
    const e = readEvents(w.path)[1]!;
    expect(getInt64(e, 2)).toBe(5n);
    const v = values(e)[0]!;
    expect(getString(v, 1)).toBe('acts');
    const h = getMessage(v, 5)!;
    const min = getDouble(h, 1)!;
    const max = getDouble(h, 2)!;
    expect(min).toBe(Math.min(...f32));
    expect(max).toBe(Math.max(...f32));
    expect(getDouble(h, 3)).toBe(5000);
    expect(getDouble(h, 4)).toBeCloseTo(
      f32.reduce((a, b) => a + b, 0),
      6,
    );
    expect(getDouble(h, 5)).toBeCloseTo(
      f32.reduce((a, b) => a + b * b, 0),
      4,
    );
    const limits = getDoubles(h, 6);
    const counts = getDoubles(h, 7);
    expect(limits).toHaveLength(30);
    expect(counts).toHaveLength(30);
    for (let i = 1; i < limits.length; i++) expect(limits[i]!).toBeGreaterThan(limits[i - 1]!);
    expect(limits[0]!).toBeGreaterThan(min);
    expect(limits[29]).toBe(max);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(5000);
    // Independent bucketing from the stored edges: bucket i holds [limit[i-1], limit[i]), max in the last.
    const expected = new Array<number>(30).fill(0);
    for (const x of f32) {
      let i = limits.findIndex((l) => x < l);
      if (i < 0) i = 29;
      expected[i]!++;
    }
    expect(counts).toEqual(expected);
    // Roughly bell-shaped: the middle buckets hold more than the tails.
    expect(counts[15]!).toBeGreaterThan(counts[0]! + counts[29]!);
  });

  it('handles constant, empty, all-non-finite and huge-range histograms', () => {
    const w = writer(tempDir('osp-tfevents-'));
    w.histogram('const', [2.5, 2.5, 2.5], 1);
    expect(w.histogram('empty', [], 2)).toBe(0);
    expect(w.histogram('nan', [NaN, Infinity], 3)).toBe(2);
    w.histogram('huge', [-1.7e308, 1.7e308, 0], 4, 4);
    w.histogram('tiny', [1, 1 + 2 ** -52, 1 + 2 ** -51, 1 + 2 ** -51], 5, 30);
    w.close();
    const [c, e, n, hg, tiny] = readEvents(w.path)
      .slice(1)
      .map((ev) => getMessage(values(ev)[0]!, 5)!);
    // Edges closer than float resolution collapse: what remains is strictly increasing.
    const tl = getDoubles(tiny!, 6);
    for (let i = 1; i < tl.length; i++) expect(tl[i]!).toBeGreaterThan(tl[i - 1]!);
    expect(tl[tl.length - 1]).toBe(1 + 2 ** -51);
    expect(getDoubles(tiny!, 7).reduce((a, b) => a + b, 0)).toBe(4);
    expect(getDoubles(c!, 6)).toEqual([2.5]);
    expect(getDoubles(c!, 7)).toEqual([3]);
    expect([getDouble(c!, 1), getDouble(c!, 2), getDouble(c!, 3)]).toEqual([2.5, 2.5, 3]);
    for (const h of [e!, n!]) {
      expect(getDouble(h, 3) ?? 0).toBe(0);
      expect(getDoubles(h, 7)).toEqual([0]);
      expect(getDoubles(h, 6)).toHaveLength(1);
    }
    const limits = getDoubles(hg!, 6);
    expect(limits.every(Number.isFinite)).toBe(true);
    expect(limits).toHaveLength(4);
    expect(getDoubles(hg!, 7)).toEqual([1, 0, 1, 1]);
  });

  it('writes text as a DT_STRING tensor with the text plugin', () => {
    const w = writer(tempDir('osp-tfevents-'));
    const md = '# Config\n\n| lr | 3e-4 |\n\nünïcødé ✓';
    w.text('config', md, 0);
    w.close();
    const e = readEvents(w.path)[1]!;
    const v = values(e)[0]!;
    expect(getString(v, 1)).toBe('config');
    expect(pluginName(v)).toBe('text');
    const t = getMessage(v, 8)!;
    expect(getVarint(t, 1)).toBe(7n); // DT_STRING
    const dims = getMessages(getMessage(t, 2)!, 2);
    expect(dims.map((d) => getVarint(d, 1))).toEqual([1n]);
    expect(getString(t, 8)).toBe(md);
  });

  it('writes PNG images with their dimensions and colorspace', () => {
    const w = writer(tempDir('osp-tfevents-'));
    const px = new Uint8Array(5 * 3 * 3).map((_, i) => (i * 37) & 0xff);
    const png = encodePng(5, 3, px, 3);
    w.image('heat/layer0', png, 5, 3, 11);
    w.image('gray', encodePng(2, 2, new Uint8Array(4), 1), 2, 2, 12);
    expect(() => w.image('bad', png, 3, 5, 1)).toThrow(/5 x 3/);
    expect(() => w.image('bad', new Uint8Array(40), 1, 1, 1)).toThrow(/PNG/);
    w.close();
    const [, e, g] = readEvents(w.path);
    expect(getInt64(e!, 2)).toBe(11n);
    const v = values(e!)[0]!;
    expect(getString(v, 1)).toBe('heat/layer0');
    const img = getMessage(v, 4)!;
    expect(getVarint(img, 1)).toBe(3n); // height
    expect(getVarint(img, 2)).toBe(5n); // width
    expect(getVarint(img, 3)).toBe(3n); // RGB
    const bytes = getBytes(img, 4)!;
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect([dv.getUint32(16), dv.getUint32(20)]).toEqual([5, 3]);
    expect(Buffer.from(bytes).equals(Buffer.from(png))).toBe(true);
    expect(getVarint(getMessage(values(g!)[0]!, 4)!, 3)).toBe(1n); // grayscale
  });

  it('writes the three hparams plugin summaries, decodable back to names and values', () => {
    const w = writer(tempDir('osp-tfevents-'));
    w.hparams({ lr: 3e-4, norm: 'ssnorm', muon: true, layers: 4, tied: false }, ['train/loss', 'val/loss']);
    w.close();
    const events = readEvents(w.path).slice(1);
    expect(events).toHaveLength(3);
    const byTag = new Map<string, Uint8Array>();
    for (const e of events) {
      const vs = values(e);
      expect(vs).toHaveLength(1);
      const v = vs[0]!;
      // Only tag and metadata.
      expect([...v.keys()].sort()).toEqual([1, 9]);
      const pd = getMessage(getMessage(v, 9)!, 1)!;
      expect(getString(pd, 1)).toBe('hparams');
      byTag.set(getString(v, 1)!, getBytes(pd, 2)!);
    }
    expect([...byTag.keys()]).toEqual(['_hparams_/experiment', '_hparams_/session_start_info', '_hparams_/session_end_info']);

    // HParamsPluginData: version=1 (0, the default), experiment=2 / session_start_info=3 / session_end_info=4.
    const exp = decodeMessage(byTag.get('_hparams_/experiment')!);
    expect(getVarint(exp, 1) ?? 0n).toBe(0n);
    expect([...exp.keys()].filter((k) => k !== 1)).toEqual([2]);
    const experiment = getMessage(exp, 2)!;
    const infos = getMessages(experiment, 4).map((h) => [getString(h, 1), getVarint(h, 4)]);
    expect(infos).toEqual([
      ['lr', 3n], // DATA_TYPE_FLOAT64
      ['norm', 1n], // DATA_TYPE_STRING
      ['muon', 2n], // DATA_TYPE_BOOL
      ['layers', 3n],
      ['tied', 2n],
    ]);
    const metrics = getMessages(experiment, 5).map((m) => getString(getMessage(m, 1)!, 2));
    expect(metrics).toEqual(['train/loss', 'val/loss']);

    const ssiData = decodeMessage(byTag.get('_hparams_/session_start_info')!);
    expect([...ssiData.keys()].filter((k) => k !== 1)).toEqual([3]);
    const ssi = getMessage(ssiData, 3)!;
    const map = new Map<string, Message>();
    for (const entry of getMessages(ssi, 1)) map.set(getString(entry, 1)!, getMessage(entry, 2)!);
    // google.protobuf.Value: number_value=2, string_value=3, bool_value=4.
    expect(getDouble(map.get('lr')!, 2)).toBe(3e-4);
    expect(getString(map.get('norm')!, 3)).toBe('ssnorm');
    expect(getVarint(map.get('muon')!, 4)).toBe(1n);
    expect(getDouble(map.get('layers')!, 2)).toBe(4);
    expect(getVarint(map.get('tied')!, 4) ?? 0n).toBe(0n);
    expect(map.get('tied')!.has(4)).toBe(true); // false is written explicitly: the oneof must be set
    expect(getDouble(ssi, 5)).toBeGreaterThan(1_700_000_000); // start_time_secs

    const seiData = decodeMessage(byTag.get('_hparams_/session_end_info')!);
    const sei = getMessage(seiData, 4)!;
    expect(getVarint(sei, 1)).toBe(1n); // STATUS_SUCCESS
  });

  it('rejects hparams values of other types', () => {
    const w = writer(tempDir('osp-tfevents-'));
    expect(() => w.hparams({ bad: null as unknown as number }, [])).toThrow(/bad/);
    w.close();
  });
});
