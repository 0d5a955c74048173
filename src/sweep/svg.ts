/**
 * A small SVG chart writer for sweep reports: line charts (metric vs step, one polyline per trial) and
 * bar charts (one bar per trial), with axes, ticks, a legend and optional horizontal reference lines.
 *
 * SVG rather than PNG because a report is read in a browser or on GitHub, where vector text stays sharp
 * and the elements can be inspected: every series is `<polyline class="series" data-name="...">`, every
 * bar `<rect class="bar" data-label="..." data-value="...">`, every tick `<g class="tick x|y"
 * data-value="...">` and every reference line `<line class="hline" data-y="...">`, so tests and users can
 * find them without reading pixels. No dependencies: the output is assembled as text.
 */

/** One line of a line chart. Points with a non-finite coordinate (or y <= 0 on a log axis) are skipped. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** A dashed horizontal reference line across the plot, e.g. the Gaussian floor of the kurtosis estimator. */
export interface HLine {
  y: number;
  label: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Logarithmic y axis with ticks at powers of ten; non-positive values are skipped. */
  logY?: boolean;
  /** Total width in pixels (the legend lives inside it). Default 720. */
  width?: number;
  /** Total height in pixels; grows when the legend needs more room. Default 420. */
  height?: number;
  hLines?: readonly HLine[];
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  bars: readonly { label: string; value: number }[];
  /** Logarithmic y axis; a bar whose value is non-positive gets no rectangle (marked 'n/a'). */
  logY?: boolean;
  hLines?: readonly HLine[];
  /** Default 720. */
  width?: number;
  /** Default 420; grows when rotated category labels need room. */
  height?: number;
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

/**
 * Formats a data value for labels: up to 4 significant digits, exponent notation outside [1e-3, 1e4)
 * (the perplexity of a broken 4-bit model reads better as 8e+4 than as 80000, as in the OSP table).
 * @example formatValue(1818.564) // '1819'
 * @example formatValue(80000) // '8e+4'
 */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return trimExp(v.toExponential(2));
  return String(Number(v.toPrecision(4)));
}

/** '8.00e+4' -> '8e+4', '1.50e-5' -> '1.5e-5'. */
function trimExp(s: string): string {
  return s.replace(/\.?0+e/, 'e');
}

/** Pixel coordinates in the output: two decimals are far below what a screen can show. */
function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Rough width of a label at font-size 12 in a sans-serif face, for layout only. */
const CHAR_W = 7.6;

interface Axis {
  /** Data value -> position along the axis in [0, 1]. */
  scale: (v: number) => number;
  ticks: { value: number; label: string }[];
  /** Domain in data units (the lowest value for a bar's base). */
  lo: number;
  hi: number;
}

/**
 * 1, 2 or 5 times a power of ten, the smallest at least `raw`: tick steps people can read at a glance.
 */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/**
 * A linear axis over [min, max] extended to whole steps, with about `target` ticks. A degenerate range
 * (one value) is padded so the data sits mid-axis; `integer` keeps steps >= 1 (layer indices).
 */
function linearAxis(min: number, max: number, opts: { target?: number; integer?: boolean } = {}): Axis {
  if (!(max > min)) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  let step = niceStep((max - min) / (opts.target ?? 6));
  if (opts.integer) step = Math.max(1, step);
  // Integer multiples of the step, rounded to 12 digits, so labels never read 0.30000000000000004.
  const k0 = Math.floor(min / step + 1e-9);
  const k1 = Math.ceil(max / step - 1e-9);
  const lo = k0 * step;
  const hi = k1 * step;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const big = Math.max(Math.abs(lo), Math.abs(hi)) >= 1e5;
  const ticks: Axis['ticks'] = [];
  for (let k = k0; k <= k1; k++) {
    const value = Number((k * step).toPrecision(12));
    ticks.push({ value, label: big && value !== 0 ? trimExp(value.toExponential(1)) : value.toFixed(decimals) });
  }
  return { scale: (v) => (v - lo) / (hi - lo), ticks, lo, hi };
}

/** 10^e written the way people read it: 0.001 ... 10000 in full, exponent notation beyond. */
function powerLabel(e: number): string {
  return e >= -3 && e <= 4 ? String(Number(`1e${e}`)) : `1e${e}`;
}

