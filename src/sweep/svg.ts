/**
 * A small SVG chart writer for sweep reports: line charts (metric vs step, one polyline per trial) and
 * bar charts (one bar per trial), with axes, ticks, a legend and optional horizontal reference lines.
 *
 * SVG rather than PNG because a report is read in a browser or on GitHub, where vector text stays sharp
 * and the elements can be inspected: every series is `<polyline class="series" data-name="...">` (its
 * band, when it has one, `<polygon class="band" data-name="...">` under it), every bar `<rect
 * class="bar" data-label="..." data-value="...">` (its error bar `<g class="error-bar" data-label="..."
 * data-lo="..." data-hi="...">`), every tick `<g class="tick x|y" data-value="...">` and every reference
 * line `<line class="hline" data-y="...">`, so tests and users can find them without reading pixels. No
 * dependencies: the output is assembled as text.
 *
 * Figures are meant to go into a draft as they are: legend labels are never truncated (a legend too
 * wide for the right margin moves under the plot), the y axis is logarithmic only when asked to or when
 * the data spans more than 1.5 decades and is all positive (else linear, zoomed around the data), and a
 * value that cannot be drawn (a zero on a log axis, a NaN) is marked at the edge of the plot and counted
 * in a note under it rather than silently left out.
 */
import { chooseScale, drawable, extent, formatValue, indexAxis, linearAxis, valueAxis, type Axis, type Scale } from './axes.ts';

export { chooseScale, formatValue } from './axes.ts';

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

/** A dashed horizontal reference line across the plot, e.g. the Gaussian floor of the kurtosis estimator. */
export interface HLine {
  y: number;
  label: string;
}

/** 'auto': log when the values are all positive and span more than 1.5 decades, else linear. */
export type YScale = Scale | 'auto';

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

export interface Bar {
  /** Identifies the bar (data-label, tooltip); shown under it unless `short` is given. */
  label: string;
  short?: string;
  value: number;
  /** An error bar from low to high (e.g. the 95% interval of a mean over seeds). */
  err?: readonly [number, number];
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  bars: readonly Bar[];
  /** Default 'linear' (or 'log' when `logY`). */
  yScale?: YScale;
  /** Same as yScale 'log'; a bar whose value is non-positive gets no rectangle but a marker and a note. */
  logY?: boolean;
  /** Bars grow from this value (e.g. 1 for a ratio); default 0, or the axis bottom on a log axis. */
  base?: number;
  hLines?: readonly HLine[];
  /** Default 720. */
  width?: number;
  /** Default 420; grows when category labels or notes need room. */
  height?: number;
  /** A line of text under the chart saying how to read it (e.g. what the error bars are). */
  caption?: string;
}

/**
 * Colour-blind-safe categorical palette (Okabe-Ito, without its yellow, which vanishes on white, plus
 * a few Tableau colours); beyond it, hues spaced by the golden angle stay distinct from each other.
 */
const PALETTE = [
  '#0072B2',
  '#D55E00',
  '#009E73',
  '#CC79A7',
  '#56B4E9',
  '#E69F00',
  '#000000',
  '#8C564B',
  '#7F7F7F',
  '#BCBD22',
];

/**
 * The colour of series i: the palette first, then golden-angle hues.
 * @example seriesColor(0) // '#0072B2'
 */
export function seriesColor(i: number): string {
  if (i < PALETTE.length) return PALETTE[i]!;
  const hue = Math.round(((i - PALETTE.length) * 137.508) % 360);
  return `hsl(${hue}, 65%, 42%)`;
}

/**
 * Escapes text for XML character data and attribute values (double- or single-quoted). Characters XML
 * 1.0 forbids (C0 controls other than tab, newline, carriage return) become U+FFFD, so a stray byte in
 * a trial name cannot make the whole file unreadable.
 * @example escapeXml('a<b&c') // 'a&lt;b&amp;c'
 */
