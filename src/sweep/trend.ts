/**
 * The outlier-emergence verdict of a multi-seed sweep: for pairs of configurations (A = the Adam-like
 * baseline, B = OSP), how the outlier metrics and the 4-bit quantization gap grow with the tokens seen,
 * and whether the OSP paper's qualitative claims hold at this scale, with seed intervals throughout.
 *
 * Per trial (one seed), each measured metric is fitted against the tokens seen by least squares on
 *
 *     y = a + b * log10(tokens)
 *
 * (a straight line on a log-tokens axis: handles values at or below zero, such as a quantization gap
 * that noise puts under 1). The slope b is "per decade of tokens"; its mean and 95% t-interval are
 * over the seeds (one fit per seed, so points of one seed, which are correlated, never count as
 * independent). Where a target is not met, each seed's line is solved for the tokens at which it would
 * be (log10 tokens averaged over the seeds, with their interval); a seed whose slope does not point
 * towards the target never reaches it, and the extrapolation says so instead of inventing a number.
 *
 * The targets are the issue's reading of the paper's claims at small scale: A's OSP kurtosis at least
 * 10x the Gaussian floor of the estimator, B's within 1.5x; A's worst-layer channel kurtosis and
 * max/median above B's; A's W4A4KV4 perplexity increase (ratio - 1) at least 0.2 and at least 3x B's;
 * the two 16-bit losses within 2% of each other; and, since better-trained models are more sensitive to
 * quantization, A's gap above B's at matched 16-bit loss (matchedLossTarget). "Met" means met beyond the seed interval (the interval's
 * far end satisfies it), so a single seed can never meet a target.
 */
import { z } from 'zod';
import { OspError } from '../errors.ts';
import { configurationOf, sortQuantTags } from './labels.ts';
import type { MetricsRow, TrialResult } from './report.ts';
import { describeSample, welchInterval, type Difference, type Stat } from './stats.ts';

/** The sweep spec's `trend` section. */
export const TrendSpecSchema = z.strictObject({
  /** [A, B] configuration names (trial names without their seed part), e.g. ["adam-d256", "osp-d256"]. */
  pairs: z.array(z.tuple([z.string().min(1), z.string().min(1)])).min(1),
});
export type TrendSpec = z.output<typeof TrendSpecSchema>;

/** A straight line y = intercept + slope * log10(tokens). */
export interface LogLinearFit {
  intercept: number;
  slope: number;
  /** Points fitted. */
  n: number;
}

/**
 * Least-squares line of y against log10(x) (x > 0); null with fewer than two distinct x.
 * @example fitLogLinear([[10, 1], [100, 2], [1000, 3]]) // { intercept: 0, slope: 1, n: 3 }
 */
export function fitLogLinear(points: readonly (readonly [number, number])[]): LogLinearFit | null {
  const ok = points.filter(([x, y]) => x > 0 && Number.isFinite(x) && Number.isFinite(y));
  const n = ok.length;
  if (n < 2) return null;
  const lx = ok.map(([x]) => Math.log10(x));
  const mx = lx.reduce((a, b) => a + b, 0) / n;
  const my = ok.reduce((a, [, y]) => a + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  ok.forEach(([, y], i) => {
    sxx += (lx[i]! - mx) ** 2;
    sxy += (lx[i]! - mx) * (y - my);
  });
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope, n };
}

/** The metrics the verdict follows, each as (tokens, value) points of one trial. */
export const TREND_METRICS = ['kurtosis_floor', 'channel_kurtosis', 'max_median', 'gap', 'fp_loss'] as const;
export type TrendMetric = (typeof TREND_METRICS)[number];

const METRIC_LABELS: Record<TrendMetric, string> = {
  kurtosis_floor: 'OSP kurtosis / Gaussian floor',
  channel_kurtosis: 'channel kurtosis, worst layer',
  max_median: 'max/median |x|, worst layer',
  gap: 'W4A4KV4 ppl ratio - 1',
  fp_loss: '16-bit loss (nats/byte)',
};

