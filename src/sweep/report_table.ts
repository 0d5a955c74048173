/**
 * The sweep report's comparison table (the small-scale analogue of the OSP ablation table) and the
 * two places it is written: report.md, and the console at the end of `osp sweep`, fitted to 80
 * columns. Both come from one column model, so they cannot disagree.
 */
import { quantTagName } from '../export/quant/config.ts';
import { formatValue } from './axes.ts';
import { abbreviateKeys, commonQuantBits, formatColumn, shortQuantName, sortQuantTags } from './labels.ts';
import type { SweepReport, TrialReport } from './report.ts';

/** Every quantization tag any trial measured, in sortQuantTags order (legacy, then RTN before GPTQ, ...). */
export function reportQuantTags(trials: readonly TrialReport[]): string[] {
  return sortQuantTags(trials.flatMap((t) => Object.keys(t.quant)));
}

/**
 * Short names of a report's tags (shortQuantName): 'RTN', 'QR+GPTQ', ...; led by the bit widths when
 * the tags do not all share them.
 */
export function shortQuantNames(tags: readonly string[]): Map<string, string> {
  const bits = tags.length > 1 && commonQuantBits(tags) === undefined;
  return new Map(tags.map((t) => [t, shortQuantName(t, { bits })]));
}

/**
 * A trial's full-precision reference: the 16-bit perplexity of its latest quantization measurement
 * (every variant of one measurement shares it), taken from the first tag in `tags` order on a tie.
 */
function fpPerplexity(t: TrialReport, tags: readonly string[]): number | null {
  let best: { step: number; fp: number } | undefined;
  for (const tag of tags) {
    const q = t.quant[tag];
    if (q === undefined || q.fpPerplexity === null) continue;
    const step = q.step ?? -Infinity;
    if (best === undefined || step > best.step) best = { step, fp: q.fpPerplexity };
  }
  return best?.fp ?? null;
}

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
 *
 * Quantization: `16-bit PPL`, then one `<tag in words> / 16-bit` perplexity-ratio column per tag any
 * trial measured (reportQuantTags order; console headers 'RTN/16b', 'QR+GPTQ/16b', ...). With a single
 * tag its perplexity comes first (`<tag in words> PPL`); without any, placeholder columns of '-' keep
 * the table's shape.
 */
export function comparisonColumns(report: SweepReport, extra: readonly string[]): Column[] {
  const trials = report.trials;
  const hasHessian = trials.some((t) => t.hessianEig1 !== null);
  const tags = reportQuantTags(trials);
  const shortNames = shortQuantNames(tags);
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
  );
  if (tags.length === 0) {
    // Quantization off everywhere: the columns stay, empty, so every sweep's table reads the same.
    cols.push(
      num('quantized PPL', 'quant PPL', () => '-'),
      num('16-bit PPL', '16b PPL', () => '-'),
      num('quantized / 16-bit', 'quant/16b', () => '-'),
    );
  } else {
    if (tags.length === 1) {
      const tag = tags[0]!;
      cols.push(num(`${quantTagName(tag)} PPL`, `${shortNames.get(tag)!} PPL`, (t) => cell(t.quant[tag]?.perplexity)));
    }
    cols.push(num('16-bit PPL', '16b PPL', (t) => cell(fpPerplexity(t, tags))));
    for (const tag of tags) {
      cols.push(num(`${quantTagName(tag)} / 16-bit`, `${shortNames.get(tag)!}/16b`, (t) => cell(t.quant[tag]?.pplRatio)));
    }
  }
  cols.push(
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
    .filter((c) => c.cells.some((v) => v !== '-'))
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
      'precision on the batches of the quantization evaluation; each "/ 16-bit" column is the perplexity of one ' +
      'quantization variant (bit widths, weight quantizer, rotation) divided by it. Val loss and bits/byte: the ' +
      'last evaluation. "-": not measured (monitor, quantization or Hessian probe off, or a variant the trial ' +
      'did not evaluate).',
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
    'quant_gap.svg': 'quantized / 16-bit perplexity ratio',
    'hessian.svg': 'top Hessian eigenvalue',
  };
  for (const p of report.plots) lines.push(`- [${captions[p] ?? p}](${p})`, '', `  ![${captions[p] ?? p}](${p})`, '');
  return lines.join('\n');
}
