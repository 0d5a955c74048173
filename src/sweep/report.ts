/**
 * The sweep report: reads every trial directory of a sweep (ordinary `osp train` run directories) and
 * writes, into the sweep directory, `report.json` (one record per trial, and one per configuration
 * with the statistics over its seeds), `report.md` (the small-scale analogue of the OSP ablation
 * table, shared/reference/osp.md, with one column per swept grid key; with seeds, first the table of
 * means with their 95% intervals per configuration, aggregate.ts) and
 * SVG plots of training and validation loss, outlier kurtosis, per-layer kurtosis, the quantized /
 * 16-bit perplexity ratio of every quantization variant measured (one table column per tag) and, when
 * measured, the top Hessian eigenvalue (report_plots.ts). The same table can be printed on the
 * console, fitted to 80 columns (report_table.ts).
 *
 * Trials that are still running or were killed have no summary.json: they are reported from the last
 * rows of their metrics.jsonl and marked unfinished. Monitors that were off simply leave '-' cells.
 */
import { renderTrendMarkdown, sweepTrends, trendConsoleLines, TrendSpecSchema, type TrendSpec } from './trend.ts';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { DataError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { gaussianFloor } from '../metrics/outliers.ts';
import { resolveModelConfig } from '../model/config.ts';
import { paramSpecs } from '../model/transformer.ts';
import { assignOptimizers, type RoutingRule } from '../optim/routing.ts';
import { aggregateConfigurations, type ConfigurationReport } from './aggregate.ts';
import { configurationOf, parseTrialName, shortLabels } from './labels.ts';
import { buildPlots } from './report_plots.ts';
import { consoleTable, renderMarkdown } from './report_table.ts';

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

/**
 * Fake-quantized evaluation of one variant, under its tag as in metrics.jsonl (`w4a4kv4_rtn`,
 * `w4a4kv4_gptq_quarot`, ...; `w4a4kv4`, `w4a4kv4_had` in runs of osp-lab < 0.2).
 */
export interface QuantReport {
  step: number | null;
  fpLoss: number | null;
  fpPerplexity: number | null;
  loss: number | null;
  perplexity: number | null;
  /** Quantized / full-precision perplexity. */
  pplRatio: number | null;
}

/**
 * One trial in the report. Numbers are null when not measured; in memory a measured non-finite value
 * stays NaN (the table shows 'NaN'), which JSON writes as null too.
 */
export interface TrialReport {
  name: string;
  /** The name without its `seed=N` part: the trials of one configuration differ only in their seed. */
  configuration: string;
  /** The run's `seed` (weight init and, by default, the data order), from its resolved config. */
  seed: number | null;
  /** Short legend label that tells this trial from the others of its sweep ('adam, lr=3e-3'). */
  label: string;
  /** The variant part of a sweep trial name (`<variant>__key=value...`), else null. */
  variant: string | null;
  /** The grid point: each swept config path (from the name) -> its value in the trial's config. */
  grid: Record<string, unknown>;
  /** summary.json exists: the run reached its last step. */
  finished: boolean;
  /** Steps trained: the run's step count when finished, else the last logged step (null: nothing logged). */
  steps: number | null;
  /** `steps` of the resolved config: how far the trial is meant to go. */
  plannedSteps: number | null;
  modules: {
    norm: string;
    embedding: string;
    /** 'adamw' (every parameter), 'muon' (the default routing), 'muon (emb too)' (embedding and head on Muon). */
    optimizer: string;
    /** Parameters per optimizer under the trial's routing rules; null when the config cannot be routed. */
    routing: { muon: number; adamw: number } | null;
    hiddenSize: number | null;
    numLayers: number | null;
  };
  /** Last evaluation (summary.json, else the last `eval/*` row). */
  valLoss: number | null;
  valPerplexity: number | null;
  bitsPerByte: number | null;
  /** The OSP paper's aggregate excess kurtosis at the last measurement. */
  ospKurtosis: number | null;
  /** The estimator's value on Gaussian activations of this width. */
  gaussianFloor: number | null;
  /** Last OSP kurtosis of each block's output (`layers.{i}.out`), by layer index; [] when never measured. */
  layerKurtosis: (number | null)[];
  /** By quantization tag (quantTagName in export/quant/config.ts says what each means). */
  quant: Record<string, QuantReport>;
  /** Largest Hessian eigenvalue and the step whose weights it describes. */
  hessianEig1: number | null;
  hessianStep: number | null;
  /** The metrics named in `writeReport`'s `metrics` option, from the last row that has each. */
  extra: Record<string, number | null>;
  truncatedMetricsLine: boolean;
}

/** Everything report.json holds. */
export interface SweepReport {
  title: string;
  /** In sweep order (sweep.json) when the sweep runner wrote one, else by name. */
  trials: TrialReport[];
  /** Trials listed in sweep.json that have no directory yet. */
  pending: string[];
  /**
   * One per configuration (trials that differ only in their `seed=N` name part), in report order:
   * n, mean, std and 95% interval of every table column over its finished seeds. A sweep without
   * seeds has one configuration of one seed per trial.
   */
  configurations: ConfigurationReport[];
  /** The kurtosis estimator's Gaussian floor per model width: measured by the trials' monitors, else computed. */
  floors: { hiddenSize: number; gaussianFloor: number; source: 'measured' | 'computed' }[];
  /** Plot files written next to report.md. */
  plots: string[];
}

export interface ReportOptions {
  /** Heading of report.md (default: 'Sweep <directory name>'). */
  title?: string;
  /** Extra metric names (as in metrics.jsonl) reported per trial and as table columns. */
  metrics?: string[];
  /**
   * Receives the comparison table fitted to 80 columns, line by line (e.g. the sweep's log); with
   * seeds, the aggregated table (one row per configuration).
   */
  print?: (line: string) => void;
  /** Pairs judged in trend.md (default: the `trend` sweep.json recorded from the spec, if any). */
  trend?: TrendSpec;
}

// ---------------------------------------------------------------------------------------------------
// Reading

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

function isObject(v: unknown): v is Record<string, unknown> {
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
        `line ${i + 1}: not valid JSON (${(e as Error).message}); only a truncated last line is skipped, ` +
          `repair or delete this one`,
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

/** The trial order the sweep runner recorded (sweep.json `trials`), or undefined without one. */
/** The spec's `trend` pairs as sweep.json recorded them; undefined when it has none. */
function sweepTrendSpec(sweepDir: string): TrendSpec | undefined {
  const file = join(sweepDir, 'sweep.json');
  if (!existsSync(file)) return undefined;
  const v = readJson(file);
  if (!isObject(v) || v.trend === undefined) return undefined;
  const parsed = TrendSpecSchema.safeParse(v.trend);
  if (!parsed.success) throw new DataError(file, `"trend": expected {"pairs": [["A", "B"], ...]}: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

function sweepOrder(sweepDir: string): string[] | undefined {
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

// ---------------------------------------------------------------------------------------------------
// Interpreting one trial

/** The value at a dotted path of nested objects, or undefined. */
function at(v: unknown, path: string): unknown {
  let cur = v;
  for (const k of path.split('.')) {
    if (!isObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** A number at a path (NaN kept: it was measured), else undefined. */
function numAt(v: unknown, path: string): number | undefined {
  const x = at(v, path);
  return typeof x === 'number' ? x : undefined;
}

/** The value of `key` in the last row that has it. */
function lastValue(rows: readonly MetricsRow[], key: string): number | undefined {
  for (let i = rows.length - 1; i >= 0; i--) if (key in rows[i]!) return rows[i]![key];
  return undefined;
}

function lastRowWith(rows: readonly MetricsRow[], key: string): MetricsRow | undefined {
  for (let i = rows.length - 1; i >= 0; i--) if (key in rows[i]!) return rows[i];
  return undefined;
}

/** First defined of the candidates, else null. */
function pick(...candidates: (number | undefined)[]): number | null {
  for (const c of candidates) if (c !== undefined) return c;
  return null;
}

/**
 * Which optimizer trains what, as the OSP ablation names it. Computed with the trainer's own routing
 * (assignOptimizers over the parameters the model config implies), so the label cannot disagree with
 * what the run did: 'adamw' when nothing goes to Muon, 'muon (emb too)' when the token embedding (and
 * the head, when untied) go to Muon ('muon (embed too)' / 'muon (head too)' for only one of them),
 * 'muon' otherwise. '?' when the config cannot be routed (it could not have trained either).
 */
function optimizerSummary(resolved: Record<string, unknown>): {
  label: string;
  counts: { muon: number; adamw: number } | null;
} {
  try {
    const model = resolveModelConfig(resolved.model ?? {});
    const shapes = new Map(paramSpecs(model).map((s) => [s.name, s.shape] as const));
    const raw = at(resolved, 'optimizer.routing') ?? [];
    const valid =
      Array.isArray(raw) &&
      raw.every((r) => isObject(r) && typeof r.match === 'string' && (r.optimizer === 'muon' || r.optimizer === 'adamw'));
    if (!valid) return { label: '?', counts: null };
    const assignment = assignOptimizers(raw as RoutingRule[], shapes);
    const counts = { muon: 0, adamw: 0 };
    for (const o of assignment.values()) counts[o]++;
    if (counts.muon === 0) return { label: 'adamw', counts };
    const emb = assignment.get('model.embed_tokens.weight') === 'muon';
    const hasHead = shapes.has('lm_head.weight');
    const head = hasHead && assignment.get('lm_head.weight') === 'muon';
    if (emb && (head || !hasHead)) return { label: 'muon (emb too)', counts };
    if (emb) return { label: 'muon (embed too)', counts };
    if (head) return { label: 'muon (head too)', counts };
    return { label: 'muon', counts };
  } catch {
    return { label: '?', counts: null };
  }
}

/** The tag osp-lab < 0.2 wrote for its quantization config: w4a4kv4, w4a4kv4_had, ... */
function legacyQuantTag(config: unknown): string | undefined {
  const w = numAt(config, 'w');
  const a = numAt(config, 'a');
  const kv = numAt(config, 'kv');
  if (w === undefined || a === undefined || kv === undefined) return undefined;
  return `w${w}a${a}kv${kv}${at(config, 'had') === true ? '_had' : ''}`;
}

/**
 * The measurements summary.json's `monitors.quant` holds, by tag: every entry of `variants` (one per
 * weight quantizer x rotation, with the shared `fp`), or, in run directories of osp-lab < 0.2, the
 * single `quant`/`gap` of the tag its `config` implies.
 */
function summaryQuant(q: unknown): Map<string, QuantReport> {
  const out = new Map<string, QuantReport>();
  if (!isObject(q)) return out;
  const step = pick(numAt(q, 'step'));
  const fpLoss = pick(numAt(q, 'fp.loss'));
  const fpPerplexity = pick(numAt(q, 'fp.perplexity'));
  const entry = (v: unknown): QuantReport => ({
    step,
    fpLoss,
    fpPerplexity,
    loss: pick(numAt(v, 'quant.loss')),
    perplexity: pick(numAt(v, 'quant.perplexity')),
    pplRatio: pick(numAt(v, 'gap.perplexityRatio')),
  });
  if (Array.isArray(q.variants)) {
    for (const v of q.variants) {
      const tag = at(v, 'tag');
      if (typeof tag === 'string' && tag !== '') out.set(tag, entry(v));
    }
    return out;
  }
  const tag = legacyQuantTag(at(q, 'config'));
  if (tag !== undefined) out.set(tag, entry(q));
  return out;
}

function quantResults(t: TrialResult): Record<string, QuantReport> {
  const out: Record<string, QuantReport> = {};
  const tags = new Set<string>();
  for (const row of t.metrics) {
    for (const k of Object.keys(row)) {
      if (!k.startsWith('quant/')) continue;
      const m = /^quant\/(.+)\/perplexity$/.exec(k);
      if (m) tags.add(m[1]!);
    }
  }
  for (const tag of tags) {
    const row = lastRowWith(t.metrics, `quant/${tag}/perplexity`)!;
    const fpLoss = row['quant/fp_loss'];
    const perplexity = row[`quant/${tag}/perplexity`]!;
    const fpPerplexity = fpLoss === undefined ? undefined : Math.exp(fpLoss);
    out[tag] = {
      step: row.step,
      fpLoss: pick(fpLoss),
      fpPerplexity: pick(fpPerplexity),
      loss: pick(row[`quant/${tag}/loss`]),
      perplexity,
      pplRatio: pick(row[`quant/${tag}/ppl_ratio`], fpPerplexity === undefined ? undefined : perplexity / fpPerplexity),
    };
  }
  // summary.json holds the final measurement with its exact config: it wins for its own tags, and the
  // metrics rows fill in what it lacks.
  for (const [tag, s] of summaryQuant(at(t.summary, 'monitors.quant'))) {
    const prev = out[tag];
    out[tag] = {
      step: pick(s.step ?? undefined, prev?.step ?? undefined),
      fpLoss: pick(s.fpLoss ?? undefined, prev?.fpLoss ?? undefined),
      fpPerplexity: pick(s.fpPerplexity ?? undefined, prev?.fpPerplexity ?? undefined),
      loss: pick(s.loss ?? undefined, prev?.loss ?? undefined),
      perplexity: pick(s.perplexity ?? undefined, prev?.perplexity ?? undefined),
      pplRatio: pick(s.pplRatio ?? undefined, prev?.pplRatio ?? undefined),
    };
  }
  return out;
}

/**
 * Derives one trial's report record. Finished trials take their final numbers from summary.json and
 * fall back to the last metrics.jsonl row that has them; unfinished trials report the latest logged
 * values.
 * @example const r = summarizeTrial(collectTrials('runs/ablation')[0]!); r.quant.w4a4kv4_rtn?.pplRatio
 */
export function summarizeTrial(t: TrialResult, extraMetrics: readonly string[] = []): TrialReport {
  const r = t.config.resolved;
  const s = t.summary;
  const rows = t.metrics;
  const hiddenSize = pick(numAt(r, 'model.hiddenSize'));
  const configuredLayers = numAt(r, 'model.numLayers');
  const opt = optimizerSummary(r);

  // Per-layer kurtosis: every layer the config has, plus any a metric names (configs from other versions).
  const perTap = at(s, 'monitors.outliers.perTap');
  let numLayers = configuredLayers ?? 0;
  const keys = new Set(rows.flatMap((row) => Object.keys(row)));
  for (const k of [...keys, ...(isObject(perTap) ? Object.keys(perTap) : [])]) {
    const m = /layers\.(\d+)\.out/.exec(k);
    if (m) numLayers = Math.max(numLayers, Number(m[1]) + 1);
  }
  const layerKurtosis = Array.from({ length: numLayers }, (_, i) =>
    pick(numAt(perTap, `layers.${i}.out.ospKurtosis`), lastValue(rows, `outliers/layers.${i}.out/osp_kurtosis`)),
  );

  const lastStep = rows.at(-1)?.step;
  const topk = at(s, 'monitors.hessian.topk');
  const parsed = parseTrialName(t.name);
  const grid: Record<string, unknown> = {};
  for (const [key, raw] of parsed?.params ?? []) {
    // The exact value from the config (the name has it with unsafe characters replaced).
    const given = at(t.config.input, key) ?? at(r, key);
    grid[key] = given !== undefined ? given : raw;
  }
  const seed = numAt(r, 'seed');
  return {
    name: t.name,
    configuration: configurationOf(t.name).configuration,
    seed: seed !== undefined && Number.isInteger(seed) ? seed : null,
    label: t.name,
    variant: parsed?.variant ?? null,
    grid,
    finished: s !== null,
    steps: pick(s !== null ? numAt(s, 'steps') : undefined, lastStep),
    plannedSteps: pick(numAt(r, 'steps')),
    modules: {
      norm: String(at(r, 'model.norm') ?? '?'),
      embedding: String(at(r, 'model.embedding') ?? '?'),
      optimizer: opt.label,
      routing: opt.counts,
      hiddenSize,
      numLayers: pick(configuredLayers),
    },
    valLoss: pick(numAt(s, 'eval.loss'), lastValue(rows, 'eval/loss')),
    valPerplexity: pick(numAt(s, 'eval.perplexity'), lastValue(rows, 'eval/perplexity')),
    bitsPerByte: pick(numAt(s, 'eval.bitsPerByte'), lastValue(rows, 'eval/bits_per_byte')),
    ospKurtosis: pick(numAt(s, 'monitors.outliers.ospKurtosis'), lastValue(rows, 'outliers/osp_kurtosis')),
    gaussianFloor: pick(numAt(s, 'monitors.outliers.gaussianFloor'), lastValue(rows, 'outliers/gaussian_floor')),
    layerKurtosis: layerKurtosis.every((v) => v === null) ? [] : layerKurtosis,
    quant: quantResults(t),
    hessianEig1: pick(
      Array.isArray(topk) && typeof topk[0] === 'number' ? topk[0] : undefined,
      lastValue(rows, 'hessian/eig_1'),
    ),
    hessianStep: pick(numAt(s, 'monitors.hessian.step'), lastValue(rows, 'hessian/measured_at_step')),
    extra: Object.fromEntries(extraMetrics.map((m) => [m, pick(lastValue(rows, m))])),
    truncatedMetricsLine: t.truncatedMetricsLine,
  };
}

// ---------------------------------------------------------------------------------------------------
// Writing

/** Floors per width: the trials' measured values (identical by construction: a seeded Monte Carlo), else computed. */
function floorsOf(trials: readonly TrialReport[]): SweepReport['floors'] {
  const widths = new Map<number, number[]>();
  for (const t of trials) {
    const d = t.modules.hiddenSize;
    if (d === null) continue;
    const list = widths.get(d) ?? [];
    if (t.gaussianFloor !== null && Number.isFinite(t.gaussianFloor)) list.push(t.gaussianFloor);
    widths.set(d, list);
  }
  return [...widths]
    .sort(([a], [b]) => a - b)
    .map(([hiddenSize, measured]) =>
      measured.length > 0
        ? {
            hiddenSize,
            // Identical values (the usual case) are reported as they are, not as a mean with rounding noise.
            gaussianFloor: measured.every((v) => v === measured[0])
              ? measured[0]!
              : measured.reduce((a, b) => a + b, 0) / measured.length,
            source: 'measured' as const,
          }
        : // Without a monitor the same estimator is run here on Gaussian samples (cheap: 20000 tokens).
          hiddenSize >= 2
          ? { hiddenSize, gaussianFloor: gaussianFloor(hiddenSize), source: 'computed' as const }
          : undefined,
    )
    .filter((f) => f !== undefined);
}

/**
 * Writes the sweep report into `sweepDir`: report.json, report.md and the plots loss.svg, val_loss.svg,
 * kurtosis.svg, kurtosis_layers.svg, quant_gap.svg, and hessian.svg when a trial ran the Hessian probe;
 * with `print`, also hands it the comparison table for the console. Every file is
 * replaced atomically, so the report can be regenerated while trials are still running.
 * @returns the absolute paths written and the report's contents
 * @example const { files } = writeReport('runs/osp-ablation', { metrics: ['outliers/layers.3.out/max_abs'] });
 */
export function writeReport(sweepDir: string, opts: ReportOptions = {}): { files: string[]; report: SweepReport } {
  const extra = opts.metrics ?? [];
  const { root, trials, report } = buildReport(sweepDir, opts);
  const plots = buildPlots(trials, report);
  report.plots = plots.map(([name]) => name);
  const files: string[] = [];
  // Plots first: report.md links to them, so a reader never follows a link to a file not yet written.
  for (const [name, svg] of plots) {
    const path = join(root, name);
    writeFileAtomicSync(path, svg);
    files.push(path);
  }
  const jsonPath = join(root, 'report.json');
  writeFileAtomicSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  // The outlier-emergence verdict of the spec's trend pairs, over the finished seeds.
  const trendSpec = opts.trend ?? sweepTrendSpec(root);
  const trends = trendSpec ? sweepTrends(trials, trendSpec, (t) => t.summary !== null, report.pending) : [];
  if (trendSpec) {
    writeFileAtomicSync(join(root, 'trend.json'), JSON.stringify(trends, null, 2) + '\n');
    writeFileAtomicSync(join(root, 'trend.md'), renderTrendMarkdown(trends));
    files.push(join(root, 'trend.json'), join(root, 'trend.md'));
  }
  const mdPath = join(root, 'report.md');
  const trendLink = trendSpec ? '\nOutlier emergence, trends and the paper\'s targets: [trend.md](trend.md)\n' : '';
  writeFileAtomicSync(mdPath, renderMarkdown(report, extra) + trendLink);
  if (opts.print) for (const line of [...consoleTable(report, extra), ...trendConsoleLines(trends)]) opts.print(line);
  return { files: [jsonPath, mdPath, ...files], report };
}

/**
 * Reads a sweep directory into its report (without plots, `plots` left empty) and the trials as read,
 * writing nothing: what writeReport writes, and what `osp sweep report --compare` reads.
 * @example const { report } = buildReport('runs/osp-ablation'); report.configurations.map((c) => c.name)
 */
export function buildReport(
  sweepDir: string,
  opts: Pick<ReportOptions, 'title' | 'metrics'> = {},
): { root: string; trials: TrialResult[]; report: SweepReport } {
  const root = resolve(sweepDir);
  const extra = opts.metrics ?? [];
  const trials = collectTrials(root);
  const reports = trials.map((t) => summarizeTrial(t, extra));
  const present = new Set(trials.map((t) => t.name));
  const labels = shortLabels(reports.map((r) => r.name));
  reports.forEach((r, i) => (r.label = labels[i]!));
  const pending = (sweepOrder(root) ?? []).filter((n) => !present.has(n));
  const report: SweepReport = {
    title: opts.title ?? `Sweep ${basename(root)}`,
    trials: reports,
    pending,
    configurations: aggregateConfigurations(reports, pending, extra),
    floors: floorsOf(reports),
    plots: [],
  };
  return { root, trials, report };
}