/** The quantization tag the gap is read from: plain RTN (the paper's W4A4KV4 RTN row) when measured. */
export function gapTag(trials: readonly TrialResult[]): string | undefined {
  const tags = new Set<string>();
  for (const t of trials)
    for (const row of t.metrics)
      for (const k of Object.keys(row)) {
        const m = /^quant\/(.+)\/ppl_ratio$/.exec(k);
        if (m) tags.add(m[1]!);
      }
  const sorted = sortQuantTags(tags);
  return sorted.find((t) => /^w4a4kv4_rtn$/.test(t)) ?? sorted.find((t) => /_rtn$/.test(t)) ?? sorted[0];
}

/** Tokens per optimizer step of a trial (batch.size x batch.seqLen x batch.accum of its resolved config). */
function tokensPerStep(t: TrialResult): number {
  const b = (t.config.resolved as { batch?: { size?: number; seqLen?: number; accum?: number } }).batch ?? {};
  const v = (b.size ?? 0) * (b.seqLen ?? 0) * (b.accum ?? 1);
  if (!(v > 0)) throw new OspError(`${t.dir}/config.json: no batch size and sequence length to count tokens by`);
  return v;
}

/** One trial's (tokens, value) points of a metric; step 1 (the initialization) is left out. */
export function metricPoints(t: TrialResult, metric: TrendMetric, tag: string | undefined): [number, number][] {
  const per = tokensPerStep(t);
  const value = (r: MetricsRow): number | undefined => {
    switch (metric) {
      case 'kurtosis_floor':
        return r['outliers/osp_kurtosis'] !== undefined && r['outliers/gaussian_floor']
          ? r['outliers/osp_kurtosis'] / r['outliers/gaussian_floor']
          : undefined;
      case 'channel_kurtosis':
        return r['outliers/channel_kurtosis'];
      case 'max_median':
        return r['outliers/max_median'];
      case 'gap':
        return tag === undefined || r[`quant/${tag}/ppl_ratio`] === undefined ? undefined : r[`quant/${tag}/ppl_ratio`]! - 1;
      case 'fp_loss':
        return r['quant/fp_loss'];
    }
  };
  const out: [number, number][] = [];
  for (const r of t.metrics) {
    if (r.step <= 1) continue;
    const v = value(r);
    if (v !== undefined) out.push([r.step * per, v]);
  }
  return out;
}

/** One configuration's metric over its seeds: the last measurement and the fitted slope. */
export interface MetricTrend {
  metric: TrendMetric;
  label: string;
  /** The value at each seed's last measurement. */
  last: Stat;
  lastValues: number[];
  /** Slope per decade of tokens, over the seeds. */
  slope: Stat;
  fits: (LogLinearFit & { seed: number | null })[];
  /** Tokens of the last measurement (the largest over the seeds). */
  tokens: number;
}

function metricTrend(trials: readonly TrialResult[], metric: TrendMetric, tag: string | undefined): MetricTrend {
  const lastValues: number[] = [];
  const fits: MetricTrend['fits'] = [];
  let tokens = 0;
  for (const t of trials) {
    const pts = metricPoints(t, metric, tag);
    if (pts.length === 0) continue;
    const [x, y] = pts[pts.length - 1]!;
    lastValues.push(y);
    tokens = Math.max(tokens, x);
    const f = fitLogLinear(pts);
    if (f) fits.push({ ...f, seed: configurationOf(t.name).seed });
  }
  return {
    metric,
    label: METRIC_LABELS[metric],
    last: describeSample(lastValues),
    lastValues,
    slope: describeSample(fits.map((f) => f.slope)),
    fits,
    tokens,
  };
}

/** Where the fitted lines of the seeds reach a level. */
export interface Extrapolation {
  level: number;
  /** log10 of the tokens at which each seed's line reaches the level, over the seeds that do. */
  log10Tokens: Stat;
  /** Seeds whose line does not head towards the level (slope of the wrong sign or zero). */
  never: number;
  seeds: number;
}

/**
 * Tokens at which the seeds' lines reach `level` from below (`up`) or from above (!up). A seed already
 * past the level at its last point is solved all the same (the crossing then lies within the data).
 */
