/**
 * The sweep report's comparison table (the small-scale analogue of the OSP ablation table) and the
 * two places it is written: report.md, and the console at the end of `osp sweep`, fitted to 80
 * columns. Both come from one column model, so they cannot disagree.
 */
import { formatValue } from './axes.ts';
import { abbreviateKeys, formatColumn } from './labels.ts';
import type { SweepReport, TrialReport } from './report.ts';

/** The OSP table's quantization setting, without and with the FFN Hadamard rotation. */
export const W4 = 'w4a4kv4';
export const W4_HAD = 'w4a4kv4_had';

/** A number for the table: '-' when absent, 'NaN' when it was measured non-finite. */
export function cell(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return Number.isNaN(v) ? 'NaN' : formatValue(v);
}

/**
 * Text for a Markdown table cell: HTML-special characters as entities (a name like `a<b` must not open
 * a tag), Markdown punctuation backslash-escaped, '|' so it cannot split the cell.
 */
export function md(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|#]/g, '\\$&')
    .replace(/[\r\n]+/g, ' ');
}

export function unfinishedNote(t: TrialReport): string {
  if (t.steps === null) return 'unfinished: no step logged';
  return `unfinished: step ${t.steps}${t.plannedSteps !== null ? ` of ${t.plannedSteps}` : ''}`;
}

/** One column of the comparison table: plain-text cells, one per trial. */
export interface Column {
  /** Header in report.md. */
  header: string;
  /** Header on the console, where width is short. */
  short: string;
  /** Right-aligned (numbers). */
  numeric: boolean;
  cells: string[];
  /** A grid-value column (the console leaves it out when the row label already shows it). */
  grid?: boolean;
}

/**
 * The comparison table after its first column (the trial): one column per swept grid key (values with
 * one precision per column), the modules, then the measurements and the extra metrics.
 */
export function comparisonColumns(report: SweepReport, extra: readonly string[]): Column[] {
  const trials = report.trials;
  const hasHad = trials.some((t) => t.quant[W4_HAD] !== undefined);
  const hasHessian = trials.some((t) => t.hessianEig1 !== null);
  const fp = (t: TrialReport) => t.quant[W4]?.fpPerplexity ?? t.quant[W4_HAD]?.fpPerplexity ?? null;
  const ratio = (t: TrialReport) => t.quant[W4]?.pplRatio ?? t.quant[W4_HAD]?.pplRatio ?? null;
  const keys = [...new Set(trials.flatMap((t) => Object.keys(t.grid)))];
  const abbr = abbreviateKeys(keys);
  const cols: Column[] = keys.map((k) => {
    const f = formatColumn(trials.map((t) => t.grid[k]));
    return { header: k, short: abbr.get(k)!, numeric: f.numeric, cells: f.cells, grid: true };
  });
  const text = (header: string, short: string, get: (t: TrialReport) => string): Column => ({
    header,
    short,
    numeric: false,
    cells: trials.map(get),
  });
  const num = (header: string, short: string, get: (t: TrialReport) => string): Column => ({
    ...text(header, short, get),
    numeric: true,
  });
  cols.push(
    text('norm', 'norm', (t) => t.modules.norm),
    text('embedding', 'emb', (t) => t.modules.embedding),
    text('optimizer', 'optimizer', (t) => t.modules.optimizer),
    num('excess kurtosis', 'kurtosis', (t) => cell(t.ospKurtosis)),
    num(hasHad ? 'W4A4KV4 PPL (no / with FFN Had)' : 'W4A4KV4 PPL', hasHad ? 'W4 PPL (-/Had)' : 'W4 PPL', (t) => {
      const w4 = cell(t.quant[W4]?.perplexity);
      return hasHad ? `${w4} / ${cell(t.quant[W4_HAD]?.perplexity)}` : w4;
    }),
    num('16-bit PPL', '16b PPL', (t) => cell(fp(t))),
    num('W4A4KV4 / 16-bit', 'W4/16b', (t) => cell(ratio(t))),
    num('val loss', 'val loss', (t) => cell(t.valLoss)),
    num('bits/byte', 'bits/B', (t) => cell(t.bitsPerByte)),
  );
  if (hasHessian) cols.push(num('Hessian eig 1', 'eig1', (t) => cell(t.hessianEig1)));
  for (const m of extra) cols.push(num(m, m, (t) => cell(t.extra[m])));
  return cols;
}