/**
 * A log axis over whole decades covering [min, max] (both > 0), ticks at powers of ten (every n-th
 * decade when there are more than 10). `bars`: a minimum exactly on a power of ten gets one more decade
 * below it, or its bar would have no height.
 */
function logAxis(min: number, max: number, bars = false): Axis {
  let e0 = Math.floor(Math.log10(min) + 1e-12);
  let e1 = Math.ceil(Math.log10(max) - 1e-12);
  if (bars && Number(`1e${e0}`) >= min) e0 -= 1;
  if (e1 <= e0) e1 = e0 + 1;
  const stride = Math.ceil((e1 - e0) / 10);
  const ticks: Axis['ticks'] = [];
  for (let e = e0; e <= e1; e += stride) ticks.push({ value: Number(`1e${e}`), label: powerLabel(e) });
  const l0 = e0;
  const l1 = e1;
  return { scale: (v) => (Math.log10(v) - l0) / (l1 - l0), ticks, lo: Number(`1e${e0}`), hi: Number(`1e${e1}`) };
}

/** Whether a y value can be drawn on this axis kind. */
function drawable(y: number, logY: boolean): boolean {
  return Number.isFinite(y) && (!logY || y > 0);
}

/** Min and max of finite values; undefined when there are none. */
function extent(values: Iterable<number>): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : undefined;
}