export function extrapolate(trend: MetricTrend, level: number, up = true): Extrapolation {
  const logs: number[] = [];
  let never = 0;
  for (const f of trend.fits) {
    if (up ? f.slope <= 0 : f.slope >= 0) {
      never++;
      continue;
    }
    logs.push((level - f.intercept) / f.slope);
  }
  return { level, log10Tokens: describeSample(logs), never, seeds: trend.fits.length };
}

/** One target of the verdict. */
export interface Target {
  claim: string;
  /** true: met beyond the seed interval; false: not met; null: not measured (or one seed only). */
  met: boolean | null;
  /** The numbers behind it, in words. */
  detail: string;
  extrapolation?: Extrapolation;
}

export interface PairTrend {
  a: string;
  b: string;
  /** The quantization tag of the gap. */
  tag: string | null;
  seedsA: number;
  seedsB: number;
  metricsA: MetricTrend[];
  metricsB: MetricTrend[];
  targets: Target[];
  /**
   * The evaluation's own precision: the standard error of the loss gap (nats) at each configuration's last
   * quantization measurement, averaged over its seeds; null where not logged (runs before osp-lab 0.2).
   */
  evalStderr: { a: number | null; b: number | null };
}

/** Mean over trials of the last logged `quant/<tag>/gap_stderr`. */
function lastGapStderr(trials: readonly TrialResult[], tag: string | undefined): number | null {
  if (tag === undefined) return null;
  const values = trials.flatMap((t) => {
    const rows = t.metrics.filter((r) => r[`quant/${tag}/gap_stderr`] !== undefined);
    return rows.length > 0 ? [rows[rows.length - 1]![`quant/${tag}/gap_stderr`]!] : [];
  });
  return values.length > 0 ? values.reduce((x, y) => x + y, 0) / values.length : null;
}

const fmt = (v: number | null | undefined, digits = 3): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : Number(v.toPrecision(digits)).toString();

/** "mean [lo, hi]" of a Stat. */
export function formatStat(s: Stat, digits = 3): string {
  if (s.mean === null) return '-';
  return s.ci95 === null
    ? `${fmt(s.mean, digits)} (n=${s.n})`
    : `${fmt(s.mean, digits)} [${fmt(s.ci95[0], digits)}, ${fmt(s.ci95[1], digits)}]`;
}

/** A token count in few characters: 950k, 1.23M, 4.5B, 3.1T, then powers of ten (2.8e25). */
function tokensText(x: number): string {
  if (x >= 1e15) return x.toExponential(1).replace('e+', 'e');
  return x >= 1e12
    ? `${fmt(x / 1e12)}T`
    : x >= 1e9
      ? `${fmt(x / 1e9)}B`
      : x >= 1e6
        ? `${fmt(x / 1e6)}M`
        : x >= 1e3
          ? `${fmt(x / 1e3)}k`
          : String(Math.round(x));
}

function extrapolationText(e: Extrapolation, what: string): string {
  const s = e.log10Tokens;
  const never = e.never > 0 ? `; ${e.never} of ${e.seeds} seed${e.seeds === 1 ? '' : 's'} never reach it (the trend points away)` : '';
  if (s.mean === null) return `${what}: not reached on any seed's trend${never}`;
  const at =
    s.ci95 === null
      ? tokensText(10 ** s.mean)
      : `${tokensText(10 ** s.mean)} tokens [${tokensText(10 ** s.ci95[0])}, ${tokensText(10 ** s.ci95[1])}]`;
  return `${what} at ${at}${s.ci95 === null ? ` tokens (n=${s.n})` : ''}${never}`;
}

/** Low end / high end of a Stat's interval; null without an interval. */
const lo = (s: Stat) => (s.ci95 === null ? null : s.ci95[0]);
const hi = (s: Stat) => (s.ci95 === null ? null : s.ci95[1]);

