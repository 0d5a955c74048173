/**
 * The sweep report's figures: training and validation loss against step, the OSP kurtosis against step
 * and per layer, the quantized / 16-bit perplexity ratio of every quantization variant, and the top
 * Hessian eigenvalue. Axis titles are the
 * metrics in words with units, legend entries the trials' short labels (the full name stays in the
 * SVG's data-name and tooltip), and every y axis chooses its scale from the data (log only for positive
 * data spanning more than 1.5 decades).
 */
import { formatValue } from './axes.ts';
import { commonQuantBits, metricLabel } from './labels.ts';
import type { SweepReport, TrialReport, TrialResult } from './report.ts';
import { reportQuantTags, shortQuantNames } from './report_table.ts';
import { barChart, lineChart, type Bar, type HLine, type Series } from './svg.ts';

export function floorLines(floors: SweepReport['floors']): HLine[] {
  return floors.map((f) => ({
    y: f.gaussianFloor,
    label:
      floors.length > 1
        ? `Gaussian floor, d=${f.hiddenSize} (${formatValue(f.gaussianFloor)})`
        : `Gaussian floor (${formatValue(f.gaussianFloor)})`,
  }));
}

/** A series of (x, y) from the rows that have the y metric; x is the step unless `xKey` names another metric. */
function metricSeries(t: TrialResult, label: string, yKey: string, xKey?: string): Series {
  const points: [number, number][] = [];
  for (const row of t.metrics) {
    if (!(yKey in row)) continue;
    points.push([xKey !== undefined && xKey in row ? row[xKey]! : row.step, row[yKey]!]);
  }
  return { name: t.name, short: label, points };
}

/**
 * Keeps series with at least one measured point, so the legend lists only trials that ran the
 * measurement (a NaN counts: the chart marks it rather than hiding the trial).
 */
function measured(series: Series[]): Series[] {
  return series.filter((s) => s.points.some(([x]) => Number.isFinite(x)));
}

/** The report's figures as [file name, SVG text], in report order; hessian.svg only when measured. */
export function buildPlots(trials: readonly TrialResult[], reports: readonly TrialReport[], floors: SweepReport['floors']): [string, string][] {
  const hLines = floorLines(floors);
  // Unfinished trials say so in the legend: their curves stop early for a reason.
  const label = new Map(reports.map((r) => [r.name, r.finished ? r.label : `${r.label} (unfinished)`]));
  const series = (yKey: string, xKey?: string) =>
    measured(trials.map((t) => metricSeries(t, label.get(t.name) ?? t.name, yKey, xKey)));
  const plots: [string, string][] = [];
  const step = metricLabel('step');
  plots.push([
    'loss.svg',
    lineChart({ title: 'Training loss', xLabel: step, yLabel: metricLabel('train/loss'), yScale: 'auto', xFromZero: true, series: series('train/loss') }),
  ]);
  plots.push([
    'val_loss.svg',
    lineChart({ title: 'Validation loss', xLabel: step, yLabel: metricLabel('eval/loss'), yScale: 'auto', xFromZero: true, series: series('eval/loss') }),
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
      series: measured(
        reports.map((r) => ({
          name: r.name,
          short: label.get(r.name)!,
          points: r.layerKurtosis.flatMap((v, i) => (v === null ? [] : [[i, v] as [number, number]])),
        })),
      ),
      hLines,
    }),
  ]);
  plots.push(['quant_gap.svg', quantGapChart(reports, label)]);
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
      }),
    ]);
  }
  return plots;
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
  const bits = commonQuantBits(tags);
  return barChart({
    title: bits !== undefined ? `${bits} perplexity ratio (quantized / 16-bit)` : 'Quantized / 16-bit perplexity ratio',
    // One variant: its name in words; several: the bars' labels name them.
    yLabel: tags.length === 1 ? metricLabel(`quant/${tags[0]!}/ppl_ratio`) : 'quantized / 16-bit perplexity',
    yScale: 'auto',
    base: 1,
    bars,
    hLines: [{ y: 1, label: 'no gap' }],
  });
}
