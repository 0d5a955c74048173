/**
 * The line chart of svg.ts: lineChart (metric vs step, one polyline per series, with bands, markers,
 * a legend and reference lines).
 */
import { drawable, extent, formatValue, indexAxis, linearAxis, valueAxis } from './axes.ts';
import {
  BAND_OPACITY,
  captionSvg,
  droppedNotes,
  edgeMarker,
  escapeXml,
  header,
  hLinesSvg,
  LEFT,
  LEGEND_ROW,
  legendEntry,
  legendLayout,
  noDataSvg,
  notesSvg,
  NOTE_ROW,
  px,
  resolveScale,
  sampleCurves,
  seriesColor,
  TOP,
  yAxisSvg,
  type Frame,
  type HLine,
  type YScale,
} from './svg_parts.ts';

/** One line of a line chart. Points with a non-finite coordinate (or y <= 0 on a log axis) are not drawn. */
export interface Series {
  /** Identifies the series (data-name, tooltip); shown in the legend unless `short` is given. */
  name: string;
  /** Legend text, e.g. 'adam, lr=3e-3' for the trial 'adam__optimizer.adamw.lr=0.003'. */
  short?: string;
  points: readonly (readonly [number, number])[];
  /**
   * A shaded band around the line, [x, low, high] per point (e.g. the mean -+ one standard deviation
   * over seeds): a filled polygon in the series' colour at low opacity, drawn under every line.
   */
  band?: readonly (readonly [number, number, number])[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Default 'linear' (or 'log' when `logY`). */
  yScale?: YScale;
  /** Same as yScale 'log': ticks at powers of ten; non-positive values are marked, not drawn. */
  logY?: boolean;
  /** Start the x axis at zero (training steps). */
  xFromZero?: boolean;
  /** x values are indices (layers): ticks on whole numbers, half a position of room at both ends. */
  xIndex?: boolean;
  /** Total width in pixels (the legend lives inside it). Default 720. */
  width?: number;
  /** Height in pixels of plot and axes; grows when the legend or notes need more room. Default 420. */
  height?: number;
  hLines?: readonly HLine[];
  /** A line of text under the plot saying how to read it (e.g. what a band means). */
  caption?: string;
}

/**
 * A line chart as an SVG document: one polyline per series (distinct colours, with point markers when a
 * series is sparse and the value written next to a lone point), linear x axis, linear or log y axis
 * (`yScale`), legend on the right or under the plot, optional dashed reference lines. Values that cannot
 * be drawn (non-finite, or <= 0 on a log axis) get a marker at the plot's edge and a note; a series
 * left with no points is listed in the legend as '(no data)' but draws nothing.
 *
 * @example
 *   const svg = lineChart({
 *     title: 'OSP kurtosis', xLabel: 'training step', yLabel: 'excess kurtosis', yScale: 'auto',
 *     series: [{ name: 'adam__optimizer.adamw.lr=0.003', short: 'adam, lr=3e-3', points: [[0, 0.2], [100, 40]] }],
 *     hLines: [{ y: 0.138, label: 'Gaussian floor' }],
 *   });
 */
export function lineChart(opts: LineChartOptions): string {
  const hLines = opts.hLines ?? [];
  const finiteX = opts.series.map((s) => s.points.filter(([x]) => Number.isFinite(x)));
  const kind = resolveScale(opts, [...finiteX.flatMap((p) => p.map(([, y]) => y)), ...hLines.map((h) => h.y)]);
  const series = opts.series.map((s, i) => ({
    name: s.name,
    label: s.short ?? s.name,
    points: finiteX[i]!.filter(([, y]) => drawable(y, kind)),
    below: finiteX[i]!.filter(([, y]) => Number.isFinite(y) && !drawable(y, kind)).map(([x]) => x),
    nonFinite: finiteX[i]!.filter(([, y]) => !Number.isFinite(y)).map(([x]) => x),
    band: (s.band ?? []).filter(([x, lo, hi]) => Number.isFinite(x) && Number.isFinite(lo) && Number.isFinite(hi)),
  }));
  const labels = series.map((s) => (s.points.length === 0 ? `${s.label} (no data)` : s.label));
  const captions = opts.caption !== undefined ? [opts.caption] : [];
  const notes = droppedNotes(
    series.reduce((n, s) => n + s.below.length, 0),
    series.reduce((n, s) => n + s.nonFinite.length, 0),
    hLines.filter((h) => !drawable(h.y, kind)),
  );

  let width = opts.width ?? 720;
  const legend = legendLayout(labels, width);
  if (legend.place === 'below') width = Math.max(width, LEFT + legend.entryW + 16);
  const legendH = legend.place === 'below' ? legend.rows * LEGEND_ROW + 10 : 0;
  const notesH = (notes.length + captions.length) * NOTE_ROW + (notes.length + captions.length > 0 ? 6 : 0);
  const baseH = opts.height ?? 420;
  const height = legend.place === 'right' ? Math.max(baseH, TOP + legend.rows * LEGEND_ROW + 60) + notesH : baseH + legendH + notesH;
  const legendX = width - 8 - legend.entryW;
  const f: Frame = {
    x0: LEFT,
    x1: legend.place === 'right' && series.length > 0 ? legendX - 18 : width - 20,
    y0: TOP,
    y1: height - 52 - legendH - notesH,
  };

  const xs = series.flatMap((s) => [...s.points.map(([x]) => x), ...s.below, ...s.nonFinite]);
  // Bands widen the y axis to hold them (where the axis can show them: a log axis clips them at its bottom).
  const bandYs = series.flatMap((s) => s.band.flatMap(([, lo, hi]) => [lo, hi]).filter((v) => drawable(v, kind)));
  const ys = [...series.flatMap((s) => s.points.map(([, y]) => y)), ...hLines.map((h) => h.y), ...bandYs];
  const xe = extent(opts.xFromZero ? [0, ...xs] : xs);
  const integer = xs.every(Number.isInteger);
  const xAxis = !xe ? linearAxis(0, 1) : opts.xIndex && integer ? indexAxis(xe[0], xe[1]) : linearAxis(xe[0], xe[1], { integer });
  const yAxis = valueAxis(ys, kind, false);
  const X = (v: number) => f.x0 + xAxis.scale(v) * (f.x1 - f.x0);
  const Y = (v: number) => f.y1 - yAxis.scale(v) * (f.y1 - f.y0);

  const out = header(width, height, opts.title);
  out.push(...yAxisSvg(yAxis, f, opts.yLabel));
  for (const t of xAxis.ticks) {
    const x = X(t.value);
    out.push(
      `<g class="tick x" data-value="${t.value}">` +
        `<line x1="${px(x)}" y1="${px(f.y0)}" x2="${px(x)}" y2="${px(f.y1)}" stroke="#f0f0f0"/>` +
        `<line x1="${px(x)}" y1="${px(f.y1)}" x2="${px(x)}" y2="${px(f.y1 + 5)}" stroke="#333333"/>` +
        `<text x="${px(x)}" y="${px(f.y1 + 18)}" text-anchor="middle">${escapeXml(t.label)}</text></g>`,
    );
  }
  out.push(`<line class="axis x" x1="${px(f.x0)}" y1="${px(f.y1)}" x2="${px(f.x1)}" y2="${px(f.y1)}" stroke="#333333"/>`);
  out.push(
    `<text class="axis-label x" x="${px((f.x0 + f.x1) / 2)}" y="${px(f.y1 + 38)}" text-anchor="middle">` +
      `${escapeXml(opts.xLabel)}</text>`,
  );
  if (xs.length === 0) out.push(noDataSvg(f));

  // Bands first, so every line is drawn over every band.
  series.forEach((s, i) => {
    if (s.band.length === 0) return;
    const color = seriesColor(i);
    const Yc = (v: number) => (drawable(v, yAxis.kind) ? Y(v) : f.y1);
    const upper = s.band.map(([x, , hi]) => `${px(X(x))},${px(Yc(hi))}`);
    const lower = s.band.map(([x, lo]) => `${px(X(x))},${px(Yc(lo))}`).reverse();
    // A band over a single x has no area: a thick translucent stroke shows it as a bar.
    const single = s.band.length === 1 ? ` stroke="${color}" stroke-opacity="${BAND_OPACITY}" stroke-width="8"` : ' stroke="none"';
    out.push(
      `<polygon class="band" data-name="${escapeXml(s.name)}" points="${[...upper, ...lower].join(' ')}" fill="${color}" ` +
        `fill-opacity="${BAND_OPACITY}"${single}/>`,
    );
  });

  series.forEach((s, i) => {
    const color = seriesColor(i);
    const name = escapeXml(s.name);
    for (const x of s.below) out.push(edgeMarker('below', X(x), f.y1 - 1, color, name));
    for (const x of s.nonFinite) out.push(edgeMarker('nonfinite', X(x), f.y0 + 1, color, name));
    if (s.points.length === 0) return;
    const coords = s.points.map(([x, y]) => `${px(X(x))},${px(Y(y))}`).join(' ');
    out.push(
      `<polyline class="series" data-name="${name}" fill="none" stroke="${color}" stroke-width="1.8" ` +
        `stroke-linejoin="round" points="${coords}"><title>${name}</title></polyline>`,
    );
    // Sparse series (a few Hessian measurements, one point per layer) are unreadable as bare lines;
    // a single point draws no line at all, so it also gets its value written next to it.
    if (s.points.length <= 20) {
      const dots = s.points.map(([x, y]) => `<circle cx="${px(X(x))}" cy="${px(Y(y))}" r="3" fill="${color}"/>`);
      out.push(`<g class="markers" data-name="${name}">${dots.join('')}</g>`);
    }
    if (s.points.length === 1) {
      const [x, y] = s.points[0]!;
      const right = X(x) < (f.x0 + f.x1) / 2;
      out.push(
        `<text class="point-label" data-name="${name}" x="${px(X(x) + (right ? 7 : -7))}" y="${px(Y(y) - 6)}" ` +
          `text-anchor="${right ? 'start' : 'end'}" fill="${color}" stroke="#ffffff" stroke-width="3" ` +
          `paint-order="stroke">${escapeXml(formatValue(y))}</text>`,
      );
    }
  });

  // Reference lines after the series: their haloed labels stay readable where a series runs along them.
  const curves = series.map((s) => s.points.map(([x, y]) => [X(x), Y(y)] as [number, number]));
  out.push(...hLinesSvg(hLines, yAxis, f, true, sampleCurves(curves)));

  series.forEach((s, i) => {
    const row = legend.place === 'right' ? i : Math.floor(i / legend.cols);
    const col = legend.place === 'right' ? 0 : i % legend.cols;
    const x = legend.place === 'right' ? legendX : LEFT + col * (legend.entryW + 18);
    const y = (legend.place === 'right' ? TOP + 8 : f.y1 + 58) + row * LEGEND_ROW;
    out.push(legendEntry(s.name, labels[i]!, seriesColor(i), x, y, false, s.band.length > 0));
  });
  out.push(...captionSvg(captions, notes.length, height - 10));
  out.push(...notesSvg(notes, height - 10));
  out.push('</svg>');
  return out.join('\n') + '\n';
}