/** The verdict for one pair of configurations, from their trials (all seeds). */
export function pairTrend(trialsA: readonly TrialResult[], trialsB: readonly TrialResult[], a: string, b: string): PairTrend {
  const tag = gapTag([...trialsA, ...trialsB]);
  const metricsA = TREND_METRICS.map((m) => metricTrend(trialsA, m, tag));
  const metricsB = TREND_METRICS.map((m) => metricTrend(trialsB, m, tag));
  const A = (m: TrendMetric) => metricsA.find((x) => x.metric === m)!;
  const B = (m: TrendMetric) => metricsB.find((x) => x.metric === m)!;
  const targets: Target[] = [];

  const kA = A('kurtosis_floor');
  const kLo = lo(kA.last);
  targets.push({
    claim: `${a}: OSP kurtosis >= 10x the Gaussian floor`,
    met: kLo === null ? null : kLo >= 10,
    detail: `${formatStat(kA.last)} x floor at ${tokensText(kA.tokens)} tokens`,
    ...((kLo === null || kLo < 10) && kA.fits.length > 0 ? { extrapolation: extrapolate(kA, 10) } : {}),
  });
  const kB = B('kurtosis_floor');
  const kHi = hi(kB.last);
  targets.push({
    claim: `${b}: OSP kurtosis within 1.5x the floor`,
    met: kHi === null ? null : kHi <= 1.5,
    detail: `${formatStat(kB.last)} x floor`,
  });
  for (const m of ['channel_kurtosis', 'max_median'] as const) {
    const d: Difference = welchInterval(B(m).lastValues, A(m).lastValues); // A - B
    targets.push({
      claim: `${a}: ${METRIC_LABELS[m]} above ${b}'s`,
      met: d.ci95 === null ? null : d.ci95[0] > 0,
      detail: `${formatStat(A(m).last)} vs ${formatStat(B(m).last)}; difference ${fmt(d.diff)}${d.ci95 ? ` [${fmt(d.ci95[0])}, ${fmt(d.ci95[1])}]` : ''}`,
    });
  }
  const gA = A('gap');
  const gB = B('gap');
  const gLo = lo(gA.last);
  targets.push({
    claim: `${a}: W4A4KV4 perplexity increase >= 0.2`,
    met: gLo === null ? null : gLo >= 0.2,
    detail: `${formatStat(gA.last)} (${b}: ${formatStat(gB.last)})`,
    ...((gLo === null || gLo < 0.2) && gA.fits.length > 0 ? { extrapolation: extrapolate(gA, 0.2) } : {}),
  });
  const gBhi = hi(gB.last);
  targets.push({
    claim: `${a}: perplexity increase >= 3x ${b}'s`,
    met: gLo === null || gBhi === null ? null : gLo >= 3 * Math.max(gBhi, 0),
    detail:
      gA.last.mean !== null && gB.last.mean !== null
        ? `means ${fmt(gA.last.mean)} vs ${fmt(gB.last.mean)} (ratio ${gB.last.mean > 0 ? fmt(gA.last.mean / gB.last.mean) : 'n/a: B has no gap'})`
        : 'not measured',
  });
  const lA = A('fp_loss');
  const lB = B('fp_loss');
  const dl = welchInterval(lA.lastValues, lB.lastValues); // B - A
  const rel = dl.diff !== null && lA.last.mean ? dl.diff / lA.last.mean : null;
  targets.push({
    claim: '16-bit losses within 2% of each other',
    met: dl.ci95 === null || !lA.last.mean ? null : Math.max(Math.abs(dl.ci95[0]), Math.abs(dl.ci95[1])) / lA.last.mean <= 0.02,
    detail: `${fmt(lA.last.mean, 4)} vs ${fmt(lB.last.mean, 4)}: ${b} ${rel === null ? '-' : `${rel >= 0 ? '+' : ''}${fmt(100 * rel, 2)}%`}${dl.ci95 ? ` [${fmt((100 * dl.ci95[0]) / lA.last.mean!, 2)}%, ${fmt((100 * dl.ci95[1]) / lA.last.mean!, 2)}%]` : ''}`,
  });
  targets.push(matchedLossTarget(trialsA, trialsB, a, b, tag, lA, lB));
  const evalStderr = { a: lastGapStderr(trialsA, tag), b: lastGapStderr(trialsB, tag) };
  return { a, b, tag: tag ?? null, seedsA: trialsA.length, seedsB: trialsB.length, metricsA, metricsB, targets, evalStderr };
}

