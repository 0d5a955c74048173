/**
 * `osp sweep report DIR --compare A,B`: two configurations of a sweep (trial names without their
 * `seed=N` part, as in the report's aggregated table) compared column by column: both means over the
 * finished seeds and the difference B - A with Welch's 95% t-interval. Reads the trial directories,
 * writes nothing.
 */
import { OspError } from '../errors.ts';
import { compareStats, type ComparisonRow, type ConfigurationReport } from './aggregate.ts';
import { formatValue } from './axes.ts';
import { atPrecision } from './report_table.ts';
import { buildReport } from './report.ts';

export interface Comparison {
  title: string;
  a: ConfigurationReport;
  b: ConfigurationReport;
  rows: ComparisonRow[];
}

/**
 * Parses the `--compare` value: two configuration names separated by one comma.
 * @example parseComparePair('adam,osp') // ['adam', 'osp']
 */
export function parseComparePair(value: string): [string, string] {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length !== 2 || parts.some((p) => p === '')) {
    throw new OspError(`--compare expects two configuration names separated by a comma (e.g. --compare adam,osp), got '${value}'`);
  }
  if (parts[0] === parts[1]) throw new OspError(`--compare needs two different configurations, got '${parts[0]}' twice`);
  return [parts[0]!, parts[1]!];
}

/**
 * Compares configurations `a` and `b` of the sweep in `sweepDir` (names as in the aggregated table: the
 * trial names without their `seed=N` part). An unknown name is an OspError listing the known ones.
 * @example const c = compareConfigurations('runs/ablation', 'adam', 'osp'); formatComparison(c).forEach((l) => console.log(l));
 */
export function compareConfigurations(sweepDir: string, a: string, b: string, opts: { metrics?: string[] } = {}): Comparison {
  const { report } = buildReport(sweepDir, opts);
  const find = (name: string) => {
    const c = report.configurations.find((x) => x.name === name);
    if (c) return c;
    const known = report.configurations.map((x) => x.name);
    throw new OspError(
      `unknown configuration '${name}' in ${sweepDir}; ` +
        (known.length > 0 ? `known configurations: ${known.join(', ')}` : 'the sweep has no trial directories yet'),
    );
  };
  const ca = find(a);
  const cb = find(b);
  return { title: report.title, a: ca, b: cb, rows: compareStats(report.trials, ca, cb, opts.metrics ?? []) };
}

const num = (v: number | null): string => (v === null ? '-' : formatValue(v));

/** A configuration as the comparison's header names it: name and finished seeds. */
function describe(letter: string, c: ConfigurationReport): string {
  const seeds = c.finishedSeeds.length > 0 ? ` [${c.finishedSeeds.join(', ')}]` : '';
  return `${letter} = ${c.name}: ${c.finished} of ${c.seeds.length} seed${c.seeds.length === 1 ? '' : 's'} finished${seeds}`;
}

/**
 * The comparison as console lines: a header naming A and B, then one row per column: mean of A, mean
 * of B (each with its n), B - A, and the 95% interval of the difference with its Welch degrees of
 * freedom ('n/a (n=1)' where either side has a single seed); '*' marks an interval that excludes zero.
 */
export function formatComparison(c: Comparison): string[] {
  const head = ['column', 'A', 'B', 'B - A', '95% interval', 'dof'];
  const body = c.rows.map((r) => {
    const d = r.difference;
    let interval: string;
    let diff = num(d.diff);
    let dof = '';
    if (d.diff === null) interval = 'n/a (not measured on both)';
    else if (d.ci95 === null) interval = `n/a (n=${Math.min(r.a.n, r.b.n)})`;
    else {
      const excludes = d.ci95[0] > 0 || d.ci95[1] < 0;
      // The difference and its interval one digit beyond the interval's own precision, so an end
      // near zero still shows on which side of it it lies.
      const hw = (d.ci95[1] - d.ci95[0]) / 2;
      const at = (v: number) => (hw > 1e-12 * Math.abs(d.diff!) && Number.isFinite(hw) ? atPrecision(v, hw / 10) : num(v));
      diff = at(d.diff);
      interval = `[${at(d.ci95[0])}, ${at(d.ci95[1])}]${excludes ? ' *' : ''}`;
      dof = d.dof === null || !Number.isFinite(d.dof) ? '' : d.dof.toFixed(1);
    }
    const mean = (s: ComparisonRow['a']) => (s.n === 0 ? '-' : `${num(s.mean)} (${s.n})`);
    return [r.short, mean(r.a), mean(r.b), diff, interval, dof];
  });
  const widths = head.map((h, j) => Math.max(h.length, ...body.map((row) => row[j]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, j) => (j === 0 || j === 4 ? cell.padEnd(widths[j]!) : cell.padStart(widths[j]!)))
      .join('  ')
      .trimEnd();
  const out = [
    `${c.title}: B - A, difference of the means over the finished seeds`,
    describe('A', c.a),
    describe('B', c.b),
    '',
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...body.map(line),
    '',
    "A, B: mean (n seeds). 95% interval: Welch's t-interval of B - A, with the",
    'Welch-Satterthwaite degrees of freedom (dof); n/a with a single seed on either',
    'side. * the interval excludes 0.',
  ];
  if (c.rows.length === 0) out.splice(4, 0, 'no column was measured by either configuration');
  return out;
}