export function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Pixel coordinates in the output: two decimals are far below what a screen can show. */
function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Rough width of a label at font-size 12 in a sans-serif face (DejaVu Sans is the widest common one). */
const CHAR_W = 7.4;
const textWidth = (s: string) => s.length * CHAR_W;

/** Left margin (y tick labels and the rotated y axis label). */
const LEFT = 76;
const TOP = 40;
const LEGEND_ROW = 18;
const NOTE_ROW = 16;
const GREY = '#666666';
/** Fill opacity of a series' band: the line stays readable on top of it, overlapping bands stay apart. */
const BAND_OPACITY = 0.18;

function resolveScale(opts: { yScale?: YScale; logY?: boolean }, values: readonly number[]): Scale {
  const s = opts.yScale ?? (opts.logY ? 'log' : 'linear');
  return s === 'auto' ? chooseScale(values) : s;
}

/** Plot rectangle in pixels. */
interface Frame {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

function header(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="${px(height)}" ` +
      `viewBox="0 0 ${px(width)} ${px(height)}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect class="background" x="0" y="0" width="${px(width)}" height="${px(height)}" fill="#ffffff"/>`,
    `<text class="title" x="${px(width / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">` +
      `${escapeXml(title)}</text>`,
  ];
}

/** Y ticks with grid lines and labels, the y axis line and its rotated label. */
function yAxisSvg(axis: Axis, f: Frame, yLabel: string): string[] {
  const out: string[] = [];
  for (const t of axis.ticks) {
    const y = f.y1 - axis.scale(t.value) * (f.y1 - f.y0);
    out.push(
      `<g class="tick y" data-value="${t.value}">` +
        `<line x1="${px(f.x0)}" y1="${px(y)}" x2="${px(f.x1)}" y2="${px(y)}" stroke="#e4e4e4"/>` +
        `<line x1="${px(f.x0 - 5)}" y1="${px(y)}" x2="${px(f.x0)}" y2="${px(y)}" stroke="#333333"/>` +
        `<text x="${px(f.x0 - 8)}" y="${px(y + 4)}" text-anchor="end">${escapeXml(t.label)}</text></g>`,
    );
  }
  // A log axis over few decades gets unlabelled grid lines at 2..9 times each power of ten.
  if (axis.kind === 'log' && Math.log10(axis.hi / axis.lo) <= 4) {
    for (let p = axis.lo; p < axis.hi; p *= 10) {
      for (let m = 2; m <= 9; m++) {
        const y = f.y1 - axis.scale(p * m) * (f.y1 - f.y0);
        out.push(`<line class="minor y" x1="${px(f.x0)}" y1="${px(y)}" x2="${px(f.x1)}" y2="${px(y)}" stroke="#f3f3f3"/>`);
      }
    }
  }
  out.push(`<line class="axis y" x1="${px(f.x0)}" y1="${px(f.y0)}" x2="${px(f.x0)}" y2="${px(f.y1)}" stroke="#333333"/>`);
  const cy = (f.y0 + f.y1) / 2;
  const label = axis.kind === 'log' ? `${yLabel}, log scale` : yLabel;
  out.push(
    `<text class="axis-label y" x="18" y="${px(cy)}" text-anchor="middle" transform="rotate(-90 18 ${px(cy)})">` +
      `${escapeXml(label)}</text>`,
  );
  return out;
}

/**
 * Dashed reference lines with their labels, at the right or left end, above or below the line,
 * wherever fewest of the drawn curve pixels (`avoid`) would run through the text.
 */