/**
 * A trial's quantization gap (ratio - 1) at a given 16-bit loss: linear between the two measurements
 * (in step order, the initialization left out) whose losses first bracket it; null when its measured
 * losses never reach that value.
 */
export function gapAtLoss(t: TrialResult, tag: string, loss: number): number | null {
  const pts: [number, number][] = [];
  for (const r of t.metrics) {
    const l = r['quant/fp_loss'];
    const ratio = r[`quant/${tag}/ppl_ratio`];
    if (r.step > 1 && l !== undefined && ratio !== undefined) pts.push([l, ratio - 1]);
  }
  for (let i = 0; i + 1 < pts.length; i++) {
    const [l0, g0] = pts[i]!;
    const [l1, g1] = pts[i + 1]!;
    if ((l0 - loss) * (l1 - loss) > 0) continue;
    return l0 === l1 ? g0 : g0 + ((g1 - g0) * (loss - l0)) / (l1 - l0);
  }
  return pts.length === 1 && pts[0]![0] === loss ? pts[0]![1] : null;
}

/**
 * The comparison at matched 16-bit loss: the configuration that ends with the higher loss is taken at its
 * end, the other one at the point of its training where it had that loss (gapAtLoss, per seed), so that
 * "better-trained models quantize worse" cannot explain the difference.
 */
function matchedLossTarget(
  trialsA: readonly TrialResult[],
  trialsB: readonly TrialResult[],
  a: string,
  b: string,
  tag: string | undefined,
  lA: MetricTrend,
  lB: MetricTrend,
): Target {
  const claim = `at matched 16-bit loss: ${a}'s perplexity increase above ${b}'s`;
  if (tag === undefined || lA.last.mean === null || lB.last.mean === null) return { claim, met: null, detail: 'not measured' };
  const aWorse = lA.last.mean >= lB.last.mean;
  const level = aWorse ? lA.last.mean : lB.last.mean;
  const final = (ts: readonly TrialResult[]) =>
    ts.flatMap((t) => {
      const pts = metricPoints(t, 'gap', tag);
      return pts.length > 0 ? [pts[pts.length - 1]![1]] : [];
    });
  const atLevel = (ts: readonly TrialResult[]) => ts.map((t) => gapAtLoss(t, tag, level)).filter((g): g is number => g !== null);
  const gapsA = aWorse ? final(trialsA) : atLevel(trialsA);
  const gapsB = aWorse ? atLevel(trialsB) : final(trialsB);
  const d = welchInterval(gapsB, gapsA); // A - B
  const where = `${aWorse ? b : a} when it had ${aWorse ? a : b}'s final loss ${fmt(level, 4)}`;
  if (gapsA.length === 0 || gapsB.length === 0) {
    const better = aWorse ? trialsB : trialsA;
    const firstLoss = better.map((t) => metricPoints(t, 'fp_loss', tag)[0]?.[1]).filter((l): l is number => l !== undefined);
    const why =
      firstLoss.length > 0 && firstLoss.every((l) => l < level)
        ? `already below that loss at its first measurement (${fmt(Math.max(...firstLoss), 4)}): measure the gap earlier (a smaller quant.every) to compare`
        : 'that loss is not bracketed by its measurements';
    return { claim, met: null, detail: `${where}: ${why}` };
  }
  return {
    claim,
    met: d.ci95 === null ? null : d.ci95[0] > 0,
    detail: `${formatStat(describeSample(gapsA))} vs ${formatStat(describeSample(gapsB))} (${where}); difference ${fmt(d.diff)}${d.ci95 ? ` [${fmt(d.ci95[0])}, ${fmt(d.ci95[1])}]` : ''}`,
  };
}

/**
 * The verdicts of every pair of `spec`, from a sweep's trials (`pending`: names of trials without a
 * directory yet, whose configurations count as known, with no seeds). An unknown configuration is an
 * error naming the known ones.
 */
