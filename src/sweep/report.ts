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
//
// This file builds and writes the report; reading the trials is report_read.ts, interpreting one trial
// report_trial.ts.
import { renderTrendMarkdown, sweepTrends, trendConsoleLines, type TrendSpec } from './trend.ts';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { gaussianFloor } from '../metrics/outliers.ts';
import { aggregateConfigurations, type ConfigurationReport } from './aggregate.ts';
import { shortLabels } from './labels.ts';
import { buildPlots } from './report_plots.ts';
import { collectTrials, sweepOrder, sweepTrendSpec, type TrialResult } from './report_read.ts';
import { consoleTable, renderMarkdown } from './report_table.ts';
import { summarizeTrial, type TrialReport } from './report_trial.ts';

export { collectTrials, readMetricsJsonl, type MetricsRow, type TrialResult } from './report_read.ts';
export { summarizeTrial, type QuantReport, type TrialReport } from './report_trial.ts';

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
            gaussianFloor: measured.every((v) => v === measured[0]) ? measured[0]! : measured.reduce((a, b) => a + b, 0) / measured.length,
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
  const trendLink = trendSpec ? "\nOutlier emergence, trends and the paper's targets: [trend.md](trend.md)\n" : '';
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