/** The report.md table: the trial name (with a note when unfinished), then every column. */
export function markdownTable(report: SweepReport, extra: readonly string[]): string[] {
  const cols = comparisonColumns(report, extra);
  const head = ['config', ...cols.map((c) => md(c.header))];
  const lines = [`| ${head.join(' | ')} |`, `|---|${cols.map((c) => (c.numeric ? '---:' : '---')).join('|')}|`];
  report.trials.forEach((t, i) => {
    const name = t.finished ? md(t.name) : `${md(t.name)} (${unfinishedNote(t)})`;
    lines.push(`| ${[name, ...cols.map((c) => md(c.cells[i]!))].join(' | ')} |`);
  });
  return lines;
}

/**
 * Plain decimal cells ('0.5', '1.032', '25') padded to one number of decimals ('0.500', '1.032',
 * '25.000'), so a column reads at one precision; a column with any other cell, or with values below
 * 0.01 (which fixed decimals would drown in zeros), stays as it is.
 */
function sameDecimals(cells: readonly string[]): string[] {
  const plain = /^-?\d+(\.\d+)?$/;
  const values = cells.filter((c) => c !== '-');
  if (values.length === 0 || !values.every((c) => plain.test(c))) return [...cells];
  // Values spread over orders of magnitude (0.003 next to 0.3) keep their significant digits instead.
  const nonzero = values.map((c) => Math.abs(Number(c))).filter((v) => v !== 0);
  if (nonzero.length > 0 && Math.min(...nonzero) < 0.01) return [...cells];
  const decimals = Math.max(...values.map((c) => (c.includes('.') ? c.length - c.indexOf('.') - 1 : 0)));
  return cells.map((c) => (c === '-' ? c : Number(c).toFixed(decimals)));
}

const letter = (i: number): string => (i < 26 ? String.fromCharCode(65 + i) : `${letter(Math.floor(i / 26) - 1)}${letter(i % 26)}`);

/** Splits text into lines of at most `width` characters (long words are cut). */
function wrap(text: string, width: number, indent = ''): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    let w = word;
    while ((line === '' ? indent : line).length + (line === '' ? 0 : 1) + w.length > width) {
      if (line !== '') {
        out.push(line);
        line = '';
        continue;
      }
      const room = width - indent.length;
      out.push(indent + w.slice(0, room));
      w = w.slice(room);
    }
    line = line === '' ? indent + w : `${line} ${w}`;
  }
  if (line !== '') out.push(line);
  return out;
}

/**
 * The comparison table as console lines no wider than `width` (default 80): one row per trial, labelled
 * by its variant (or number) when grid columns show its grid point, else by its short legend label;
 * labels longer than 24 characters become letters with a key under the table. Columns with no value in any
 * trial are left out; when the rest is still too wide, the table continues in blocks that repeat the
 * row label.
 * @example for (const line of consoleTable(report)) console.log(line);
 */
export function consoleTable(report: SweepReport, extra: readonly string[] = [], width = 80): string[] {
  const trials = report.trials;
  if (trials.length === 0) return [`${report.title}: no trials yet`];
  let cols = comparisonColumns(report, extra)
    .filter((c) => c.cells.some((v) => v !== '-' && v !== '- / -'))
    .map((c) => (c.numeric && !c.grid ? { ...c, cells: sameDecimals(c.cells) } : c));
  // With grid columns, the row label only needs the variant (or a number, without variants); else the
  // trial's short label.
  const hasGrid = cols.some((c) => c.grid);
  let labels = trials.map((t, i) => (hasGrid ? (t.variant ?? `#${i + 1}`) : t.label));
  const key: string[] = [];
  if (Math.max(...labels.map((l) => l.length)) > 24) {
    labels.forEach((l, i) => key.push(...wrap(`${letter(i)} = ${l}`, width, '    ')));
    labels = labels.map((_, i) => letter(i));
  }
  labels = labels.map((l, i) => (trials[i]!.finished ? l : `${l} *`));
  const first: Column = { header: 'config', short: 'config', numeric: false, cells: labels };
  const widthOf = (c: Column) => Math.max(c.short.length, ...c.cells.map((v) => v.length));
  const pad = (s: string, w: number, right: boolean) => (right ? s.padStart(w) : s.padEnd(w));
  const render = (block: Column[]): string[] => {
    const ws = block.map(widthOf);
    const row = (get: (c: Column) => string) => block.map((c, j) => pad(get(c), ws[j]!, c.numeric)).join('  ').trimEnd();
    return [
      row((c) => c.short),
      ws.map((w) => '-'.repeat(w)).join('  '),
      ...trials.map((_, i) => row((c) => c.cells[i]!)),
    ];
  };
  const out = [`${report.title}: ${trials.length} trial${trials.length === 1 ? '' : 's'}`];
  let rest = cols;
  while (rest.length > 0) {
    const block = [first];
    let used = widthOf(first);
    while (rest.length > 0 && (block.length === 1 || used + 2 + widthOf(rest[0]!) <= width)) {
      used += 2 + widthOf(rest[0]!);
      block.push(rest[0]!);
      rest = rest.slice(1);
    }
    out.push('', ...render(block).map((l) => (l.length > width ? l.slice(0, width) : l)));
  }
  if (cols.length === 0) out.push('', ...render([first]));
  if (key.length > 0) out.push('', ...key);
  if (trials.some((t) => !t.finished)) out.push('', '* unfinished: values are the latest logged');
  return out;
}

