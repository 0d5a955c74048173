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
//
// This file re-exports the public API; the code lives in svg_parts.ts (palette, escaping, axes, legend,
// notes: the pieces both charts use), svg_line.ts (lineChart) and svg_bar.ts (barChart).
export { chooseScale, formatValue } from './axes.ts';
export { escapeXml, seriesColor, type HLine, type YScale } from './svg_parts.ts';
export { lineChart, type LineChartOptions, type Series } from './svg_line.ts';
export { barChart, type Bar, type BarChartOptions } from './svg_bar.ts';
