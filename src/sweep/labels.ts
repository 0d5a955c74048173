/**
 * Names people read in the sweep report: metric keys as axis titles with units ('train/loss' ->
 * 'training loss (nats/byte)'), trials as short legend labels that keep what differs between them
 * ('adam__optimizer.adamw.lr=0.003' -> 'adam, lr=3e-3'), the swept keys of a grid, and table columns
 * of numbers formatted with one precision per column.
 */
import { trimExp } from './axes.ts';

/** A hidden-state tap ('layers.3.out') in words. */
function tapName(tap: string): string {
  if (tap === 'embed') return 'embedding output';
  if (tap === 'final_norm') return 'final norm output';
  const m = /^layers\.(\d+)\.(attn_in|ffn_in|out)$/.exec(tap);
  if (!m) return tap;
  const where = { attn_in: 'attention input', ffn_in: 'FFN input', out: 'output' }[m[2] as 'attn_in' | 'ffn_in' | 'out'];
  return `layer ${m[1]} ${where}`;
}

/** A quantization tag ('w4a4kv4_had') in words: 'W4A4KV4 + FFN Hadamard'. */
export function quantName(tag: string): string {
  const had = tag.endsWith('_had');
  const base = (had ? tag.slice(0, -4) : tag).toUpperCase();
  return had ? `${base} + FFN Hadamard` : base;
}

const FIXED: Record<string, string> = {
  step: 'training step',
  'train/loss': 'training loss (nats/byte)',
  'train/grad_norm': 'gradient norm',
  'train/lr/muon': 'Muon learning rate',
  'train/lr/adamw': 'AdamW learning rate',
  'train/skipped_total': 'skipped updates (count)',
  'eval/loss': 'validation loss (nats/byte)',
  'val/loss': 'validation loss (nats/byte)',
  'eval/perplexity': 'validation perplexity',
  'eval/bits_per_byte': 'validation bits per byte',
  'throughput/tokens_per_s': 'throughput (tokens/s)',
  'throughput/step_ms': 'step time (ms)',
  'update/muon_rms': 'Muon update RMS',
  'update/adamw_rms': 'AdamW update RMS',
  'outliers/osp_kurtosis': 'excess kurtosis (OSP estimator)',
  'outliers/gaussian_floor': 'Gaussian floor of the kurtosis estimator',
  'quant/fp_loss': '16-bit loss (nats/byte)',
  'hessian/measured_at_step': 'step of the measured weights',
  'hessian/outliers': 'Hessian outlier eigenvalues (count)',
  'hessian/gap_ratio': 'Hessian gap ratio',
  'hessian/bulk_edge': 'Hessian bulk edge',
  'hessian/trace': 'Hessian trace',
  'hessian/seconds': 'Hessian probe time (s)',
};

/**
 * A metric key as an axis title with its unit; unknown keys come back unchanged.
 * @example metricLabel('train/loss') // 'training loss (nats/byte)'
 * @example metricLabel('quant/w4a4kv4/ppl_ratio') // 'W4A4KV4 / 16-bit perplexity'
 * @example metricLabel('outliers/layers.2.out/osp_kurtosis') // 'excess kurtosis, layer 2 output'
 */
export function metricLabel(key: string): string {
  const fixed = FIXED[key];
  if (fixed !== undefined) return fixed;
  let m = /^outliers\/(.+)\/(osp_kurtosis|channel_kurtosis|max_median|max_abs|channel_rms)$/.exec(key);
  if (m) {
    const what = {
      osp_kurtosis: 'excess kurtosis',
      channel_kurtosis: 'channel kurtosis',
      max_median: 'max / median |activation|',
      max_abs: 'max |activation|',
      channel_rms: 'channel RMS',
    }[m[2] as 'osp_kurtosis'];
    return `${what}, ${tapName(m[1]!)}`;
  }
  m = /^quant\/(.+)\/(ppl_ratio|perplexity|loss)$/.exec(key);
  if (m) {
    const q = quantName(m[1]!);
    return m[2] === 'ppl_ratio' ? `${q} / 16-bit perplexity` : m[2] === 'perplexity' ? `${q} perplexity` : `${q} loss (nats/byte)`;
  }
  m = /^hessian\/eig_(\d+)$/.exec(key);
  if (m) return m[1] === '1' ? 'top Hessian eigenvalue \u03BB1' : `Hessian eigenvalue \u03BB${m[1]}`;
  return key;
}

/**
 * A number in few characters for a legend: exponent notation below 0.01 and from 1e5 ('3e-3', not
 * '0.003'), else up to 4 significant digits.
 * @example compactNumber(0.003) // '3e-3'
 * @example compactNumber(0.01) // '0.01'
 */
export function compactNumber(v: number): string {
  if (!Number.isFinite(v) || v === 0) return String(v);
  const a = Math.abs(v);
  if (a < 1e-2 || a >= 1e5) return trimExp(v.toExponential(3)).replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

/** A trial name split into its variant and grid point, as expandTrials builds it. */
export interface ParsedTrialName {
  variant?: string;
  /** Dotted config path -> the value as written in the name. */
  params: [string, string][];
}

const PARAM = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)=(.*)$/;

/**
 * Splits `<variant>__<key>=<value>__...` into its parts; undefined for a name of any other shape (a
 * directory renamed by hand, a sweep run elsewhere).
 * @example parseTrialName('adam__optimizer.adamw.lr=0.003') // { variant: 'adam', params: [['optimizer.adamw.lr', '0.003']] }
 */