/** report.md: the comparison table, notes, the per-layer kurtosis table and the plots. */
export function renderMarkdown(report: SweepReport, extra: readonly string[]): string {
  const trials = report.trials;
  const lines: string[] = [`# ${md(report.title)}`, ''];
  if (trials.length === 0) {
    lines.push('No trial directories (sub-directories with a config.json) yet.', '');
  } else {
    lines.push(...markdownTable(report, extra), '');
  }

  for (const f of report.floors) {
    lines.push(
      `Gaussian noise floor of the kurtosis estimator (d = ${f.hiddenSize}): at this width an outlier-free model ` +
        `measures about ${formatValue(f.gaussianFloor)}, not 0` +
        `${f.source === 'computed' ? ' (computed here: no trial ran the outlier monitor)' : ''}.`,
    );
  }
  const below = trials.filter((t) => t.ospKurtosis !== null && t.gaussianFloor !== null && t.ospKurtosis < t.gaussianFloor);
  if (below.length > 0) {
    lines.push(
      `Below the floor (${below.map((t) => md(t.label)).join(', ')}): these measure less than Gaussian noise ` +
        'of the same width would, i.e. their tokens are lighter-tailed than Gaussian (sub-Gaussian), not "at the floor".',
    );
  }
  if (report.floors.length > 0 || below.length > 0) lines.push('');
  lines.push(
    'Excess kurtosis: the OSP paper\'s estimator at the last outlier-monitor measurement. 16-bit PPL: full ' +
      'precision on the batches of the quantization evaluation, the reference of the W4A4KV4 number; val loss ' +
      'and bits/byte: the last evaluation. "-": not measured (monitor, quantization or Hessian probe off).',
    '',
  );

  const unfinished = trials.filter((t) => !t.finished);
  if (unfinished.length > 0) {
    lines.push(
      `Unfinished (no summary.json; values are the latest logged): ` +
        `${unfinished.map((t) => `${md(t.name)} (${unfinishedNote(t).replace('unfinished: ', '')})`).join(', ')}.`,
      '',
    );
  }
  if (report.pending.length > 0) lines.push(`Not started: ${report.pending.map(md).join(', ')}.`, '');
  const truncated = trials.filter((t) => t.truncatedMetricsLine);
  if (truncated.length > 0) {
    const names = truncated.map((t) => md(t.name)).join(', ');
    lines.push(`A partial last line of metrics.jsonl (a killed process) was skipped for: ${names}.`, '');
  }

  const layered = trials.filter((t) => t.layerKurtosis.length > 0);
  if (layered.length > 0) {
    const L = Math.max(...layered.map((t) => t.layerKurtosis.length));
    const cols = ['config', ...Array.from({ length: L }, (_, i) => `layer ${i}`)];
    lines.push('## OSP kurtosis per layer output (last measurement)', '');
    lines.push(`| ${cols.join(' | ')} |`, `|---|${Array.from({ length: L }, () => '---:').join('|')}|`);
    for (const t of layered) {
      lines.push(`| ${[md(t.name), ...Array.from({ length: L }, (_, i) => cell(t.layerKurtosis[i]))].join(' | ')} |`);
    }
    lines.push('');
  }

  lines.push('## Plots', '');
  const captions: Record<string, string> = {
    'loss.svg': 'training loss',
    'val_loss.svg': 'validation loss',
    'kurtosis.svg': 'OSP excess kurtosis during training',
    'kurtosis_layers.svg': 'OSP kurtosis per layer output',
    'quant_gap.svg': 'W4A4KV4 perplexity ratio',
    'hessian.svg': 'top Hessian eigenvalue',
  };
  for (const p of report.plots) lines.push(`- [${captions[p] ?? p}](${p})`, '', `  ![${captions[p] ?? p}](${p})`, '');
  return lines.join('\n');
}
