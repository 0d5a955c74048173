/**
 * TensorBoard event-file writer (no maintained npm writer exists).
 *
 * File: events.out.tfevents.<10-digit unix seconds>.<hostname>.<pid>.<counter>, a sequence of
 * TFRecords, each `u64 length | u32 masked CRC-32C of the length bytes | data | u32 masked CRC-32C
 * of data`, where data is a serialized tensorflow.Event. The first record carries only
 * file_version "brain.Event:2", which readers use to recognize the file.
 *
 * Field numbers (tensorflow/core/util/event.proto, framework/summary.proto, tensor.proto,
 * tensorboard/plugins/hparams/{api,plugin_data}.proto):
 *   Event: wall_time=1 double, step=2 int64, file_version=3 string, summary=5, session_log=7
 *   SessionLog: status=1 enum (START=1), msg=3 string
 *   Summary: value=1 (repeated); Value: tag=1, simple_value=2 float, image=4, histo=5, tensor=8, metadata=9
 *   SummaryMetadata: plugin_data=1 {plugin_name=1, content=2 bytes}
 *   HistogramProto: min=1 max=2 num=3 sum=4 sum_squares=5 (double), bucket_limit=6 bucket=7 (packed double)
 *   Image: height=1 width=2 colorspace=3 encoded_image_string=4
 *   TensorProto: dtype=1 (DT_STRING=7), tensor_shape=2 {dim=2 {size=1}}, string_val=8
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { OspError } from '../errors.ts';
import { maskedCrc32c } from './crc32c.ts';
import { ProtoWriter } from './protobuf.ts';

export interface EventWriterOptions {
  /** Flush automatically once this many bytes are buffered (default 1 MiB). */
  maxBufferBytes?: number;
  /** Clock in seconds since the epoch (default Date.now() / 1000); a seam for tests. */
  now?: () => number;
  /** Host name in the file name (default os.hostname()). */
  hostname?: string;
}

/** Ensures file names differ between writers created by one process in the same second. */
let fileCounter = 0;

const DT_STRING = 7;
// hparams plugin enums (api.proto)
const DATA_TYPE_STRING = 1;
const DATA_TYPE_BOOL = 2;
const DATA_TYPE_FLOAT64 = 3;
const STATUS_SUCCESS = 1;
const HPARAMS_PLUGIN = 'hparams';

/** One TFRecord: u64 length | masked crc(length) | data | masked crc(data). */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 16);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

function pluginMetadata(pluginName: string, content?: Uint8Array): ProtoWriter {
  const pluginData = new ProtoWriter().string(1, pluginName);
  if (content !== undefined) pluginData.bytes(2, content);
  return new ProtoWriter().message(1, pluginData);
}

/** PNG IHDR color type -> TensorBoard Image.colorspace (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA). */
const COLORSPACE: Record<number, number> = { 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 };

/**
 * Writes scalars, histograms, text, images and hparams to one TensorBoard event file in `logDir`.
 * Records are buffered in memory and written on flush() (also automatically past
 * `maxBufferBytes`) and on close(). Write failures raise an OspError naming the file; the buffered
 * records are kept, so a later flush() can retry.
 *
 * @example
 *   const w = new EventWriter('runs/muon-ssnorm');
 *   w.scalar('train/loss', 3.21, 100);
 *   w.histogram('outliers/layer3/act', acts, 100);
 *   w.close();
 */
export class EventWriter {
  /** Full path of the event file. */
  readonly path: string;
  private readonly now: () => number;
  private readonly maxBufferBytes: number;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private closed = false;

  constructor(logDir: string, options: EventWriterOptions = {}) {
    this.now = options.now ?? (() => Date.now() / 1000);
    this.maxBufferBytes = options.maxBufferBytes ?? 1 << 20;
    const host = options.hostname ?? osHostname();
    try {
      mkdirSync(logDir, { recursive: true });
    } catch (e) {
      throw this.ioError(logDir, 'cannot create log directory', e);
    }
    const created = this.now();
    const secs = String(Math.floor(created)).padStart(10, '0');
    const first = frameRecord(new ProtoWriter().double(1, created).string(3, 'brain.Event:2').finish());
    // 'wx' creates the file exclusively: another writer (another process on a shared disk with a
    // reused pid) never gets its file appended to. On a clash take the next counter.
    for (;;) {
      const path = join(logDir, `events.out.tfevents.${secs}.${host}.${process.pid}.${fileCounter++}`);
      try {
        writeFileSync(path, first, { flag: 'wx' });
        this.path = path;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw this.ioError(path, 'cannot create event file', e);
      }
    }
  }

