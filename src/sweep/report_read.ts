/**
 * Reading a sweep directory for the report: collectTrials (every trial directory, in sweep order, as
 * read from disk), readMetricsJsonl, and the sweep runner's sweep.json (trial order, trend pairs).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataError } from '../errors.ts';
import { TrendSpecSchema, type TrendSpec } from './trend.ts';

/** One metrics.jsonl row: `step` and every numeric metric (JSON null, i.e. a NaN or infinity, reads as NaN). */
export interface MetricsRow {
  step: number;
  [metric: string]: number;
}

/** One trial directory as read from disk, before any interpretation. */
export interface TrialResult {
  /** The directory name. */
  name: string;
  /** Absolute path of the trial directory. */
  dir: string;
  /** config.json: the config as given and fully resolved with defaults. */
  config: { input: unknown; resolved: Record<string, unknown> };
  /** metrics.jsonl rows in step order; rows a resumed run logged again replace the earlier ones. */
  metrics: MetricsRow[];
  /** summary.json, present when the trial finished. */
  summary: Record<string, unknown> | null;
  /** metrics.jsonl ended in a partial line (a killed process), which was skipped. */
  truncatedMetricsLine: boolean;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataError(file, `not valid JSON: ${(e as Error).message}`);
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses a metrics.jsonl file. A last line without its newline that does not parse is what a process
 * killed in the middle of a write leaves behind: it is skipped. Any other malformed line is a DataError
 * naming the file and the line, since skipping it would silently drop a measurement.
 *
 * A row marked `"late": true` holds results that describe an earlier step (a Hessian probe that
 * finished later): it is merged into that step's row.
 *
 * A resumed run logs again from its checkpoint's step, so when the step goes back, the rows it
 * supersedes (step >= the new one) are dropped: the later trajectory is the one the run continued.
 *
 * @example const { rows } = readMetricsJsonl('runs/sweep/adam/metrics.jsonl'); rows.at(-1)?.['train/loss']
 */
export function readMetricsJsonl(file: string): { rows: MetricsRow[]; truncatedLine: boolean } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const lines = text.split('\n');
  const rows: MetricsRow[] = [];
  let truncatedLine = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    // After split, the last element is '' when the file ends in a newline: a non-empty last element
    // is a line whose write never completed.
    const partialTail = i === lines.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (partialTail) {
        truncatedLine = true;
        continue;
      }
      throw new DataError(
        file,
        `line ${i + 1}: not valid JSON (${(e as Error).message}); only a truncated last line is skipped, repair or delete this one`,
      );
    }
    if (!isObject(value) || typeof value.step !== 'number' || !Number.isFinite(value.step)) {
      throw new DataError(file, `line ${i + 1}: expected a JSON object with a numeric "step", got ${line.slice(0, 80)}`);
    }
    const row: MetricsRow = { step: value.step };
    for (const [k, v] of Object.entries(value)) {
      // JSON.stringify writes NaN and infinities as null: a diverged value, not a missing one.
      if (typeof v === 'number') row[k] = v;
      else if (v === null) row[k] = NaN;
    }
    if (value.late === true) {
      // Late results (a Hessian probe of step N's weights, finished later) join step N's row.
      const at = rows.findIndex((r) => r.step >= row.step);
      if (at >= 0 && rows[at]!.step === row.step) Object.assign(rows[at]!, row);
      else rows.splice(at < 0 ? rows.length : at, 0, row);
      continue;
    }
    while (rows.length > 0 && rows[rows.length - 1]!.step >= row.step) rows.pop();
    rows.push(row);
  }
  return { rows, truncatedLine };
}

/** The spec's `trend` pairs as sweep.json recorded them; undefined when it has none. */
export function sweepTrendSpec(sweepDir: string): TrendSpec | undefined {
  const file = join(sweepDir, 'sweep.json');
  if (!existsSync(file)) return undefined;
  const v = readJson(file);
  if (!isObject(v) || v.trend === undefined) return undefined;
  const parsed = TrendSpecSchema.safeParse(v.trend);
  if (!parsed.success)
    throw new DataError(file, `"trend": expected {"pairs": [["A", "B"], ...]}: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}
/** The trial order the sweep runner recorded (sweep.json `trials`), or undefined without one. */
export function sweepOrder(sweepDir: string): string[] | undefined {
  const file = join(sweepDir, 'sweep.json');
  if (!existsSync(file)) return undefined;
  const v = readJson(file);
  if (!isObject(v) || !Array.isArray(v.trials) || !v.trials.every((t) => typeof t === 'string')) {
    throw new DataError(file, 'expected an object with "trials": an array of trial names');
  }
  return v.trials as string[];
}

/**
 * Reads every trial of a sweep: each sub-directory holding a config.json (name = directory name), with
 * its metrics.jsonl rows and its summary.json when it finished. Trials come in the order of the sweep
 * runner's sweep.json when there is one (others after it, by name), else by name.
 * Errors (DataError) name the file: a sweep directory that does not exist, malformed JSON, a config.json
 * without `resolved`, a malformed metrics line other than a truncated last one.
 *
 * @example for (const t of collectTrials('runs/osp-ablation')) console.log(t.name, t.summary !== null);
 */
export function collectTrials(sweepDir: string): TrialResult[] {
  const root = resolve(sweepDir);
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (e) {
    throw new DataError(root, `cannot list the sweep directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const names = entries.filter((n) => {
    if (n.startsWith('.')) return false;
    const dir = join(root, n);
    return statSync(dir).isDirectory() && existsSync(join(dir, 'config.json'));
  });
  const order = sweepOrder(root) ?? [];
  const rank = new Map(order.map((n, i) => [n, i]));
  names.sort((a, b) => (rank.get(a) ?? Infinity) - (rank.get(b) ?? Infinity) || (a < b ? -1 : a > b ? 1 : 0));

  return names.map((name) => {
    const dir = join(root, name);
    const configFile = join(dir, 'config.json');
    const config = readJson(configFile);
    if (!isObject(config) || !isObject(config.resolved)) {
      throw new DataError(configFile, 'expected { "input": ..., "resolved": {...} } as written by osp train');
    }
    const metricsFile = join(dir, 'metrics.jsonl');
    // A run killed before its first logged step has no metrics file yet: an unfinished trial, not an error.
    const metrics = existsSync(metricsFile) ? readMetricsJsonl(metricsFile) : { rows: [], truncatedLine: false };
    const summaryFile = join(dir, 'summary.json');
    let summary: Record<string, unknown> | null = null;
    if (existsSync(summaryFile)) {
      const s = readJson(summaryFile);
      if (!isObject(s)) throw new DataError(summaryFile, 'expected a JSON object');
      summary = s;
    }
    return {
      name,
      dir,
      config: { input: config.input, resolved: config.resolved },
      metrics: metrics.rows,
      summary,
      truncatedMetricsLine: metrics.truncatedLine,
    };
  });
}
