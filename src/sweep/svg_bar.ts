/**
 * The bar chart of svg.ts: barChart (one bar per entry, with error bars, a base and reference lines).
 */
import { drawable, formatValue, valueAxis } from './axes.ts';
import {
  captionSvg,
  droppedNotes,
  edgeMarker,
  escapeXml,
  header,
  hLinesSvg,
  LEFT,
  noDataSvg,
  notesSvg,
  NOTE_ROW,
  px,
  resolveScale,
  seriesColor,
  textWidth,
  TOP,
  yAxisSvg,
  type Frame,
  type HLine,
  type YScale,
} from './svg_parts.ts';

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
    kind === 'linear' && Math.abs(v) < 1e4 && yAxis.ticks.every((t) => !t.label.includes('e'))
      ? v.toFixed(tickDecimals + 1)
      : formatValue(v);

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