function hLinesSvg(lines: readonly HLine[], axis: Axis, f: Frame, labels = true, avoid: readonly [number, number][] = []): string[] {
  const out: string[] = [];
  for (const h of lines) {
    if (!drawable(h.y, axis.kind)) continue;
    const y = f.y1 - axis.scale(h.y) * (f.y1 - f.y0);
    out.push(
      `<line class="hline" data-y="${h.y}" x1="${px(f.x0)}" y1="${px(y)}" x2="${px(f.x1)}" y2="${px(y)}" ` +
        `stroke="#555555" stroke-dasharray="6 4"/>`,
    );
    if (!labels) continue;
    const w = textWidth(h.label);
    const spots = [
      { x: f.x1 - 4, anchor: 'end', ty: y - 4 },
      { x: f.x0 + 4, anchor: 'start', ty: y - 4 },
      { x: f.x1 - 4, anchor: 'end', ty: y + 14 },
      { x: f.x0 + 4, anchor: 'start', ty: y + 14 },
    ].filter((p) => p.ty - 12 >= f.y0 && p.ty <= f.y1 - 2);
    const hits = (p: { x: number; anchor: string; ty: number }) => {
      const left = p.anchor === 'end' ? p.x - w : p.x;
      return avoid.filter(([ax, ay]) => ax >= left - 3 && ax <= left + w + 3 && ay >= p.ty - 14 && ay <= p.ty + 4).length;
    };
    const best = spots.length === 0 ? { x: f.x1 - 4, anchor: 'end', ty: y - 4 } : spots.reduce((a, b) => (hits(b) < hits(a) ? b : a));
    out.push(
      // A white halo keeps the label readable where it crosses a series or a bar.
      `<text class="hline-label" x="${px(best.x)}" y="${px(best.ty)}" text-anchor="${best.anchor}" fill="#555555" ` +
        `stroke="#ffffff" stroke-width="3" paint-order="stroke">` +
        `${escapeXml(h.label)}</text>`,
    );
  }
  return out;
}

/** Pixels along polylines, every few pixels, for placing labels off the curves. */
function sampleCurves(curves: readonly (readonly [number, number])[][]): [number, number][] {
  const out: [number, number][] = [];
  for (const c of curves) {
    for (let i = 0; i < c.length; i++) {
      out.push([c[i]![0], c[i]![1]]);
      if (i === 0) continue;
      const [xa, ya] = c[i - 1]!;
      const [xb, yb] = c[i]!;
      const n = Math.ceil(Math.hypot(xb - xa, yb - ya) / 3);
      for (let k = 1; k < n; k++) out.push([xa + ((xb - xa) * k) / n, ya + ((yb - ya) * k) / n]);
    }
  }
  return out;
}

function noDataSvg(f: Frame): string {
  return (
    `<text class="no-data" x="${px((f.x0 + f.x1) / 2)}" y="${px((f.y0 + f.y1) / 2)}" text-anchor="middle" ` +
    `fill="#888888">no data</text>`
  );
}

/** Notes under the plot (values that could not be drawn), one line each, ending at `bottom`. */
function notesSvg(notes: readonly string[], bottom: number): string[] {
  return notes.map(
    (n, i) =>
      `<text class="log-note" x="${LEFT}" y="${px(bottom - (notes.length - 1 - i) * NOTE_ROW)}" fill="${GREY}">` +
      `${escapeXml(n)}</text>`,
  );
}

/** Caption lines under the plot, above the notes (which end at `bottom`). */
function captionSvg(captions: readonly string[], notes: number, bottom: number): string[] {
  return captions.map(
    (c, i) =>
      `<text class="caption" x="${LEFT}" y="${px(bottom - (notes + captions.length - 1 - i) * NOTE_ROW)}" fill="${GREY}">` +
      `${escapeXml(c)}</text>`,
  );
}

/** Text of the note for values a chart could not draw; undefined when there are none. */
function droppedNotes(nonPositive: number, nonFinite: number, hLinesDropped: readonly HLine[]): string[] {
  const notes: string[] = [];
  const values = (n: number) => `${n} value${n === 1 ? '' : 's'}`;
  if (nonPositive > 0) notes.push(`\u25BC ${values(nonPositive)} \u2264 0 cannot be drawn on the log axis (marked at the bottom edge)`);
  if (nonFinite > 0) notes.push(`\u00D7 ${values(nonFinite)} not finite (NaN or infinite, e.g. a diverged loss), marked at the top edge`);
  for (const h of hLinesDropped) notes.push(`reference line "${h.label}" at ${formatValue(h.y)} is off the log axis`);
  return notes;
}

