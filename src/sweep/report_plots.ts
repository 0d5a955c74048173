/**
 * The sweep report's figures: training and validation loss against step, the OSP kurtosis against step
 * and per layer, the quantized / 16-bit perplexity ratio of every quantization variant, and the top
 * Hessian eigenvalue; where monitored, the worst layer's max/median and largest |activation|; where the
 * quantization gap was measured at two or more steps, that gap against step and against the 16-bit loss
 * (the matched-loss view). Axis titles are the
 * metrics in words with units, legend entries the trials' short labels (the full name stays in the
 * SVG's data-name and tooltip), and every y axis chooses its scale from the data (log only for positive
 * data spanning more than 1.5 decades).
 *
 * With seeds (trial names with a `seed=N` part), every curve is one configuration: the mean over its
 * finished seeds at the x values all of them have, with a band of -+ one standard deviation across
 * seeds; quant_gap.svg has one bar per configuration at the mean with an error bar over its 95%
 * interval. A configuration none of whose seeds finished is drawn from its unfinished seeds.
 */
import { meanCurve, type ConfigurationReport } from './aggregate.ts';
import { formatValue } from './axes.ts';
import { commonQuantBits, hasSeeds, metricLabel } from './labels.ts';
import type { SweepReport, TrialReport, TrialResult } from './report.ts';
import { reportQuantTags, shortQuantNames } from './report_table.ts';
import { describeSample } from './stats.ts';
import { barChart, lineChart, type Bar, type HLine, type Series } from './svg.ts';

/** What a band in a chart of a multi-seed sweep means, under the chart and in report.md. */
export const BAND_CAPTION = 'line: mean over the finished seeds; band: \u00B1 one standard deviation across seeds';
/** What an error bar in quant_gap.svg of a multi-seed sweep means. */
export const ERROR_BAR_CAPTION = 'bar: mean over the finished seeds; error bar: 95% confidence interval of the mean';

export function floorLines(floors: SweepReport['floors']): HLine[] {
  return floors.map((f) => ({
    y: f.gaussianFloor,
    label:
      floors.length > 1
        ? `Gaussian floor, d=${f.hiddenSize} (${formatValue(f.gaussianFloor)})`
        : `Gaussian floor (${formatValue(f.gaussianFloor)})`,
  }));
}

/** (x, y) from the rows that have the y metric; x is the step unless `xKey` names another metric. */
function metricPoints(t: TrialResult, yKey: string, xKey?: string): [number, number][] {
  const points: [number, number][] = [];
  for (const row of t.metrics) {
    if (!(yKey in row)) continue;
    points.push([xKey !== undefined && xKey in row ? row[xKey]! : row.step, row[yKey]!]);
  }
  return points;
}

function metricSeries(t: TrialResult, label: string, yKey: string, xKey?: string): Series {
  return { name: t.name, short: label, points: metricPoints(t, yKey, xKey) };
}

/**
 * The seeds a configuration's curves are averaged over: its finished ones, or, when none finished,
 * all of them (its legend entry then says so).
 */
function curveMembers<T extends { name: string }>(c: ConfigurationReport, items: readonly T[], finished: ReadonlySet<string>): T[] {
  const mine = items.filter((t) => c.trials.includes(t.name));
  const done = mine.filter((t) => finished.has(t.name));
  return done.length > 0 ? done : mine;
}

/** A configuration's legend label: its short label, with the seeds the curve is over when not all. */
function configurationLabel(c: ConfigurationReport): string {
  if (c.finished === 0) return `${c.label} (unfinished)`;
  return c.finished < c.seeds.length ? `${c.label} (${c.finished} of ${c.seeds.length} seeds)` : c.label;
}

/**
 * Keeps series with at least one measured point, so the legend lists only trials that ran the
 * measurement (a NaN counts: the chart marks it rather than hiding the trial).
 */
function measured(series: Series[]): Series[] {
  return series.filter((s) => s.points.some(([x]) => Number.isFinite(x)));
}