export function parseTrialName(name: string): ParsedTrialName | undefined {
  const parts = name.split('__');
  const out: ParsedTrialName = { params: [] };
  for (const [i, p] of parts.entries()) {
    const m = PARAM.exec(p);
    if (m) out.params.push([m[1]!, m[2]!]);
    else if (i === 0 && p !== '') out.variant = p;
    else return undefined;
  }
  return out;
}

/**
 * The swept keys of a set of trials: every dotted path that appears as `key=value` in the trial
 * names, in first-seen order. [] when any name does not parse.
 */
export function sweptKeys(names: readonly string[]): string[] {
  const keys: string[] = [];
  for (const n of names) {
    const p = parseTrialName(n);
    if (!p) return [];
    for (const [k] of p.params) if (!keys.includes(k)) keys.push(k);
  }
  return keys;
}

/**
 * Shortest distinct suffixes of dotted keys: 'optimizer.adamw.lr' -> 'lr', unless another key also
 * ends in 'lr' ('adamw.lr' and 'muon.lr' then).
 */
export function abbreviateKeys(keys: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of keys) {
    const parts = k.split('.');
    let n = 1;
    const suffix = (key: string, len: number) => key.split('.').slice(-len).join('.');
    while (n < parts.length && keys.some((o) => o !== k && suffix(o, n) === suffix(k, n))) n++;
    out.set(k, suffix(k, n));
  }
  return out;
}

/** A grid value from a trial name, as a legend shows it: numbers compact, anything else as written. */
function valueText(raw: string): string {
  const v = Number(raw);
  return raw.trim() !== '' && Number.isFinite(v) ? compactNumber(v) : raw;
}

/**
 * Legend labels for trials that tell them apart in few characters: the variant when variants differ,
 * then `key=value` for each grid key whose value differs, with keys shortened to their last component
 * and numbers written compactly. Names of another shape, and any label that would not be unique, stay
 * as they are (never truncated).
 * @example shortLabels(['adam__optimizer.adamw.lr=0.003', 'adam__optimizer.adamw.lr=0.01', 'osp__optimizer.adamw.lr=0.003'])
 *   // ['adam, lr=3e-3', 'adam, lr=0.01', 'osp, lr=3e-3']
 */
export function shortLabels(names: readonly string[]): string[] {
  const parsed = names.map(parseTrialName);
  if (names.length < 2 || parsed.some((p) => p === undefined)) return [...names];
  const ps = parsed as ParsedTrialName[];
  const variants = new Set(ps.map((p) => p.variant ?? ''));
  const keys = sweptKeys(names);
  const valueOf = (p: ParsedTrialName, k: string) => p.params.find(([key]) => key === k)?.[1];
  const varying = keys.filter((k) => new Set(ps.map((p) => valueOf(p, k) ?? '\u0000')).size > 1);
  const abbr = abbreviateKeys(varying);
  const labels = ps.map((p) => {
    const parts: string[] = [];
    if (p.variant !== undefined && (variants.size > 1 || varying.length === 0)) parts.push(p.variant);
    for (const k of varying) {
      const v = valueOf(p, k);
      if (v !== undefined) parts.push(`${abbr.get(k)}=${valueText(v)}`);
    }
    return parts.join(', ');
  });
  const count = new Map<string, number>();
  for (const l of labels) count.set(l, (count.get(l) ?? 0) + 1);
  return labels.map((l, i) => (l === '' || count.get(l)! > 1 ? names[i]! : l));
}

/** Decimals needed to write v exactly up to 1e-9 relative (at most `max`). */
function decimalsOf(v: number, max: number): number {
  for (let d = 0; d < max; d++) if (Math.abs(Number(v.toFixed(d)) - v) <= 1e-9 * Math.max(1, Math.abs(v))) return d;
  return max;
}

/** Significant digits needed (at most `max`). */
function digitsOf(v: number, max: number): number {
  for (let d = 1; d < max; d++) if (Math.abs(Number(v.toPrecision(d)) - v) <= 1e-9 * Math.abs(v)) return d;
  return max;
}

/**
 * Cells of a table column with one precision for the whole column: numbers as fixed-point with the
 * decimals the most precise one needs ('0.50', '1.00', '2.25'), or, when the column holds values
 * below 0.01 or from 1e5, in exponent notation with one mantissa length ('1.0e-3', '3.0e-3', '1.5e-2');
 * other values as text (strings bare, the rest as JSON); absent ones as '-'.
 * @example formatColumn([0.001, 0.003, 0.01]) // ['1e-3', '3e-3', '1e-2']
 */
export function formatColumn(values: readonly unknown[]): { cells: string[]; numeric: boolean } {
  const nums = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const numeric = nums.length > 0 && values.every((v) => v === undefined || v === null || typeof v === 'number');
  if (!numeric) {
    const text = values.map((v) => (v === undefined || v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v)));
    return { cells: text, numeric: false };
  }
  const nonzero = nums.filter((v) => v !== 0).map(Math.abs);
  const exp = nonzero.length > 0 && (Math.min(...nonzero) < 1e-2 || Math.max(...nonzero) >= 1e5);
  let fmt: (v: number) => string;
  if (exp) {
    const digits = Math.max(...nums.map((v) => (v === 0 ? 1 : digitsOf(v, 4))));
    fmt = (v) => v.toExponential(digits - 1).replace('e+', 'e');
  } else {
    const decimals = Math.max(...nums.map((v) => decimalsOf(v, 6)));
    fmt = (v) => v.toFixed(decimals);
  }
  const cells = values.map((v) => (typeof v !== 'number' ? '-' : Number.isFinite(v) ? fmt(v) : String(v)));
  return { cells, numeric: true };
}