/** A downward triangle (value below a log axis) or a cross (non-finite value) at an edge of the plot. */
function edgeMarker(kind: 'below' | 'nonfinite', x: number, y: number, color: string, name: string): string {
  if (kind === 'below') {
    return (
      `<path class="log-dropped" data-name="${name}" d="M${px(x - 4)},${px(y - 7)}L${px(x + 4)},${px(y - 7)}` +
      `L${px(x)},${px(y)}Z" fill="${color}"/>`
    );
  }
  return (
    `<path class="nonfinite" data-name="${name}" d="M${px(x - 4)},${px(y)}L${px(x + 4)},${px(y + 8)}` +
    `M${px(x + 4)},${px(y)}L${px(x - 4)},${px(y + 8)}" stroke="${color}" stroke-width="2"/>`
  );
}

interface LegendLayout {
  place: 'right' | 'below';
  /** Width of one entry (swatch, gap, text). */
  entryW: number;
  cols: number;
  rows: number;
}

/** The legend goes to the right margin when its longest label fits in a third of the width, else below. */
function legendLayout(labels: readonly string[], width: number): LegendLayout {
  const entryW = Math.ceil(Math.max(0, ...labels.map(textWidth))) + 28;
  if (labels.length === 0) return { place: 'right', entryW: 0, cols: 1, rows: 0 };
  if (entryW <= width * 0.34) return { place: 'right', entryW, cols: 1, rows: labels.length };
  const cols = Math.max(1, Math.floor((width - LEFT - 16 + 18) / (entryW + 18)));
  return { place: 'below', entryW, cols, rows: Math.ceil(labels.length / cols) };
}