/** The report's figures as [file name, SVG text], in report order; hessian.svg only when measured. */
export function buildPlots(trials: readonly TrialResult[], report: SweepReport): [string, string][] {
  const reports = report.trials;
  const hLines = floorLines(report.floors);
  const seeded = hasSeeds(reports.map((r) => r.name));
  const finished = new Set(reports.filter((r) => r.finished).map((r) => r.name));
  // Unfinished trials say so in the legend: their curves stop early for a reason.
  const label = new Map(reports.map((r) => [r.name, r.finished ? r.label : `${r.label} (unfinished)`]));
  const series = (yKey: string, xKey?: string): Series[] => {
    if (!seeded) return measured(trials.map((t) => metricSeries(t, label.get(t.name) ?? t.name, yKey, xKey)));
    return measured(
      report.configurations.map((c) => {
        const curve = meanCurve(curveMembers(c, trials, finished).map((t) => metricPoints(t, yKey, xKey)));
        return { name: c.name, short: configurationLabel(c), points: curve.points, band: curve.band };
      }),
    );
  };
  const layerSeries = (): Series[] => {
    const points = (r: TrialReport) => r.layerKurtosis.flatMap((v, i) => (v === null ? [] : [[i, v] as [number, number]]));
    if (!seeded) return measured(reports.map((r) => ({ name: r.name, short: label.get(r.name)!, points: points(r) })));
    return measured(
      report.configurations.map((c) => {
        const curve = meanCurve(curveMembers(c, reports, finished).map(points));
        return { name: c.name, short: configurationLabel(c), points: curve.points, band: curve.band };
      }),
    );
  };
  const caption = seeded ? { caption: BAND_CAPTION } : {};
  const plots: [string, string][] = [];
  const step = metricLabel('step');
  plots.push([
    'loss.svg',
    lineChart({
      title: 'Training loss',
      xLabel: step,
      yLabel: metricLabel('train/loss'),
      yScale: 'auto',
      xFromZero: true,
      series: series('train/loss'),
      ...caption,
    }),
  ]);
  plots.push([
    'val_loss.svg',
    lineChart({
      title: 'Validation loss',
      xLabel: step,
      yLabel: metricLabel('eval/loss'),
      yScale: 'auto',
      xFromZero: true,
      series: series('eval/loss'),
      ...caption,
    }),
  ]);
  plots.push([
    'kurtosis.svg',
    lineChart({
      title: 'OSP excess kurtosis of the residual stream',
      xLabel: step,
      yLabel: metricLabel('outliers/osp_kurtosis'),
      yScale: 'auto',
      xFromZero: true,
      series: series('outliers/osp_kurtosis'),
      hLines,
      ...caption,
    }),
  ]);
  plots.push([
    'kurtosis_layers.svg',
    lineChart({
      title: 'OSP excess kurtosis per layer output (last measurement)',
      xLabel: 'layer',
      yLabel: 'excess kurtosis of the layer output',
      yScale: 'auto',
      xIndex: true,
      series: layerSeries(),
      hLines,
      ...caption,
    }),
  ]);
  // The worst layer's max/median and largest |activation| (massive activations), where monitored.
  for (const [file, key, title] of [
    ['max_median.svg', 'outliers/max_median', 'Largest per-token max / median |activation| over the layers'],
    ['max_abs.svg', 'outliers/max_abs', 'Largest |activation| over the layers (massive activations)'],
  ] as const) {
    const s = series(key);
    if (s.length === 0) continue;
    plots.push([
      file,
      lineChart({ title, xLabel: step, yLabel: metricLabel(key), yScale: 'auto', xFromZero: true, series: s, ...caption }),
    ]);
  }
  plots.push(['quant_gap.svg', seeded ? quantGapMeanChart(report, finished) : quantGapChart(reports, label)]);
  // The first quantization variant measured during training, against step and against the 16-bit loss
  // of the same checkpoint (configurations compared at matched loss, not only at matched steps).
  const tag = reportQuantTags(reports)[0];
  const ratioKey = `quant/${tag}/ppl_ratio`;
  if (tag !== undefined && trials.some((t) => metricPoints(t, ratioKey).length >= 2)) {
    const ratioLabel = metricLabel(ratioKey);
    plots.push([
      'quant_gap_steps.svg',
      lineChart({
        title: `${ratioLabel} during training`,
        xLabel: step,
        yLabel: ratioLabel,
        yScale: 'auto',
        xFromZero: true,
        series: series(ratioKey),
        hLines: [{ y: 1, label: 'no gap' }],
        ...caption,
      }),
    ]);
    // Seeds reach different losses, so no mean curve here: one line per trial, its seeds labelled.
    plots.push([
      'quant_gap_vs_loss.svg',
      lineChart({
        title: `${ratioLabel} against the 16-bit loss`,
        xLabel: metricLabel('quant/fp_loss'),
        yLabel: ratioLabel,
        yScale: 'auto',
        series: measured(
          trials.map((t) => ({ name: t.name, short: label.get(t.name) ?? t.name, points: metricPoints(t, ratioKey, 'quant/fp_loss') })),
        ),
        hLines: [{ y: 1, label: 'no gap' }],
      }),
    ]);
  }
  const hessian = series('hessian/eig_1', 'hessian/measured_at_step');
  if (hessian.length > 0) {
    plots.push([
      'hessian.svg',
      lineChart({
        title: 'Top Hessian eigenvalue',
        xLabel: metricLabel('hessian/measured_at_step'),
        yLabel: metricLabel('hessian/eig_1'),
        yScale: 'auto',
        xFromZero: true,
        series: hessian,
        ...caption,
      }),
    ]);
  }
  return plots;
}

