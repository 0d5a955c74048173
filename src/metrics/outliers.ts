/**
 * Outlier statistics of one hidden-state tap x ([B, T, d] or [N, d]; N = B*T tokens, d channels):
 *
 * - `ospKurtosis`     the OSP paper's estimator (evaluate_kurtosis.py): per token, the raw (not mean-centred)
 *                     4th moment over the hidden dim divided by the 4th power of the unbiased std, minus 3,
 *                     clipped at 0, averaged over tokens. Its value for Gaussian activations is not 0 but
 *                     `gaussianFloor(d)` (0.18 at d = 64), so small models are "outlier-free" at the floor.
 * - `channelKurtosis` He et al. 2024: per-CHANNEL outlier features (a few channels much larger than the rest).
 * - `maxMedianRatio`  per token max_i |x_ti| / median_i |x_ti|, averaged over tokens.
 * - `topK`            the k largest |x| in the tap (massive activations), with their token and channel.
 * - `channelRms`      per-channel RMS over tokens (histograms, the layer x channel heatmap).
 *
 * The device computes power sums (the channelMoments op) and top-k selections; the host finishes in float64,
 * so that averaging thousands of per-token values adds no float32 rounding. `outlierStats64` is the same
 * statistics written plainly in float64 JS: the oracle for the tensor path, and the only path that
 * `gaussianFloor` uses.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, ShapeError } from '../errors.ts';
import { encodePng } from '../io/png.ts';
import { channelMoments } from '../ops/channel_moments.ts';
import { gaussianFloorEstimate } from './gaussian_floor.ts';
import { tokenKurtosis64 } from './token_kurtosis.ts';

/** Outlier statistics of one tap. All values are float64 host numbers. */
export interface OutlierStats {
  /** Number of tokens N (B*T for a [B, T, d] tap). */
  tokens: number;
  /** Hidden width d. */
  width: number;
  /**
   * OSP excess kurtosis: mean over tokens t of max(0, kappa_t), with
   * kappa_t = mean_i(x_ti^4) / s_t^4 - 3, s_t^2 = sum_i (x_ti - mean_i x_ti)^2 / (d - 1).
   * A token with zero variance counts as 0.
   */
  ospKurtosis: number;
  /**
   * He et al. 2024 kurtosis of the per-channel RMS values. Each token is normalised by its RMS,
   * u_ti = x_ti / sqrt(mean_i x_ti^2); s_i = mean_t u_ti^2 is channel i's mean square and r_i = sqrt(s_i)
   * its RMS; the statistic is Kurt(r) = mean_i(r_i^4) / mean_i(r_i^2)^2 = mean_i(s_i^2) / mean_i(s_i)^2.
   * 1 when all channels have the same RMS (i.i.d. Gaussian: 1 + 2(d-1)/((d+2)N) in expectation); d when a
   * single channel carries everything. Tokens that are all zero contribute nothing.
   */
  channelKurtosis: number;
  /**
   * Mean over tokens of max_i |x_ti| / median_i |x_ti| (median of d values: the mean of the two middle
   * ones when d is even). An all-zero token counts as 1; a token with median 0 and max > 0 gives Infinity.
   */
  maxMedianRatio: number;
  /** The k largest |x| over the whole tap, descending (ties: lower token, then lower channel first). */
  topK: Float64Array;
  /** Token index (row of the flattened [N, d] tap) of each topK value. */
  topKToken: Int32Array;
  /** Channel index of each topK value. */
  topKChannel: Int32Array;
  /** [d]: sqrt(mean_t x_ti^2), raw activations (not RMS-normalised). */
  channelRms: Float64Array;
}

export interface OutlierOptions {
  /** How many of the largest |x| to report (default 8; fewer when the tap has fewer elements). */
  topK?: number;
}

const DEFAULT_TOP_K = 8;

/** [N, d] of a [B, T, d] or [N, d] tap, with the checks both paths share. */
function flatShape(shape: readonly number[], what: string): [number, number] {
  if (shape.length !== 2 && shape.length !== 3) {
    throw new ShapeError(`${what}: x must be [B, T, d] or [N, d], got shape [${shape}]`);
  }
  const d = shape[shape.length - 1]!;
  const n = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  if (d < 2) throw new ShapeError(`${what}: kurtosis needs at least 2 channels, got d = ${d} (shape [${shape}])`);
  if (n < 1) throw new ShapeError(`${what}: x has no tokens (shape [${shape}])`);
  return [n, d];
}

function checkTopK(k: number | undefined): number {
  const v = k ?? DEFAULT_TOP_K;
  if (!Number.isInteger(v) || v < 1) {
    throw new ConfigError('topK', `must be a positive integer, got ${String(k)}`);
  }
  return v;
}

