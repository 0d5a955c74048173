/**
 * The SVG pieces the charts of svg.ts are built from: the palette and XML escaping, the layout
 * constants, the document header, the y axis, reference lines, notes and captions under the plot,
 * edge markers for values that cannot be drawn, and the legend.
 */
import { chooseScale, drawable, formatValue, type Axis, type Scale } from './axes.ts';

/** A dashed horizontal reference line across the plot, e.g. the Gaussian floor of the kurtosis estimator. */
export interface HLine {
  y: number;
  label: string;
}

/** 'auto': log when the values are all positive and span more than 1.5 decades, else linear. */
export type YScale = Scale | 'auto';

/**
 * Colour-blind-safe categorical palette (Okabe-Ito, without its yellow, which vanishes on white, plus
 * a few Tableau colours); beyond it, hues spaced by the golden angle stay distinct from each other.
 */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#56B4E9', '#E69F00', '#000000', '#8C564B', '#7F7F7F', '#BCBD22'];

/**
 * The colour of series i: the palette first, then golden-angle hues.
 * @example seriesColor(0) // '#0072B2'
 */
export function seriesColor(i: number): string {
  if (i < PALETTE.length) return PALETTE[i]!;
  const hue = Math.round(((i - PALETTE.length) * 137.508) % 360);
  return `hsl(${hue}, 65%, 42%)`;
}

/** The characters XML 1.0 forbids in a document: C0 controls other than tab, newline, carriage return; U+FFFE, U+FFFF. */
// eslint-disable-next-line no-control-regex -- matching these control characters is the point of the pattern
const XML_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/**
 * Escapes text for XML character data and attribute values (double- or single-quoted). Characters XML
 * 1.0 forbids (C0 controls other than tab, newline, carriage return) become U+FFFD, so a stray byte in
 * a trial name cannot make the whole file unreadable.
 * @example escapeXml('a<b&c') // 'a&lt;b&amp;c'
 */
export function escapeXml(text: string): string {
  return text
    .replace(XML_FORBIDDEN, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Pixel coordinates in the output: two decimals are far below what a screen can show. */
export function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Rough width of a label at font-size 12 in a sans-serif face (DejaVu Sans is the widest common one). */
const CHAR_W = 7.4;
export const textWidth = (s: string) => s.length * CHAR_W;

/** Left margin (y tick labels and the rotated y axis label). */
export const LEFT = 76;
export const TOP = 40;
export const LEGEND_ROW = 18;
export const NOTE_ROW = 16;
const GREY = '#666666';
/** Fill opacity of a series' band: the line stays readable on top of it, overlapping bands stay apart. */
export const BAND_OPACITY = 0.18;

export function resolveScale(opts: { yScale?: YScale; logY?: boolean }, values: readonly number[]): Scale {
  const s = opts.yScale ?? (opts.logY ? 'log' : 'linear');
  return s === 'auto' ? chooseScale(values) : s;
}

/** Plot rectangle in pixels. */
export interface Frame {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

export function header(width: number, height: number, title: string): string[] {
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
export function yAxisSvg(axis: Axis, f: Frame, yLabel: string): string[] {
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
export function hLinesSvg(lines: readonly HLine[], axis: Axis, f: Frame, labels = true, avoid: readonly [number, number][] = []): string[] {
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
export function sampleCurves(curves: readonly (readonly [number, number])[][]): [number, number][] {
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

export function noDataSvg(f: Frame): string {
  return (
    `<text class="no-data" x="${px((f.x0 + f.x1) / 2)}" y="${px((f.y0 + f.y1) / 2)}" text-anchor="middle" ` +
    `fill="#888888">no data</text>`
  );
}

/** Notes under the plot (values that could not be drawn), one line each, ending at `bottom`. */
export function notesSvg(notes: readonly string[], bottom: number): string[] {
  return notes.map(
    (n, i) =>
      `<text class="log-note" x="${LEFT}" y="${px(bottom - (notes.length - 1 - i) * NOTE_ROW)}" fill="${GREY}">${escapeXml(n)}</text>`,
  );
}

/** Caption lines under the plot, above the notes (which end at `bottom`). */
export function captionSvg(captions: readonly string[], notes: number, bottom: number): string[] {
  return captions.map(
    (c, i) =>
      `<text class="caption" x="${LEFT}" y="${px(bottom - (notes + captions.length - 1 - i) * NOTE_ROW)}" fill="${GREY}">` +
      `${escapeXml(c)}</text>`,
  );
}

/** Text of the note for values a chart could not draw; undefined when there are none. */
export function droppedNotes(nonPositive: number, nonFinite: number, hLinesDropped: readonly HLine[]): string[] {
  const notes: string[] = [];
  const values = (n: number) => `${n} value${n === 1 ? '' : 's'}`;
  if (nonPositive > 0) notes.push(`\u25BC ${values(nonPositive)} \u2264 0 cannot be drawn on the log axis (marked at the bottom edge)`);
  if (nonFinite > 0) notes.push(`\u00D7 ${values(nonFinite)} not finite (NaN or infinite, e.g. a diverged loss), marked at the top edge`);
  for (const h of hLinesDropped) notes.push(`reference line "${h.label}" at ${formatValue(h.y)} is off the log axis`);
  return notes;
}

/** A downward triangle (value below a log axis) or a cross (non-finite value) at an edge of the plot. */
export function edgeMarker(kind: 'below' | 'nonfinite', x: number, y: number, color: string, name: string): string {
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
export function legendLayout(labels: readonly string[], width: number): LegendLayout {
  const entryW = Math.ceil(Math.max(0, ...labels.map(textWidth))) + 28;
  if (labels.length === 0) return { place: 'right', entryW: 0, cols: 1, rows: 0 };
  if (entryW <= width * 0.34) return { place: 'right', entryW, cols: 1, rows: labels.length };
  const cols = Math.max(1, Math.floor((width - LEFT - 16 + 18) / (entryW + 18)));
  return { place: 'below', entryW, cols, rows: Math.ceil(labels.length / cols) };
}

export function legendEntry(name: string, label: string, color: string, x: number, y: number, dashed = false, band = false): string {
  return (
    `<g class="legend-entry" data-name="${escapeXml(name)}"><title>${escapeXml(name)}</title>` +
    (band ? `<rect x="${px(x)}" y="${px(y - 6)}" width="22" height="12" fill="${color}" fill-opacity="${BAND_OPACITY}"/>` : '') +
    `<line x1="${px(x)}" y1="${px(y)}" x2="${px(x + 22)}" y2="${px(y)}" stroke="${color}" stroke-width="3"` +
    `${dashed ? ' stroke-dasharray="4 3"' : ''}/>` +
    `<text x="${px(x + 28)}" y="${px(y + 4)}">${escapeXml(label)}</text></g>`
  );
}