export function sweepTrends(
  trials: readonly TrialResult[],
  spec: TrendSpec,
  finished: (t: TrialResult) => boolean,
  pending: readonly string[] = [],
): PairTrend[] {
  const byConfiguration = new Map<string, TrialResult[]>();
  for (const name of pending) {
    const c = configurationOf(name).configuration;
    if (!byConfiguration.has(c)) byConfiguration.set(c, []);
  }
  for (const t of trials) {
    const c = configurationOf(t.name).configuration;
    if (!byConfiguration.has(c)) byConfiguration.set(c, []);
    if (finished(t)) byConfiguration.get(c)!.push(t);
  }
  return spec.pairs.map(([a, b]) => {
    for (const name of [a, b]) {
      if (!byConfiguration.has(name)) {
        throw new OspError(
          `trend: unknown configuration '${name}'; the sweep's configurations are ${[...byConfiguration.keys()].join(', ') || '(none yet)'}`,
        );
      }
    }
    return pairTrend(byConfiguration.get(a)!, byConfiguration.get(b)!, a, b);
  });
}

/** A markdown table cell: its own pipes escaped ('max/median |x|' would split the row). */
const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** trend.md: per pair, the metrics table and the targets with their verdicts and extrapolations. */
export function renderTrendMarkdown(trends: readonly PairTrend[]): string {
  const lines: string[] = ['# Outlier emergence: trends and targets', ''];
  lines.push(
    'Values at the last measurement: mean [95% interval over seeds]. Slope: fitted change per decade of',
    'tokens (a line against log10 tokens, one fit per seed). A target is met only beyond the seed interval.',
    '',
  );
  for (const p of trends) {
    const precision =
      p.evalStderr.a !== null && p.evalStderr.b !== null
        ? ` The evaluation's standard error of a loss gap (same windows, paired): ${fmt(p.evalStderr.a, 2)} and ${fmt(p.evalStderr.b, 2)} nats.`
        : '';
    lines.push(
      `## ${p.a} vs ${p.b}`,
      '',
      `${p.seedsA} and ${p.seedsB} finished seeds; gap from \`${p.tag ?? 'not measured'}\`.${precision}`,
      '',
    );
    lines.push(`| metric | ${p.a} | slope/decade | ${p.b} | slope/decade |`, '|---|---|---|---|---|');
    p.metricsA.forEach((ma, i) => {
      const mb = p.metricsB[i]!;
      lines.push(
        `| ${cell(ma.label)} | ${formatStat(ma.last)} | ${formatStat(ma.slope, 2)} | ${formatStat(mb.last)} | ${formatStat(mb.slope, 2)} |`,
      );
    });
    lines.push('', '| target | met | measured |', '|---|---|---|');
    for (const t of p.targets) {
      const met = t.met === null ? 'n/a' : t.met ? 'yes' : 'no';
      const ex = t.extrapolation ? `; trend: ${extrapolationText(t.extrapolation, `reaches ${fmt(t.extrapolation.level)}`)}` : '';
      lines.push(`| ${cell(t.claim)} | ${met} | ${cell(t.detail + ex)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** The same as console lines (80 columns): one block per pair. */
export function trendConsoleLines(trends: readonly PairTrend[]): string[] {
  const out: string[] = [];
  for (const p of trends) {
    out.push(`trend ${p.a} vs ${p.b} (${p.seedsA} and ${p.seedsB} seeds; last value, 95% interval):`);
    p.metricsA.forEach((ma, i) => {
      out.push(`  ${ma.label}`, `    ${p.a}: ${formatStat(ma.last)}   ${p.b}: ${formatStat(p.metricsB[i]!.last)}`);
    });
    for (const t of p.targets) {
      out.push(`  [${t.met === null ? 'n/a' : t.met ? 'met' : 'not met'}] ${t.claim}`);
      if (t.extrapolation) out.push(`      trend: ${extrapolationText(t.extrapolation, `reaches ${fmt(t.extrapolation.level)}`)}`);
    }
  }
  return out;
}