/** Max over median of |x| for one token, from its max and median (the conventions documented above). */
function maxMedian(max: number, median: number): number {
  return max === 0 ? 1 : max / median;
}

/**
 * Outlier statistics of one hidden-state tap, computed on the active backend. Device work: two
 * channelMoments passes (raw x; x normalised by its token RMS) and top-k selections on |x|; the host
 * finishes in float64. Disposes every tensor it creates; x is left alone.
 *
 * Numerics: the per-token variance comes from raw float32 power sums, s^2 = (S2 - S1^2/d) / (d - 1), which
 * loses digits when a token's mean is large against its spread (|mean| / std = 100 costs ~4 digits);
 * hidden states are near zero-mean across channels, so this does not arise in practice.
 *
 * @param x [B, T, d] or [N, d] float32
 * @example
 *   const { taps } = model.forward(tokens, { taps: true });
 *   const s = await outlierStats(taps.get('layers.3.out')!);
 *   metrics.record('outliers/layer3/kurtosis', s.ospKurtosis);
 */
export async function outlierStats(x: tf.Tensor, opts: OutlierOptions = {}): Promise<OutlierStats> {
  const [n, d] = flatShape(x.shape, 'outlierStats');
  if (x.dtype !== 'float32') throw new ShapeError(`outlierStats: x must be float32, got ${x.dtype}`);
  const k = checkTopK(opts.topK);
  const half = Math.floor(d / 2);
  // Sorted descending, the first floor(d/2)+1 values per row hold the max (column 0) and the median:
  // column floor(d/2) for odd d, the mean of columns d/2 - 1 and d/2 for even d.
  const rowK = Math.max(half + 1, Math.min(k, d));
  const medianCols = d % 2 === 1 ? [0, half] : [0, half - 1, half];
  // Every one of the global top k is among the top min(k, d) of its own row, so the global selection
  // runs on [N, min(k, d)] instead of all N*d values.
  const kRow = Math.min(k, d);
  const kAll = Math.min(k, n * kRow);

  const dev = tf.tidy(() => {
    const x2 = tf.reshape(x, [n, d]) as tf.Tensor2D;
    const raw = channelMoments(x2);
    const ms = tf.div(tf.slice(raw.token, [0, 1], [n, 1]), d); // [N, 1] mean square per token
    // An all-zero token would give 0 * inf = NaN; it contributes 0 to every channel instead.
    const inv = tf.where(tf.greater(ms, 0), tf.rsqrt(ms), tf.zerosLike(ms));
    const normed = channelMoments(tf.mul(x2, inv) as tf.Tensor2D);
    const rows = tf.topk(tf.abs(x2), rowK); // values, indices: [N, rowK]
    const picked = tf.gather(rows.values, tf.tensor1d(medianCols, 'int32'), 1); // [N, 2 or 3]
    const best = tf.topk(tf.reshape(tf.slice(rows.values, [0, 0], [n, kRow]), [-1]), kAll);
    const bestChannel = tf.gather(tf.reshape(tf.slice(rows.indices, [0, 0], [n, kRow]), [-1]), best.indices);
    return [
      raw.token, // [N, 4]
      tf.slice(raw.channel, [0, 1], [d, 1]), // [d, 1] sums of x^2 per channel
      tf.slice(normed.channel, [0, 1], [d, 1]), // [d, 1] sums of normalised x^2 per channel
      picked,
      best.values,
      best.indices,
      bestChannel,
    ];
  });
  let host: tf.TypedArray[];
  try {
    host = await Promise.all(dev.map((t) => t.data()));
  } finally {
    tf.dispose(dev);
  }
  const [tokenSums, chanSq, normSq, pickedVals, bestVals, bestFlat, bestChan] = host;

  let kurtSum = 0;
  let ratioSum = 0;
  const cols = medianCols.length;
  for (let t = 0; t < n; t++) {
    const s1 = tokenSums![4 * t]!;
    const s2 = tokenSums![4 * t + 1]!;
    const s4 = tokenSums![4 * t + 3]!;
    const variance = (s2 - (s1 * s1) / d) / (d - 1);
    if (variance > 0) kurtSum += Math.max(0, s4 / d / (variance * variance) - 3);
    const max = pickedVals![t * cols]!;
    const mid = t * cols + 1;
    const median = cols === 2 ? pickedVals![mid]! : (pickedVals![mid]! + pickedVals![mid + 1]!) / 2;
    ratioSum += maxMedian(max, median);
  }

  let m1 = 0;
  let m2 = 0;
  const channelRms = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    const s = normSq![i]! / n;
    m1 += s;
    m2 += s * s;
    channelRms[i] = Math.sqrt(chanSq![i]! / n);
  }
  m1 /= d;
  m2 /= d;

  const topKToken = new Int32Array(kAll);
  for (let j = 0; j < kAll; j++) topKToken[j] = Math.floor(bestFlat![j]! / kRow);
  return {
    tokens: n,
    width: d,
    ospKurtosis: kurtSum / n,
    channelKurtosis: m1 > 0 ? m2 / (m1 * m1) : 0,
    maxMedianRatio: ratioSum / n,
    topK: Float64Array.from(bestVals!),
    topKToken,
    topKChannel: Int32Array.from(bestChan!),
    channelRms,
  };
}

