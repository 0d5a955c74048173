/**
 * The sweep report's comparison table (the small-scale analogue of the OSP ablation table) and the
 * two places it is written: report.md, and the console at the end of `osp sweep`, fitted to 80
 * columns. Both come from one column model, so they cannot disagree. With seeds (trial names with a
 * `seed=N` part) report.md leads with the aggregated table (one row per configuration, every
 * measurement as mean ± half-width of its 95% interval, aggregate.ts) before the per-trial one, and
 * the console shows the aggregated table.
 */
import { quantTagName } from '../quant/config.ts';
import type { ConfigurationReport } from './aggregate.ts';
import { formatValue, trimExp } from './axes.ts';
import { abbreviateKeys, commonQuantBits, formatColumn, hasSeeds, shortQuantName, sortQuantTags } from './labels.ts';
import type { SweepReport, TrialReport } from './report.ts';
import { halfWidth, type Stat } from './stats.ts';

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

/** A configuration whose mean excess kurtosis is below its width's Gaussian floor (sub-Gaussian on average). */
function meanBelowFloor(c: ConfigurationReport): boolean {
  const m = c.stats['outliers/osp_kurtosis']?.mean;
  return m !== null && m !== undefined && c.gaussianFloor !== null && m < c.gaussianFloor;
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
 * One numeric column of the comparison table: how to read it off a trial. The key names it in
 * report.json's per-configuration `stats` (metrics.jsonl names where there is one).
 */
export interface Measure {
  /** 'outliers/osp_kurtosis', 'quant/fp_perplexity', 'quant/<tag>/ppl_ratio', 'eval/loss', ... */
  key: string;
  header: string;
  short: string;
  get: (t: TrialReport) => number | null | undefined;
  /** A column kept only for the table's shape (quantization off everywhere): never has a value. */
  placeholder?: boolean;
}

/**
 * The numeric columns of the comparison table, in table order: excess kurtosis, the quantization
 * columns, val loss, bits/byte, the top Hessian eigenvalue (when any trial measured it), the extra
 * metrics.
 *
 * Quantization: `16-bit PPL`, then one `<tag in words> / 16-bit` perplexity-ratio column per tag any
 * trial measured (reportQuantTags order; console headers 'RTN/16b', 'QR+GPTQ/16b', ...). With a single
 * tag its perplexity comes first (`<tag in words> PPL`); without any, placeholder columns of '-' keep
 * the table's shape.
 */
export function reportMeasures(trials: readonly TrialReport[], extra: readonly string[]): Measure[] {
  const hasHessian = trials.some((t) => t.hessianEig1 !== null);
  const tags = reportQuantTags(trials);
  const shortNames = shortQuantNames(tags);
  const out: Measure[] = [{ key: 'outliers/osp_kurtosis', header: 'excess kurtosis', short: 'kurtosis', get: (t) => t.ospKurtosis }];
  if (tags.length === 0) {
    // Quantization off everywhere: the columns stay, empty, so every sweep's table reads the same.
    const none = () => null;
    out.push(
      { key: 'quant/perplexity', header: 'quantized PPL', short: 'quant PPL', get: none, placeholder: true },
      { key: 'quant/fp_perplexity', header: '16-bit PPL', short: '16b PPL', get: none, placeholder: true },
      { key: 'quant/ppl_ratio', header: 'quantized / 16-bit', short: 'quant/16b', get: none, placeholder: true },
    );
  } else {
    if (tags.length === 1) {
      const tag = tags[0]!;
      out.push({
        key: `quant/${tag}/perplexity`,
        header: `${quantTagName(tag)} PPL`,
        short: `${shortNames.get(tag)!} PPL`,
        get: (t) => t.quant[tag]?.perplexity,
      });
    }
    out.push({ key: 'quant/fp_perplexity', header: '16-bit PPL', short: '16b PPL', get: (t) => fpPerplexity(t, tags) });
    for (const tag of tags) {
      out.push({
        key: `quant/${tag}/ppl_ratio`,
        header: `${quantTagName(tag)} / 16-bit`,
        short: `${shortNames.get(tag)!}/16b`,
        get: (t) => t.quant[tag]?.pplRatio,
      });
    }
  }
  out.push(
    { key: 'eval/loss', header: 'val loss', short: 'val loss', get: (t) => t.valLoss },
    { key: 'eval/bits_per_byte', header: 'bits/byte', short: 'bits/B', get: (t) => t.bitsPerByte },
  );
  if (hasHessian) out.push({ key: 'hessian/eig_1', header: 'Hessian eig 1', short: 'eig1', get: (t) => t.hessianEig1 });
  for (const m of extra) out.push({ key: m, header: m, short: m, get: (t) => t.extra[m] });
  return out;
}

/** The swept grid keys of these rows, in first-seen order; `seed` left out when `seeds` says so. */
function gridKeys(grids: readonly Record<string, unknown>[], withoutSeed = false): string[] {
  return [...new Set(grids.flatMap((g) => Object.keys(g)))].filter((k) => !(withoutSeed && k === 'seed'));
}

/** The module columns (norm, embedding, optimizer) of one trial per row. */
function moduleColumns(rows: readonly TrialReport[]): Column[] {
  const text = (header: string, short: string, get: (t: TrialReport) => string): Column => ({
    header,
    short,
    numeric: false,
    cells: rows.map(get),
  });
  return [
    text('norm', 'norm', (t) => t.modules.norm),
    text('embedding', 'emb', (t) => t.modules.embedding),
    text('optimizer', 'optimizer', (t) => t.modules.optimizer),
  ];
}

/** One column per swept grid key (values with one precision per column). */
function gridColumns(grids: readonly Record<string, unknown>[], keys: readonly string[]): Column[] {
  const abbr = abbreviateKeys(keys);
  return keys.map((k) => {
    const f = formatColumn(grids.map((g) => g[k]));
    return { header: k, short: abbr.get(k)!, numeric: f.numeric, cells: f.cells, grid: true };
  });
}

/**
 * The comparison table after its first column (the trial): one column per swept grid key (values with
 * one precision per column), the modules, then the measurements (reportMeasures) and the extra metrics.
 */
export function comparisonColumns(report: SweepReport, extra: readonly string[]): Column[] {
  const trials = report.trials;
  const grids = trials.map((t) => t.grid);
  const cols = gridColumns(grids, gridKeys(grids));
  cols.push(...moduleColumns(trials));
  for (const m of reportMeasures(trials, extra)) {
    cols.push({ header: m.header, short: m.short, numeric: true, cells: trials.map((t) => cell(m.get(t))) });
  }
  return cols;
}

/**
 * `v` written to the precision of an uncertainty `hw` (> 0): the decimals that show hw's first two
 * significant digits, rounding to tens or hundreds when hw is that large; exponent notation from 1e5
 * or when more than 6 decimals would be needed.
 * @example atPrecision(1.03456, 0.0123) // '1.035'
 * @example atPrecision(1251, 314) // '1250'
 */
export function atPrecision(v: number, hw: number): string {
  if (!Number.isFinite(v)) return String(v);
  const decimals = 1 - Math.floor(Math.log10(hw));
  if (Math.max(Math.abs(v), hw) >= 1e5 || decimals > 6) return trimExp(v.toExponential(2));
  if (decimals >= 0) return v.toFixed(decimals);
  const unit = 10 ** -decimals;
  return (Math.round(v / unit) * unit).toFixed(0);
}

/**
 * A mean with its 95% interval in few characters: 'mean ± half-width', both to the decimals that show
 * the half-width's first two significant digits ('1.035 ± 0.012', '1250 ± 310'); exponent notation
 * for large or tiny values; the mean alone (formatValue) without an interval; '-' when nothing was
 * measured, 'NaN' when a seed measured a non-finite value. `sep` joins the two (' ± ', or '±' on the
 * console).
 * @example formatStat({ n: 3, mean: 1.0346, std: 0.005, ci95: [1.0222, 1.047] }) // '1.035 ± 0.012'
 */
export function formatStat(s: Stat, sep = ' \u00B1 '): string {
  if (s.mean === null) return '-';
  if (Number.isNaN(s.mean)) return 'NaN';
  const hw = halfWidth(s);
  if (hw === null || !Number.isFinite(hw)) return cell(s.mean);
  // No spread (identical seeds, up to rounding): the mean and a zero.
  if (hw <= 1e-12 * Math.abs(s.mean)) return `${formatValue(s.mean)}${sep}0`;
  const exp = Math.max(Math.abs(s.mean), hw) >= 1e5 || 1 - Math.floor(Math.log10(hw)) > 6;
  return `${atPrecision(s.mean, hw)}${sep}${exp ? trimExp(hw.toExponential(1)) : atPrecision(hw, hw)}`;
}

/** The seeds cell of a configuration: '3', or '2 of 3' when some are unfinished or not started. */
export function seedsCell(c: ConfigurationReport): string {
  return c.finished === c.seeds.length ? String(c.finished) : `${c.finished} of ${c.seeds.length}`;
}

/**
 * The aggregated table after its first column (the configuration): `seeds` (finished seeds, 'n of m'
 * when some are not), the grid keys other than the seed, the modules, then every measure as the mean
 * over the finished seeds with its 95% interval (formatStat; a cell measured by fewer seeds than
 * finished adds '(n=2)').
 */
export function aggregatedColumns(report: SweepReport, extra: readonly string[], sep = ' \u00B1 '): Column[] {
  const configs = report.configurations;
  const first = configs.map((c) => report.trials.find((t) => t.name === c.trials[0])!);
  const grids = configs.map((c) => c.grid);
  const cols: Column[] = [{ header: 'seeds', short: 'seeds', numeric: true, cells: configs.map(seedsCell) }];
  cols.push(...gridColumns(grids, gridKeys(grids, true)), ...moduleColumns(first));
  for (const m of reportMeasures(report.trials, extra)) {
    cols.push({
      header: m.header,
      short: m.short,
      numeric: true,
      cells: configs.map((c) => {
        const s = c.stats[m.key];
        if (s === undefined) return '-';
        const text = formatStat(s, sep);
        return s.n > 0 && s.n < c.finished ? `${text} (n=${s.n})` : text;
      }),
    });
  }
  return cols;
}

/**
 * The report.md table: the trial name (with a note when unfinished), then every column. `first`: the
 * header of the name column ('config'; 'trial' under the aggregated table of a multi-seed sweep).
 */
export function markdownTable(report: SweepReport, extra: readonly string[], first = 'config'): string[] {
  const cols = comparisonColumns(report, extra);
  const head = [first, ...cols.map((c) => md(c.header))];
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

/** A row of a console table: its label and what the label needs to know. */
interface ConsoleRow {
  /** Short legend label. */
  label: string;
  variant: string | null;
  /** False: the label gets a '*' (explained under the table). */
  complete: boolean;
}

/**
 * Columns fitted to `width`: columns with no value in any row are left out; a row is labelled by its
 * variant (or number) when grid columns show its grid point, else by its short label; labels longer than
 * 24 characters become letters with a key under the table; when the columns are still too wide, the
 * table continues in blocks that repeat the row label.
 */
function fitTable(rows: readonly ConsoleRow[], columns: readonly Column[], width: number): { table: string[]; key: string[] } {
  const cols = columns
    .filter((c) => c.cells.some((v) => v !== '-'))
    .map((c) => (c.numeric && !c.grid ? { ...c, cells: sameDecimals(c.cells) } : c));
  // With grid columns, the row label only needs the variant (or a number, without variants); else the
  // row's short label.
  const hasGrid = cols.some((c) => c.grid);
  let labels = rows.map((r, i) => (hasGrid ? (r.variant ?? `#${i + 1}`) : r.label));
  const key: string[] = [];
  if (Math.max(...labels.map((l) => l.length)) > 24) {
    labels.forEach((l, i) => key.push(...wrap(`${letter(i)} = ${l}`, width, '    ')));
    labels = labels.map((_, i) => letter(i));
  }
  labels = labels.map((l, i) => (rows[i]!.complete ? l : `${l} *`));
  const first: Column = { header: 'config', short: 'config', numeric: false, cells: labels };
  const widthOf = (c: Column) => Math.max(c.short.length, ...c.cells.map((v) => v.length));
  const pad = (s: string, w: number, right: boolean) => (right ? s.padStart(w) : s.padEnd(w));
  const render = (block: Column[]): string[] => {
    const ws = block.map(widthOf);
    const row = (get: (c: Column) => string) =>
      block
        .map((c, j) => pad(get(c), ws[j]!, c.numeric))
        .join('  ')
        .trimEnd();
    return [row((c) => c.short), ws.map((w) => '-'.repeat(w)).join('  '), ...rows.map((_, i) => row((c) => c.cells[i]!))];
  };
  const table: string[] = [];
  let rest = cols;
  while (rest.length > 0) {
    const block = [first];
    let used = widthOf(first);
    while (rest.length > 0 && (block.length === 1 || used + 2 + widthOf(rest[0]!) <= width)) {
      used += 2 + widthOf(rest[0]!);
      block.push(rest[0]!);
      rest = rest.slice(1);
    }
    table.push('', ...render(block).map((l) => (l.length > width ? l.slice(0, width) : l)));
  }
  if (cols.length === 0) table.push('', ...render([first]));
  return { table, key };
}

/**
 * The comparison table as console lines no wider than `width` (default 80): one row per trial, labelled
 * by its variant (or number) when grid columns show its grid point, else by its short legend label;
 * labels longer than 24 characters become letters with a key under the table. Columns with no value in any
 * trial are left out; when the rest is still too wide, the table continues in blocks that repeat the
 * row label. With seeds (trial names with a `seed=N` part) it is the aggregated table instead: one row
 * per configuration, `seeds` the finished ones, every measurement as mean±half-width of its 95%
 * interval (aggregatedColumns).
 * @example for (const line of consoleTable(report)) console.log(line);
 */
export function consoleTable(report: SweepReport, extra: readonly string[] = [], width = 80): string[] {
  const trials = report.trials;
  if (trials.length === 0) return [`${report.title}: no trials yet`];
  if (hasSeeds(trials.map((t) => t.name))) return aggregatedConsoleTable(report, extra, width);
  const rows = trials.map((t) => ({ label: t.label, variant: t.variant, complete: t.finished }));
  const { table, key } = fitTable(rows, comparisonColumns(report, extra), width);
  const out = [`${report.title}: ${trials.length} trial${trials.length === 1 ? '' : 's'}`, ...table];
  if (key.length > 0) out.push('', ...key);
  if (trials.some((t) => !t.finished)) out.push('', '* unfinished: values are the latest logged');
  return out;
}

function aggregatedConsoleTable(report: SweepReport, extra: readonly string[], width: number): string[] {
  const configs = report.configurations;
  const rows = configs.map((c) => ({ label: c.label, variant: c.variant, complete: c.finished === c.seeds.length }));
  const { table, key } = fitTable(rows, aggregatedColumns(report, extra, '\u00B1'), width);
  const n = report.trials.length;
  const out = [
    ...wrap(`${report.title}: ${configs.length} configuration${configs.length === 1 ? '' : 's'}, ${n} trial${n === 1 ? '' : 's'}`, width),
    ...table,
  ];
  if (key.length > 0) out.push('', ...key);
  out.push(
    '',
    ...wrap(
      'mean\u00B1h: mean over the finished seeds \u00B1 half-width h of its 95% confidence interval (t, n-1 dof); ' +
        'one seed: its value alone',
      width,
    ),
  );
  if (rows.some((r) => !r.complete)) {
    out.push(...wrap('* not every seed finished (seeds: finished of all): unfinished seeds are left out of the means', width));
  }
  return out;
}

/**
 * The aggregated report.md table of a multi-seed sweep: one row per configuration, `seeds` (finished,
 * 'n of m' when not all), its grid point without the seed, the modules, every measurement as
 * 'mean ± half-width' of its 95% interval over the finished seeds.
 */
export function aggregatedMarkdownTable(report: SweepReport, extra: readonly string[]): string[] {
  const cols = aggregatedColumns(report, extra);
  const head = ['config', ...cols.map((c) => md(c.header))];
  const lines = [`| ${head.join(' | ')} |`, `|---|${cols.map((c) => (c.numeric ? '---:' : '---')).join('|')}|`];
  report.configurations.forEach((c, i) => {
    lines.push(`| ${[md(c.name), ...cols.map((col) => md(col.cells[i]!))].join(' | ')} |`);
  });
  return lines;
}

/** The aggregated section of report.md: the table, how to read it, and which seeds it leaves out. */
function aggregatedSection(report: SweepReport, extra: readonly string[]): string[] {
  const lines = ['## Mean over seeds', '', ...aggregatedMarkdownTable(report, extra), ''];
  lines.push(
    "Each cell: the mean over the configuration's finished seeds \u00B1 the half-width of its 95% confidence " +
      "interval (Student's t with n \u2212 1 degrees of freedom); a single finished seed shows its value alone, " +
      '"(n=2)" marks a column fewer finished seeds measured. Per configuration, report.json (`configurations`) ' +
      'has n, mean, standard deviation and the interval of every column; `osp sweep report DIR --compare A,B` ' +
      'gives the difference of two configurations with its interval.',
    '',
  );
  const partial = report.configurations.filter((c) => c.finished < c.seeds.length);
  if (partial.length > 0) {
    lines.push(
      `Left out of the means (unfinished or not started): ` +
        `${partial.map((c) => `${md(c.name)} (${c.finished} of ${c.seeds.length} seeds finished)`).join(', ')}.`,
      '',
    );
  }
  return lines;
}

/** report.md: the comparison table, notes, the per-layer kurtosis table and the plots. */
export function renderMarkdown(report: SweepReport, extra: readonly string[]): string {
  const trials = report.trials;
  const seeded = hasSeeds(trials.map((t) => t.name));
  const lines: string[] = [`# ${md(report.title)}`, ''];
  if (trials.length === 0) {
    lines.push('No trial directories (sub-directories with a config.json) yet.', '');
  } else if (seeded) {
    lines.push(...aggregatedSection(report, extra), '## Per trial', '', ...markdownTable(report, extra, 'trial'), '');
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
    // With seeds the trials' legend labels hold commas ('osp, seed=1'): their names list them clearly.
    lines.push(
      `Below the floor (${below.map((t) => md(seeded ? t.name : t.label)).join(', ')}): these measure less than Gaussian noise ` +
        'of the same width would, i.e. their tokens are lighter-tailed than Gaussian (sub-Gaussian), not "at the floor".',
    );
  }
  const belowMean = seeded ? report.configurations.filter((c) => meanBelowFloor(c)) : [];
  if (belowMean.length > 0) {
    const whole = belowMean.filter((c) => {
      const ci = c.stats['outliers/osp_kurtosis']?.ci95;
      return ci !== null && ci !== undefined && ci[1] < c.gaussianFloor!;
    });
    lines.push(
      `Mean below the floor (${belowMean.map((c) => md(c.label)).join(', ')}): on average over their seeds these ` +
        'measure less than Gaussian noise of the same width would: below floor (sub-Gaussian), not "at the floor"' +
        (whole.length > 0 ? `; the whole 95% interval is below it for ${whole.map((c) => md(c.label)).join(', ')}.` : '.'),
    );
  }
  if (report.floors.length > 0 || below.length > 0 || belowMean.length > 0) lines.push('');
  lines.push(
    "Excess kurtosis: the OSP paper's estimator at the last outlier-monitor measurement. 16-bit PPL: full " +
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
    const cols = [seeded ? 'trial' : 'config', ...Array.from({ length: L }, (_, i) => `layer ${i}`)];
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
  if (seeded) {
    for (const p of ['loss.svg', 'val_loss.svg', 'kurtosis.svg', 'kurtosis_layers.svg', 'hessian.svg']) {
      captions[p] = `${captions[p]} (mean over seeds, band \u00B1 one standard deviation)`;
    }
    captions['quant_gap.svg'] = `${captions['quant_gap.svg']} (mean over seeds, error bar: 95% confidence interval)`;
  }
  for (const p of report.plots) lines.push(`- [${captions[p] ?? p}](${p})`, '', `  ![${captions[p] ?? p}](${p})`, '');
  return lines.join('\n');
}