/** quant_gap.svg's title and y axis title for these tags. */
function quantGapTitles(tags: readonly string[]): { title: string; yLabel: string } {
  const bits = commonQuantBits(tags);
  return {
    title: bits !== undefined ? `${bits} perplexity ratio (quantized / 16-bit)` : 'Quantized / 16-bit perplexity ratio',
    // One variant: its name in words; several: the bars' labels name them.
    yLabel: tags.length === 1 ? metricLabel(`quant/${tags[0]!}/ppl_ratio`) : 'quantized / 16-bit perplexity',
  };
}

/**
 * quant_gap.svg of a multi-seed sweep: one bar per configuration and tag at the mean ratio over its
 * finished seeds (all of its seeds when none finished), with an error bar over the 95% interval when
 * there are at least two.
 */
function quantGapMeanChart(report: SweepReport, finished: ReadonlySet<string>): string {
  const tags = reportQuantTags(report.trials);
  const short = shortQuantNames(tags);
  const bars: Bar[] = [];
  for (const c of report.configurations) {
    const members = curveMembers(c, report.trials, finished);
    for (const tag of tags) {
      const values = members.map((t) => t.quant[tag]?.pplRatio).filter((v): v is number => typeof v === 'number');
      if (values.length === 0) continue;
      const s = describeSample(values);
      const shown = configurationLabel(c);
      const bar: Bar =
        tags.length === 1
          ? { label: c.name, short: shown, value: s.mean! }
          : { label: `${c.name} (${short.get(tag)!})`, short: `${shown} (${short.get(tag)!})`, value: s.mean! };
      bars.push(s.ci95 !== null ? { ...bar, err: s.ci95 } : bar);
    }
  }
  return barChart({
    ...quantGapTitles(tags),
    yScale: 'auto',
    base: 1,
    bars,
    hLines: [{ y: 1, label: 'no gap' }],
    caption: ERROR_BAR_CAPTION,
  });
}

/**
 * quant_gap.svg: one bar per trial and quantization tag it measured (trials in report order, tags in
 * reportQuantTags order), growing from 1. With a single tag in the report the bars carry the trials'
 * labels, else `<trial> (<variant>)` with the variant's short name ('adam (QR+GPTQ)').
 */
function quantGapChart(reports: readonly TrialReport[], label: ReadonlyMap<string, string>): string {
  const tags = reportQuantTags(reports);
  const short = shortQuantNames(tags);
  const bars: Bar[] = [];
  for (const r of reports) {
    for (const tag of tags) {
      const value = r.quant[tag]?.pplRatio;
      if (value === undefined || value === null) continue;
      const shown = label.get(r.name) ?? r.name;
      bars.push(
        tags.length === 1
          ? { label: r.name, short: shown, value }
          : { label: `${r.name} (${short.get(tag)!})`, short: `${shown} (${short.get(tag)!})`, value },
      );
    }
  }
  return barChart({ ...quantGapTitles(tags), yScale: 'auto', base: 1, bars, hLines: [{ y: 1, label: 'no gap' }] });
}