/**
 * The same statistics as `outlierStats`, written plainly in float64 JS over a row-major [n, d] array: the
 * oracle for the tensor path (and usable on host data directly).
 *
 * @example const s = outlierStats64(Float64Array.from(await h.data()), B * T, d);
 */
export function outlierStats64(x: Float64Array, n: number, d: number, opts: OutlierOptions = {}): OutlierStats {
  flatShape([n, d], 'outlierStats64');
  if (x.length !== n * d) throw new ShapeError(`outlierStats64: x has ${x.length} values, [${n}, ${d}] needs ${n * d}`);
  const k = Math.min(checkTopK(opts.topK), n * d);

  let kurtSum = 0;
  let ratioSum = 0;
  const normSq = new Float64Array(d);
  const sq = new Float64Array(d);
  const row = new Float64Array(d);
  // Running top k, kept sorted by (|x| descending, flat index ascending).
  const topVal: number[] = [];
  const topIdx: number[] = [];
  for (let t = 0; t < n; t++) {
    const off = t * d;
    kurtSum += tokenKurtosis64(x, off, d);

    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[off + i]! * x[off + i]!;
    ms /= d;
    for (let i = 0; i < d; i++) {
      const v2 = x[off + i]! * x[off + i]!;
      sq[i]! += v2;
      if (ms > 0) normSq[i]! += v2 / ms;
    }

    for (let i = 0; i < d; i++) row[i] = Math.abs(x[off + i]!);
    row.sort();
    const median = d % 2 === 1 ? row[(d - 1) / 2]! : (row[d / 2 - 1]! + row[d / 2]!) / 2;
    ratioSum += maxMedian(row[d - 1]!, median);

    for (let i = 0; i < d; i++) {
      const a = Math.abs(x[off + i]!);
      // Later flat indices lose ties, so a value equal to the current k-th does not enter.
      if (topVal.length === k && a <= topVal[k - 1]!) continue;
      let pos = topVal.length;
      while (pos > 0 && topVal[pos - 1]! < a) pos--;
      topVal.splice(pos, 0, a);
      topIdx.splice(pos, 0, off + i);
      if (topVal.length > k) {
        topVal.pop();
        topIdx.pop();
      }
    }
  }

  let m1 = 0;
  let m2 = 0;
  const channelRms = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    const s = normSq[i]! / n;
    m1 += s / d;
    m2 += (s * s) / d;
    channelRms[i] = Math.sqrt(sq[i]! / n);
  }
  return {
    tokens: n,
    width: d,
    ospKurtosis: kurtSum / n,
    channelKurtosis: m1 > 0 ? m2 / (m1 * m1) : 0,
    maxMedianRatio: ratioSum / n,
    topK: Float64Array.from(topVal),
    topKToken: Int32Array.from(topIdx, (j) => Math.floor(j / d)),
    topKChannel: Int32Array.from(topIdx, (j) => j % d),
    channelRms,
  };
}

/**
 * The paper's aggregate over hidden states: the mean of ospKurtosis over the taps that Hugging Face's
 * `output_hidden_states` returns for a Llama, L + 1 tensors: the embedding output ('embed'), the outputs of
 * layers 0 .. L-2 ('layers.{i}.out'), and the final-norm output ('final_norm'). HF's last entry is the
 * final norm applied to layer L-1's output, which replaces that raw output, so 'layers.{L-1}.out' is not
 * in the aggregate (with SSNorm it would count the last layer twice: a single scale leaves the per-token
 * kurtosis unchanged). The attn_in / ffn_in taps are reported per tap but are not hidden states of HF's
 * tuple, so they are not in the aggregate either.
 *
 * @param opts.numLayers L; by default one more than the largest layer index among the keys.
 * @returns NaN when no tap of the aggregate is present.
 * @example aggregateOspKurtosis(new Map([['embed', s0], ['layers.0.out', s1], ['final_norm', s2]]), { numLayers: 2 })
 */