function legendEntry(name: string, label: string, color: string, x: number, y: number, dashed = false, band = false): string {
  return (
    `<g class="legend-entry" data-name="${escapeXml(name)}"><title>${escapeXml(name)}</title>` +
    (band ? `<rect x="${px(x)}" y="${px(y - 6)}" width="22" height="12" fill="${color}" fill-opacity="${BAND_OPACITY}"/>` : '') +
    `<line x1="${px(x)}" y1="${px(y)}" x2="${px(x + 22)}" y2="${px(y)}" stroke="${color}" stroke-width="3"` +
    `${dashed ? ' stroke-dasharray="4 3"' : ''}/>` +
    `<text x="${px(x + 28)}" y="${px(y + 4)}">${escapeXml(label)}</text></g>`
  );
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
  const height =
    legend.place === 'right' ? Math.max(baseH, TOP + legend.rows * LEGEND_ROW + 60) + notesH : baseH + legendH + notesH;
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

/**
 * A bar chart as an SVG document: one bar per entry, labelled underneath (rotated when the labels are
 * long, never shortened) and with its value at its end; linear or log y axis (`yScale`); bars grow
 * from `base` (0, or 1 for a ratio, so 1.03 against 1.09 is visible); optional dashed reference lines.
 * A non-finite value, or a non-positive one on a log axis, gets no rectangle but a marker, its value in
 * grey and a note under the chart.
 *
 * @example
 *   const svg = barChart({
 *     title: 'W4A4KV4 perplexity ratio', yLabel: 'quantized / 16-bit perplexity', yScale: 'auto', base: 1,
 *     bars: [{ label: 'adam', value: 1.09 }, { label: 'osp', value: 1.03 }],
 *     hLines: [{ y: 1, label: 'no gap' }],
 *   });
 */
export function barChart(opts: BarChartOptions): string {
  const width = opts.width ?? 720;
  const hLines = opts.hLines ?? [];
  const n = opts.bars.length;
  const kind = resolveScale(opts, [...opts.bars.map((b) => b.value), ...hLines.map((h) => h.y)]);
  const base = opts.base !== undefined && drawable(opts.base, kind) ? opts.base : undefined;
  const shown = opts.bars.map((b) => b.short ?? b.label);
  const x1 = width - 16;
  // Labels wider than their slot are rotated by -35 degrees; the left margin and the depth under the
  // plot grow to hold them whole.
  let x0 = LEFT;
  let slot = n > 0 ? (x1 - x0) / n : x1 - x0;
  const longest = Math.max(0, ...shown.map(textWidth));
  const rotate = longest > slot - 4;
  if (rotate) {
    const cos = Math.cos((35 * Math.PI) / 180);
    const need = Math.max(0, ...shown.map((s, i) => textWidth(s) * cos - (i + 0.5) * slot + 10));
    x0 = Math.max(x0, Math.ceil(need));
    slot = (x1 - x0) / n;
  }
  const labelDepth = rotate ? Math.ceil(longest * Math.sin((35 * Math.PI) / 180)) + 22 : 22;
  const dropped = opts.bars.filter((b) => !drawable(b.value, kind));
  const notes = droppedNotes(
    dropped.filter((b) => Number.isFinite(b.value)).length,
    dropped.filter((b) => !Number.isFinite(b.value)).length,
    hLines.filter((h) => !drawable(h.y, kind)),
  );
  // Reference lines of a bar chart often lie on the bars' base (a ratio of 1), where a label inside
  // the plot would hide behind a bar: they are explained under the chart instead.
  const refs = hLines.filter((h) => drawable(h.y, kind));
  const captions = opts.caption !== undefined ? [opts.caption] : [];
  const rowsUnder = notes.length + refs.length + captions.length;
  const notesH = rowsUnder * NOTE_ROW + (rowsUnder > 0 ? 6 : 0);
  const height = Math.max(opts.height ?? 420, TOP + 200 + labelDepth + 30) + notesH;
  const f: Frame = { x0, x1, y0: TOP, y1: height - labelDepth - 30 - notesH };

  // Error bars widen the axis to hold them (a log axis clips a low end <= 0 at its bottom).
  const errYs = opts.bars.flatMap((b) => (b.err ? [b.err[0], b.err[1]] : [])).filter((v) => drawable(v, kind));
  const yAxis = valueAxis([...opts.bars.map((b) => b.value), ...hLines.map((h) => h.y), ...errYs], kind, true, base);
  const Y = (v: number) => f.y1 - yAxis.scale(v) * (f.y1 - f.y0);
  const from = base ?? (kind === 'log' ? yAxis.lo : 0);
  // On a linear axis, bar values carry one decimal more than the ticks (1.0022 and 1.0013, not 1.002
  // and 1.001 twice over), the same number of decimals for every bar.
  const tickDecimals = Math.max(...yAxis.ticks.map((t) => (t.label.includes('.') ? t.label.length - t.label.indexOf('.') - 1 : 0)));
  const barText = (v: number) =>
    kind === 'linear' && Math.abs(v) < 1e4 && yAxis.ticks.every((t) => !t.label.includes('e')) ? v.toFixed(tickDecimals + 1) : formatValue(v);

  const out = header(width, height, opts.title);
  out.push(...yAxisSvg(yAxis, f, opts.yLabel));
  out.push(`<line class="axis x" x1="${px(f.x0)}" y1="${px(f.y1)}" x2="${px(f.x1)}" y2="${px(f.y1)}" stroke="#333333"/>`);
  if (n === 0) out.push(noDataSvg(f));
  opts.bars.forEach((b, i) => {
    const cx = f.x0 + (i + 0.5) * slot;
    const bw = Math.max(2, Math.min(slot * 0.7, 80));
    const label = escapeXml(b.label);
    const color = seriesColor(i);
    if (drawable(b.value, kind)) {
      const ya = Y(b.value);
      const yb = Y(from);
      // A bar equal to its base still shows as a line, not as nothing.
      const h = Math.max(1.5, Math.abs(yb - ya));
      const top = b.value >= from ? Math.min(ya, yb - h) : yb;
      const err = b.err && Number.isFinite(b.err[0]) && Number.isFinite(b.err[1]) ? b.err : undefined;
      const Yc = (v: number) => (drawable(v, kind) ? Y(v) : f.y1);
      // The value is written beyond the bar's end, and beyond its error bar's end on that side.
      const textY = b.value >= from ? Math.min(top, err ? Yc(err[1]) : top) - 5 : Math.max(top + h, err ? Yc(err[0]) : 0) + 14;
      out.push(
        `<rect class="bar" data-label="${label}" data-value="${b.value}" x="${px(cx - bw / 2)}" y="${px(top)}" ` +
          `width="${px(bw)}" height="${px(h)}" fill="${color}"><title>${label}: ` +
          `${formatValue(b.value)}</title></rect>`,
      );
      if (err) {
        const [y0, y1] = [Yc(err[0]), Yc(err[1])];
        const cap = Math.min(bw / 4, 8);
        out.push(
          `<g class="error-bar" data-label="${label}" data-lo="${err[0]}" data-hi="${err[1]}" stroke="#222222" stroke-width="1.5">` +
            `<line x1="${px(cx)}" y1="${px(y0)}" x2="${px(cx)}" y2="${px(y1)}"/>` +
            `<line x1="${px(cx - cap)}" y1="${px(y0)}" x2="${px(cx + cap)}" y2="${px(y0)}"/>` +
            `<line x1="${px(cx - cap)}" y1="${px(y1)}" x2="${px(cx + cap)}" y2="${px(y1)}"/></g>`,
        );
      }
      out.push(`<text class="bar-value" x="${px(cx)}" y="${px(textY)}" text-anchor="middle">${barText(b.value)}</text>`);
    } else {
      const finite = Number.isFinite(b.value);
      out.push(
        edgeMarker(finite ? 'below' : 'nonfinite', cx, finite ? f.y1 - 1 : f.y0 + 1, color, label),
        `<text class="bar-missing" data-label="${label}" x="${px(cx)}" y="${px(finite ? f.y1 - 12 : f.y0 + 24)}" ` +
          `text-anchor="middle" fill="#888888">${escapeXml(finite ? formatValue(b.value) : 'n/a')}</text>`,
      );
    }
    const ly = f.y1 + 16;
    const text = escapeXml(shown[i]!);
    out.push(
      rotate
        ? `<text class="bar-label" x="${px(cx)}" y="${px(ly)}" text-anchor="end" ` +
            `transform="rotate(-35 ${px(cx)} ${px(ly)})">${text}</text>`
        : `<text class="bar-label" x="${px(cx)}" y="${px(ly)}" text-anchor="middle">${text}</text>`,
    );
  });
  out.push(...hLinesSvg(hLines, yAxis, f, false));
  out.push(...captionSvg(captions, notes.length + refs.length, height - 10));
  refs.forEach((h, i) => {
    const y = height - 10 - (notes.length + refs.length - 1 - i) * NOTE_ROW - 4;
    out.push(
      `<g class="hline-key"><line x1="${LEFT}" y1="${px(y)}" x2="${LEFT + 26}" y2="${px(y)}" stroke="#555555" ` +
        `stroke-dasharray="6 4"/><text class="hline-label" x="${LEFT + 32}" y="${px(y + 4)}" fill="#555555">` +
        `${escapeXml(`${h.label} (${formatValue(h.y)})`)}</text></g>`,
    );
  });
  out.push(...notesSvg(notes, height - 10));
  out.push('</svg>');
  return out.join('\n') + '\n';
}