/** The y axis covering data values and reference lines (the floor must be visible, not off-chart). */
function yAxisFor(values: number[], logY: boolean, bars: boolean): Axis {
  const e = extent(values.filter((v) => drawable(v, logY)));
  if (logY) return e ? logAxis(e[0], e[1], bars) : logAxis(1, 10, bars);
  if (!e) return linearAxis(0, 1);
  // Bars grow from zero, so zero must be on the axis.
  return bars ? linearAxis(Math.min(0, e[0]), Math.max(0, e[1])) : linearAxis(e[0], e[1]);
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
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect class="background" x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text class="title" x="${px(width / 2)}" y="22" text-anchor="middle" font-size="15" font-weight="bold">` +
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
  out.push(`<line class="axis y" x1="${px(f.x0)}" y1="${px(f.y0)}" x2="${px(f.x0)}" y2="${px(f.y1)}" stroke="#333333"/>`);
  const cy = (f.y0 + f.y1) / 2;
  out.push(
    `<text class="axis-label y" x="16" y="${px(cy)}" text-anchor="middle" transform="rotate(-90 16 ${px(cy)})">` +
      `${escapeXml(yLabel)}</text>`,
  );
  return out;
}

/** Dashed reference lines with their labels at the right end, above the line. */
function hLinesSvg(lines: readonly HLine[], axis: Axis, f: Frame, logY: boolean): string[] {
  const out: string[] = [];
  for (const h of lines) {
    if (!drawable(h.y, logY)) continue;
    const y = f.y1 - axis.scale(h.y) * (f.y1 - f.y0);
    out.push(
      `<line class="hline" data-y="${h.y}" x1="${px(f.x0)}" y1="${px(y)}" x2="${px(f.x1)}" y2="${px(y)}" ` +
        `stroke="#555555" stroke-dasharray="6 4"/>`,
      // A white halo keeps the label readable where it crosses a series or a bar.
      `<text class="hline-label" x="${px(f.x1 - 4)}" y="${px(y - 4)}" text-anchor="end" fill="#555555" ` +
        `stroke="#ffffff" stroke-width="3" paint-order="stroke">` +
        `${escapeXml(h.label)}</text>`,
    );
  }
  return out;
}

function noDataSvg(f: Frame): string {
  return (
    `<text class="no-data" x="${px((f.x0 + f.x1) / 2)}" y="${px((f.y0 + f.y1) / 2)}" text-anchor="middle" ` +
    `fill="#888888">no data</text>`
  );
}

/** A name shortened to `max` characters for display (the full name stays in data-name and a tooltip). */
function shorten(name: string, max: number): string {
  return name.length <= max ? name : `${name.slice(0, Math.max(1, max - 1))}\u2026`;
}

/**
 * A line chart as an SVG document: one polyline per series (distinct colours, with point markers when a
 * series is sparse), linear x axis, linear or log y axis, legend on the right, optional dashed reference
 * lines. Points with non-finite coordinates are skipped (and y <= 0 on a log axis); a series left with
 * no points is listed in the legend as '(no data)' but draws nothing.
 *
 * @example
 *   const svg = lineChart({
 *     title: 'OSP kurtosis', xLabel: 'step', yLabel: 'excess kurtosis', logY: true,
 *     series: [{ name: 'adam', points: [[0, 0.2], [100, 40]] }],
 *     hLines: [{ y: 0.138, label: 'Gaussian floor' }],
 *   });
 */
export function lineChart(opts: LineChartOptions): string {
  const logY = opts.logY ?? false;
  const width = opts.width ?? 720;
  const hLines = opts.hLines ?? [];
  const series = opts.series.map((s) => ({
    name: s.name,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && drawable(y, logY)),
  }));

  // The legend sits in the right margin: a 20 px swatch, 6 px gap, then the name, sized to the longest
  // name but never more than a third of the width (longer names are shortened).
  const longest = Math.max(0, ...series.map((s) => s.name.length + (s.points.length === 0 ? 10 : 0)));
  const legendW = series.length > 0 ? Math.min(Math.ceil(longest * CHAR_W) + 26, Math.floor(width / 3)) : 0;
  const legendX = width - 8 - legendW;
  const maxChars = Math.max(4, Math.floor((legendW - 26) / CHAR_W));
  const top = 40;
  const legendRow = 18;
  const height = Math.max(opts.height ?? 420, top + series.length * legendRow + 20);
  const f: Frame = { x0: 72, x1: series.length > 0 ? legendX - 16 : width - 16, y0: top, y1: height - 52 };

  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = [...series.flatMap((s) => s.points.map(([, y]) => y)), ...hLines.map((h) => h.y)];
  const xe = extent(xs);
  const xAxis = xe ? linearAxis(xe[0], xe[1], { integer: xs.every(Number.isInteger) }) : linearAxis(0, 1);
  const yAxis = yAxisFor(ys, logY, false);
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
    `<text class="axis-label x" x="${px((f.x0 + f.x1) / 2)}" y="${px(height - 12)}" text-anchor="middle">` +
      `${escapeXml(opts.xLabel)}</text>`,
  );
  if (xs.length === 0) out.push(noDataSvg(f));

  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const color = seriesColor(i);
    const name = escapeXml(s.name);
    const coords = s.points.map(([x, y]) => `${px(X(x))},${px(Y(y))}`).join(' ');
    out.push(
      `<polyline class="series" data-name="${name}" fill="none" stroke="${color}" stroke-width="1.8" ` +
        `stroke-linejoin="round" points="${coords}"><title>${name}</title></polyline>`,
    );
    // Sparse series (a few Hessian measurements, one point per layer) are unreadable as bare lines;
    // a single point draws no line at all.
    if (s.points.length <= 20) {
      const dots = s.points.map(([x, y]) => `<circle cx="${px(X(x))}" cy="${px(Y(y))}" r="3" fill="${color}"/>`);
      out.push(`<g class="markers" data-name="${name}">${dots.join('')}</g>`);
    }
  });

  // Reference lines after the series: their haloed labels stay readable where a series runs along them.
  out.push(...hLinesSvg(hLines, yAxis, f, logY));

  series.forEach((s, i) => {
    const y = top + 8 + i * legendRow;
    const x = legendX;
    const label = s.points.length === 0 ? `${shorten(s.name, maxChars - 10)} (no data)` : shorten(s.name, maxChars);
    out.push(
      `<g class="legend-entry" data-name="${escapeXml(s.name)}"><title>${escapeXml(s.name)}</title>` +
        `<line x1="${px(x)}" y1="${px(y)}" x2="${px(x + 20)}" y2="${px(y)}" stroke="${seriesColor(i)}" stroke-width="3"/>` +
        `<text x="${px(x + 26)}" y="${px(y + 4)}">${escapeXml(label)}</text></g>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * A bar chart as an SVG document: one bar per entry, labelled underneath (rotated when the labels are
 * long) and with its value on top; linear (from zero) or log y axis (from the bottom decade); optional
 * dashed reference lines. A non-finite value, or a non-positive one on a log axis, gets no rectangle and
 * an 'n/a' mark.
 *
 * @example
 *   const svg = barChart({
 *     title: 'W4A4KV4 perplexity ratio', yLabel: 'quantized / 16-bit perplexity', logY: true,
 *     bars: [{ label: 'adam', value: 7000 }, { label: 'osp', value: 1.45 }],
 *     hLines: [{ y: 1, label: 'no gap' }],
 *   });
 */
export function barChart(opts: BarChartOptions): string {
  const logY = opts.logY ?? false;
  const width = opts.width ?? 720;
  const hLines = opts.hLines ?? [];
  const n = opts.bars.length;
  const x1 = width - 16;
  // Labels wider than their slot are rotated; the margins grow to fit them (up to 40 characters).
  const longest = Math.max(0, ...opts.bars.map((b) => b.label.length));
  let x0 = 72;
  let slot = n > 0 ? (x1 - x0) / n : x1 - x0;
  const rotate = longest * CHAR_W > slot - 4;
  const maxChars = rotate ? 40 : Math.max(3, Math.floor((slot - 4) / CHAR_W));
  if (rotate) {
    // A label rotated by -35 degrees reaches cos(35) of its length to the left of its bar's centre.
    x0 = Math.max(x0, Math.min(Math.ceil(Math.min(longest, maxChars) * CHAR_W * 0.82 - slot / 2 + 8), width / 3));
    slot = (x1 - x0) / n;
  }
  const labelDepth = rotate ? Math.ceil(Math.min(longest, maxChars) * CHAR_W * 0.6) + 16 : 22;
  const height = Math.max(opts.height ?? 420, 40 + 120 + labelDepth + 30);
  const f: Frame = { x0, x1, y0: 40, y1: height - labelDepth - 30 };

  const yAxis = yAxisFor([...opts.bars.map((b) => b.value), ...hLines.map((h) => h.y)], logY, true);
  const Y = (v: number) => f.y1 - yAxis.scale(v) * (f.y1 - f.y0);
  // Bars start at zero on a linear axis and at the bottom of the lowest decade on a log axis.
  const base = logY ? yAxis.lo : 0;

  const out = header(width, height, opts.title);
  out.push(...yAxisSvg(yAxis, f, opts.yLabel));
  out.push(`<line class="axis x" x1="${px(f.x0)}" y1="${px(f.y1)}" x2="${px(f.x1)}" y2="${px(f.y1)}" stroke="#333333"/>`);
  if (n === 0) out.push(noDataSvg(f));
  opts.bars.forEach((b, i) => {
    const cx = f.x0 + (i + 0.5) * slot;
    const bw = Math.max(2, Math.min(slot * 0.7, 80));
    const label = escapeXml(b.label);
    const shown = escapeXml(shorten(b.label, maxChars));
    if (drawable(b.value, logY)) {
      const ya = Y(b.value);
      const yb = Y(base);
      const top = Math.min(ya, yb);
      out.push(
        `<rect class="bar" data-label="${label}" data-value="${b.value}" x="${px(cx - bw / 2)}" y="${px(top)}" ` +
          `width="${px(bw)}" height="${px(Math.abs(yb - ya))}" fill="${seriesColor(i)}"><title>${label}: ` +
          `${formatValue(b.value)}</title></rect>`,
        `<text class="bar-value" x="${px(cx)}" y="${px(top - 5)}" text-anchor="middle">${formatValue(b.value)}</text>`,
      );
    } else {
      out.push(
        `<text class="bar-missing" data-label="${label}" x="${px(cx)}" y="${px(f.y1 - 6)}" text-anchor="middle" ` +
          `fill="#888888">n/a</text>`,
      );
    }
    const ly = f.y1 + 16;
    out.push(
      rotate
        ? `<text class="bar-label" x="${px(cx)}" y="${px(ly)}" text-anchor="end" ` +
            `transform="rotate(-35 ${px(cx)} ${px(ly)})">${shown}</text>`
        : `<text class="bar-label" x="${px(cx)}" y="${px(ly)}" text-anchor="middle">${shown}</text>`,
    );
  });
  out.push(...hLinesSvg(hLines, yAxis, f, logY));
  out.push('</svg>');
  return out.join('\n') + '\n';
}