export function aggregateOspKurtosis(stats: Map<string, OutlierStats>, opts: { numLayers?: number } = {}): number {
  let lastLayer = -1;
  for (const name of stats.keys()) {
    const m = /^layers\.(\d+)\./.exec(name);
    if (m) lastLayer = Math.max(lastLayer, Number(m[1]));
  }
  if (opts.numLayers !== undefined) lastLayer = opts.numLayers - 1;
  let sum = 0;
  let count = 0;
  for (const [name, s] of stats) {
    const m = /^layers\.(\d+)\.out$/.exec(name);
    const inTuple = name === 'embed' || name === 'final_norm' || (m !== null && Number(m[1]) < lastLayer);
    if (inTuple) {
      sum += s.ospKurtosis;
      count++;
    }
  }
  return count > 0 ? sum / count : NaN;
}

/**
 * The expected value of the OSP estimator (ospKurtosis) for i.i.d. N(0, 1) activations of width d: the
 * "outlier-free" level of a width-d model (see gaussian_floor.ts: a large-sample table, else a Monte
 * Carlo estimate with its standard error, `gaussianFloorEstimate`). The paper quotes 0.182 (d = 64),
 * 0.140, 0.107, 0.079 (512), 0.041 (2048).
 *
 * @example gaussianFloor(128) // ~0.140
 */
export function gaussianFloor(d: number): number {
  return gaussianFloorEstimate(d).value;
}

/** Viridis sampled at 9 evenly spaced points (perceptually uniform, readable in grey scale). */
const VIRIDIS: readonly [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** Colour of cells that cannot be log-scaled (zero, negative, NaN): black, outside the colormap. */
const INVALID_RGB: readonly [number, number, number] = [0, 0, 0];

function viridis(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + f * (b[c]! - a[c]!))) as [number, number, number];
}

export interface HeatmapOptions {
  /** Pixels per channel, horizontally (default 4). */
  cellWidth?: number;
  /** Pixels per row (layer), vertically (default 8). */
  cellHeight?: number;
  /** Value range mapped to the colormap ends; default: the smallest positive and the largest finite value. */
  range?: [number, number];
}

/**
 * A layer x channel heatmap (e.g. channelRms per layer) as an RGB PNG: one row of cells per entry of
 * `rows` (top to bottom), one column per channel, colour = viridis of log10(value) over the range. Values
 * that cannot be log-scaled (<= 0, NaN) are black.
 *
 * @example
 *   const { png, width, height } = heatmapPng(layers.map((l) => stats.get(`layers.${l}.out`)!.channelRms));
 *   writer.image('outliers/channel_rms', png, width, height, step);
 */
export function heatmapPng(
  rows: Float64Array[],
  opts: HeatmapOptions = {},
): { png: Uint8Array; width: number; height: number; range: [number, number] } {
  const cw = opts.cellWidth ?? 4;
  const ch = opts.cellHeight ?? 8;
  if (!Number.isInteger(cw) || cw < 1 || !Number.isInteger(ch) || ch < 1) {
    throw new ConfigError('cellWidth/cellHeight', `must be positive integers, got ${cw} x ${ch}`);
  }
  if (rows.length === 0 || rows[0]!.length === 0) {
    throw new ShapeError('heatmapPng: needs at least one row and one channel');
  }
  const d = rows[0]!.length;
  rows.forEach((r, l) => {
    if (r.length !== d) throw new ShapeError(`heatmapPng: row ${l} has ${r.length} values, row 0 has ${d}`);
  });

  let lo = Infinity;
  let hi = -Infinity;
  if (opts.range) {
    [lo, hi] = opts.range;
    if (!(lo > 0 && hi >= lo)) throw new ConfigError('range', `must satisfy 0 < lo <= hi, got [${lo}, ${hi}]`);
  } else {
    for (const r of rows) {
      for (const v of r) {
        if (v > 0 && Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    if (lo === Infinity) [lo, hi] = [1, 1]; // nothing positive: every cell is black anyway
  }
  const logLo = Math.log10(lo);
  const span = Math.log10(hi) - logLo;

  const width = d * cw;
  const height = rows.length * ch;
  const pixels = new Uint8Array(width * height * 3);
  rows.forEach((r, l) => {
    // Build one scanline for the row of cells, then repeat it cellHeight times.
    const line = new Uint8Array(width * 3);
    for (let i = 0; i < d; i++) {
      const v = r[i]!;
      // span 0 (one distinct value): the middle of the colormap rather than a division by zero.
      const rgb = v > 0 ? viridis(span > 0 ? (Math.log10(v) - logLo) / span : 0.5) : INVALID_RGB;
      for (let p = 0; p < cw; p++) line.set(rgb, (i * cw + p) * 3);
    }
    for (let y = 0; y < ch; y++) pixels.set(line, (l * ch + y) * width * 3);
  });
  return { png: encodePng(width, height, pixels, 3), width, height, range: [lo, hi] };
}