  /**
   * A scalar point (Summary.Value.simple_value, a float32; NaN and ±Inf are kept, so a diverging
   * loss shows up in the plot).
   * @example w.scalar('train/loss', loss, step)
   */
  scalar(tag: string, value: number, step: number): void {
    if (typeof value !== 'number') {
      throw new OspError(`EventWriter.scalar('${tag}'): value must be a number, got ${typeof value}`);
    }
    this.writeValue(step, new ProtoWriter().string(1, this.checkTag(tag)).float(2, value));
  }

  /**
   * A histogram of `values` with `bins` equal-width buckets between the finite min and max
   * (HistogramProto; bucket_limit[i] is the right edge of bucket i, the left edge of bucket 0 is
   * min, a value on an edge counts in the bucket to its right, max counts in the last bucket).
   * Non-finite values are skipped; the number skipped is returned so the caller can log it.
   * @example const skipped = w.histogram('grads/wq', g, step, 50);
   */
  histogram(tag: string, values: ArrayLike<number>, step: number, bins = 30): number {
    this.checkTag(tag);
    if (!Number.isInteger(bins) || bins < 1) {
      throw new OspError(`EventWriter.histogram('${tag}'): bins must be a positive integer, got ${bins}`);
    }
    let min = Infinity;
    let max = -Infinity;
    let num = 0;
    let sum = 0;
    let sumSq = 0;
    let nonFinite = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) {
        nonFinite++;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
      num++;
      sum += v;
      sumSq += v * v;
    }
    let limits: number[];
    let counts: number[];
    if (num === 0) {
      // TensorBoard builds left edges as [min, ...limits[:-1]]: at least one bucket is required.
      min = 0;
      max = 0;
      limits = [0];
      counts = [0];
    } else {
      // Equal-width edges, the last exactly max. Interpolated as min*(1-t) + max*t, not
      // min + i * (max - min) / bins, so that a range like ±1.7e308 cannot overflow to Inf.
      // Tiny ranges can round two edges together: keep only strictly increasing ones.
      limits = [];
      for (let i = 1; i < bins; i++) {
        const edge = min * ((bins - i) / bins) + max * (i / bins);
        if (edge > min && edge < max && (limits.length === 0 || edge > limits[limits.length - 1]!)) limits.push(edge);
      }
      limits.push(max);
      counts = new Array<number>(limits.length).fill(0);
      const last = limits.length - 1;
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (!Number.isFinite(v)) continue;
        // Index = number of edges <= v (bucket [left, right)), by binary search; max -> last bucket.
        let lo = 0;
        let hi = last;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (limits[mid]! <= v) lo = mid + 1;
          else hi = mid;
        }
        counts[lo]!++;
      }
    }
    const histo = new ProtoWriter()
      .double(1, min)
      .double(2, max)
      .double(3, num)
      .double(4, sum)
      .double(5, sumSq)
      .packedDoubles(6, limits)
      .packedDoubles(7, counts);
    this.writeValue(step, new ProtoWriter().string(1, tag).message(5, histo));
    return nonFinite;
  }

  /**
   * Markdown text, shown by the text plugin (a DT_STRING tensor of shape [1]).
   * @example w.text('config', '```json\n' + JSON.stringify(cfg, null, 2) + '\n```', 0)
   */
  text(tag: string, markdown: string, step: number): void {
    const tensor = new ProtoWriter()
      .varint(1, DT_STRING)
      .message(2, new ProtoWriter().message(2, new ProtoWriter().varint(1, 1)))
      .string(8, markdown);
    this.writeValue(step, new ProtoWriter().string(1, this.checkTag(tag)).message(8, tensor).message(9, pluginMetadata('text')));
  }

  /**
   * A PNG image (see encodePng). The PNG's own header must agree with `width` x `height`; the
   * colorspace is taken from it.
   * @example w.image('attn/layer0', encodePng(w, h, pixels, 3), w, h, step)
   */
  image(tag: string, png: Uint8Array, width: number, height: number, step: number): void {
    this.checkTag(tag);
    const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (png.length < 33 || !sig.every((b, i) => png[i] === b)) {
      throw new OspError(`EventWriter.image('${tag}'): expected PNG bytes (signature 89 50 4E 47 ...), found something else`);
    }
    const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
    const w = view.getUint32(16);
    const h = view.getUint32(20);
    if (w !== width || h !== height) {
      throw new OspError(`EventWriter.image('${tag}'): PNG is ${w} x ${h} but ${width} x ${height} was given`);
    }
    const image = new ProtoWriter()
      .varint(1, height)
      .varint(2, width)
      .varint(3, COLORSPACE[png[25]!] ?? 3)
      .bytes(4, png);
    this.writeValue(step, new ProtoWriter().string(1, tag).message(4, image));
  }

  /**
   * Hyperparameters for the hparams dashboard: the experiment (one HParamInfo per key, typed
   * FLOAT64 / STRING / BOOL, and one MetricInfo per metric tag), this run's session start with the
   * values, and a session end with status SUCCESS. Call once per run (TensorBoard fixes a run's
   * session on first sight), typically at the start; the metrics are scalars logged under
   * `metricTags`.
   * @example w.hparams({ lr: 3e-4, norm: 'ssnorm', muon: true }, ['train/loss', 'val/loss'])
   */
  hparams(hparams: Record<string, number | string | boolean>, metricTags: string[]): void {
    const experiment = new ProtoWriter();
    const start = new ProtoWriter();
    for (const [name, value] of Object.entries(hparams)) {
      const v = new ProtoWriter();
      let type: number;
      if (typeof value === 'number') {
        v.double(2, value); // google.protobuf.Value.number_value
        type = DATA_TYPE_FLOAT64;
      } else if (typeof value === 'string') {
        v.string(3, value); // string_value
        type = DATA_TYPE_STRING;
      } else if (typeof value === 'boolean') {
        v.bool(4, value); // bool_value
        type = DATA_TYPE_BOOL;
      } else {
        throw new OspError(`EventWriter.hparams: '${name}' must be a number, string or boolean, got ${typeof value}`);
      }
      experiment.message(4, new ProtoWriter().string(1, name).varint(4, type)); // HParamInfo{name, type}
      start.message(1, new ProtoWriter().string(1, name).message(2, v)); // map entry {key=1, value=2}
    }
    for (const tag of metricTags) {
      // MetricInfo{name=1: MetricName{tag=2}}
      experiment.message(5, new ProtoWriter().message(1, new ProtoWriter().string(2, this.checkTag(tag))));
    }
    start.double(5, this.now()); // start_time_secs
    const end = new ProtoWriter().varint(1, STATUS_SUCCESS);

    // HParamsPluginData{version=1: 0, experiment=2 | session_start_info=3 | session_end_info=4}.
    // version 0 is the proto3 default and so is not written.
    const parts: [string, number, ProtoWriter][] = [
      ['_hparams_/experiment', 2, experiment],
      ['_hparams_/session_start_info', 3, start],
      ['_hparams_/session_end_info', 4, end],
    ];
    for (const [tag, field, msg] of parts) {
      const content = new ProtoWriter().message(field, msg).finish();
      // Only tag and metadata: TensorBoard supplies the placeholder tensor itself on load.
      this.writeValue(0, new ProtoWriter().string(1, tag).message(9, pluginMetadata(HPARAMS_PLUGIN, content)));
    }
  }

  /** Writes buffered records to the file. Raises an OspError naming the file on failure. */
  flush(): void {
    if (this.chunks.length === 0) return;
    const all = new Uint8Array(this.buffered);
    let pos = 0;
    for (const c of this.chunks) {
      all.set(c, pos);
      pos += c.length;
    }
    try {
      // Open-append-close per flush: no fd to leak if close() is never called, and flushes are rare.
      appendFileSync(this.path, all);
    } catch (e) {
      throw this.ioError(this.path, 'cannot write event file', e);
    }
    this.chunks = [];
    this.buffered = 0;
  }

  /** Flushes and closes; further writes raise an OspError. Closing twice is harmless. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  /**
   * A SessionLog START event at `step`: TensorBoard then discards the events of earlier files whose
   * step is >= `step` (what a killed run logged past the checkpoint a resume continues from), so a
   * resumed run's curves do not show those steps twice.
   */
  sessionStart(step: number, msg = 'resumed'): void {
    if (this.closed) throw new OspError(`EventWriter: ${this.path} is closed`);
    if (!Number.isSafeInteger(step)) throw new OspError(`EventWriter: step must be an integer, got ${step}`);
    const event = new ProtoWriter().double(1, this.now()).varint(2, step).message(7, new ProtoWriter().varint(1, 1).string(3, msg));
    const record = frameRecord(event.finish());
    this.chunks.push(record);
    this.buffered += record.length;
  }

  private checkTag(tag: string): string {
    if (typeof tag !== 'string' || tag.length === 0) {
      throw new OspError(`EventWriter: tag must be a non-empty string, got ${JSON.stringify(tag)}`);
    }
    return tag;
  }

  private writeValue(step: number, value: ProtoWriter): void {
    if (this.closed) throw new OspError(`EventWriter: ${this.path} is closed`);
    if (!Number.isSafeInteger(step)) throw new OspError(`EventWriter: step must be an integer, got ${step}`);
    const event = new ProtoWriter().double(1, this.now()).varint(2, step).message(5, new ProtoWriter().message(1, value));
    const record = frameRecord(event.finish());
    this.chunks.push(record);
    this.buffered += record.length;
    if (this.buffered >= this.maxBufferBytes) this.flush();
  }

  private ioError(path: string, what: string, e: unknown): OspError {
    const code = (e as NodeJS.ErrnoException).code;
    const err = new OspError(`${path}: ${what}: ${code ? `${code}: ` : ''}${(e as Error).message}`);
    err.cause = e;
    return err;
  }
}
