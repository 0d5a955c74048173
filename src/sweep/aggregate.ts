/**
 * Multi-seed aggregation for the sweep report. Trials whose names differ only in their `seed=N` part
 * (what a spec's `seeds` produces) are one *configuration*; the report gives each configuration's
 * every table column as n, mean, sample standard deviation and 95% t-interval over its finished seeds
 * (unfinished ones are counted, not averaged), curves over steps as the mean over seeds with a band,
 * and a pairwise comparison of two configurations as the difference of means with Welch's interval.
 */
import { configurationOf, shortLabels } from './labels.ts';
import type { TrialReport } from './report.ts';
import { reportMeasures } from './report_table.ts';
import { describeSample, welchInterval, type Difference, type Stat } from './stats.ts';

/** One configuration of a multi-seed sweep, as report.json's `configurations` holds it. */
export interface ConfigurationReport {
  /** The trial name without its `seed=N` part ('adam', 'osp__optimizer.muon.lr=0.01'; 'base' for seeds alone). */
  name: string;
  /** Short legend label that tells it from the other configurations ('adam, lr=3e-3'). */
  label: string;
  variant: string | null;
  /** Its grid point without the seed. */
  grid: Record<string, unknown>;
  /** Its trial directories, in report order. */
  trials: string[];
  /** Seeds of all its trials, those without a directory yet (sweep.json) included. */
  seeds: number[];
  /** Trials that finished: the ones the statistics are over. */
  finished: number;
  finishedSeeds: number[];
  /** The kurtosis estimator's Gaussian floor at its width (from its trials), null when not measured. */
  gaussianFloor: number | null;
  /**
   * By column (reportMeasures' keys: 'outliers/osp_kurtosis', 'quant/fp_perplexity',
   * 'quant/<tag>/ppl_ratio', 'eval/loss', 'eval/bits_per_byte', 'hessian/eig_1', extra metric names):
   * n, mean, std and 95% interval over the finished seeds that measured it.
   */
  stats: Record<string, Stat>;
}

/**
 * Groups trials into configurations (first-seen order) and computes every table column's statistics
 * over each configuration's finished seeds. `pending`: trial names listed by the sweep but without a
 * directory yet; they count among their configuration's seeds ('2 of 3 finished').
 * @example const configs = aggregateConfigurations(report.trials, report.pending, []);
 */
export function aggregateConfigurations(
  trials: readonly TrialReport[],
  pending: readonly string[],
  extra: readonly string[],
): ConfigurationReport[] {
  const groups = new Map<string, TrialReport[]>();
  for (const t of trials) {
    const list = groups.get(t.configuration) ?? [];
    list.push(t);
    groups.set(t.configuration, list);
  }
  const seedOf = (t: TrialReport) => configurationOf(t.name).seed ?? t.seed;
  const measures = reportMeasures(trials, extra).filter((m) => !m.placeholder);
  const names = [...groups.keys()];
  const labels = shortLabels(names);
  return names.map((name, i) => {
    const members = groups.get(name)!;
    const done = members.filter((t) => t.finished);
    const seeds = members.map(seedOf).filter((s): s is number => s !== null);
    for (const p of pending) {
      const c = configurationOf(p);
      if (c.configuration === name && c.seed !== null && !seeds.includes(c.seed)) seeds.push(c.seed);
    }
    const stats: Record<string, Stat> = {};
    for (const m of measures) {
      // An extra metric named like a table column ('eval/loss') would repeat it: the column wins.
      if (Object.hasOwn(stats, m.key)) continue;
      const values = done.map((t) => m.get(t)).filter((v): v is number => typeof v === 'number');
      stats[m.key] = describeSample(values);
    }
    const { seed: _seed, ...grid } = members[0]!.grid;
    return {
      name,
      label: labels[i]!,
      variant: members[0]!.variant,
      grid,
      trials: members.map((t) => t.name),
      seeds,
      finished: done.length,
      finishedSeeds: done.map(seedOf).filter((s): s is number => s !== null),
      gaussianFloor: members.find((t) => t.gaussianFloor !== null)?.gaussianFloor ?? null,
      stats,
    };
  });
}

/** A curve over steps: the mean over seeds, and [x, low, high] of the band around it. */
export interface MeanCurve {
  points: [number, number][];
  /** Mean -+ one sample standard deviation; empty with fewer than two curves. */
  band: [number, number, number][];
}

/**
 * The mean of several curves (one per seed) at every x that all of them have, in the first curve's
 * order, with a band of -+ one sample standard deviation when there are at least two. A curve that
 * repeats an x counts with its last value there.
 * @example meanCurve([[[1, 2], [2, 4]], [[1, 4], [2, 8], [3, 1]]]) // points [[1, 3], [2, 6]], band [[1, 3 - 1.414, 3 + 1.414], ...]
 */
export function meanCurve(curves: readonly (readonly (readonly [number, number])[])[]): MeanCurve {
  if (curves.length === 0) return { points: [], band: [] };
  const maps = curves.map((c) => new Map(c.map(([x, y]) => [x, y] as const)));
  const xs = [...maps[0]!.keys()].filter((x) => maps.every((m) => m.has(x)));
  const points: [number, number][] = [];
  const band: [number, number, number][] = [];
  for (const x of xs) {
    const s = describeSample(maps.map((m) => m.get(x)!));
    points.push([x, s.mean!]);
    if (s.std !== null && Number.isFinite(s.std)) band.push([x, s.mean! - s.std, s.mean! + s.std]);
  }
  return { points, band };
}

/** One column of a pairwise comparison. */
export interface ComparisonRow {
  key: string;
  header: string;
  short: string;
  a: Stat;
  b: Stat;
  /** mean(b) - mean(a) with Welch's 95% interval (null: not available with a single seed on a side). */
  difference: Difference;
}

/**
 * Compares two configurations column by column: both means, and the difference B - A with Welch's
 * 95% t-interval over their finished seeds (Welch-Satterthwaite degrees of freedom). Only columns that
 * either side measured are listed.
 */
export function compareStats(
  trials: readonly TrialReport[],
  a: ConfigurationReport,
  b: ConfigurationReport,
  extra: readonly string[],
): ComparisonRow[] {
  const values = (c: ConfigurationReport, get: (t: TrialReport) => number | null | undefined) =>
    trials
      .filter((t) => t.configuration === c.name && t.finished)
      .map(get)
      .filter((v): v is number => typeof v === 'number');
  const rows: ComparisonRow[] = [];
  const seen = new Set<string>();
  for (const m of reportMeasures(trials, extra)) {
    if (m.placeholder || seen.has(m.key)) continue;
    seen.add(m.key);
    const va = values(a, m.get);
    const vb = values(b, m.get);
    if (va.length === 0 && vb.length === 0) continue;
    rows.push({
      key: m.key,
      header: m.header,
      short: m.short,
      a: describeSample(va),
      b: describeSample(vb),
      difference: welchInterval(va, vb),
    });
  }
  return rows;
}
