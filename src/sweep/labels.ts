/**
 * Names people read in the sweep report: metric keys as axis titles with units ('train/loss' ->
 * 'training loss (nats/byte)'), trials as short legend labels that keep what differs between them
 * ('adam__optimizer.adamw.lr=0.003' -> 'adam, lr=3e-3'), the swept keys of a grid, and table columns
 * of numbers formatted with one precision per column.
 */
import { quantTagName } from '../quant/config.ts';
import { trimExp } from './axes.ts';
import { OPTIMIZERS } from '../optim/registry.ts';

/** A hidden-state tap ('layers.3.out') in words. */
function tapName(tap: string): string {
  if (tap === 'embed') return 'embedding output';
  if (tap === 'final_norm') return 'final norm output';
  const m = /^layers\.(\d+)\.(attn_in|ffn_in|out)$/.exec(tap);
  if (!m) return tap;
  const where = { attn_in: 'attention input', ffn_in: 'FFN input', out: 'output' }[m[2] as 'attn_in' | 'ffn_in' | 'out'];
  return `layer ${m[1]} ${where}`;
}

/** A quantization tag split into what orders and abbreviates it (see quantTagName in quant/config.ts). */
export interface ParsedQuantTag {
  /** Bit widths, 'W4A4KV4'. */
  bits: string;
  w: number;
  a: number;
  kv: number;
  /** A tag of osp-lab < 0.2 (`w4a4kv4`, `w4a4kv4_had`): RTN, no method in the tag. */
  legacy: boolean;
  method: 'rtn' | 'gptq' | null;
  rotation: 'none' | 'ffnhad' | 'ffnhadblock' | 'quarot' | 'had';
  /** Everything else after the bits, in tag order ('noqk', 'g64', ...). */
  modifiers: string[];
}

/**
 * Parses `w<W>a<A>kv<KV>[_part...]`; undefined for a tag of any other shape.
 * @example parseQuantTag('w4a4kv4_gptq_quarot_g64') // { bits: 'W4A4KV4', method: 'gptq', rotation: 'quarot', modifiers: ['g64'], ... }
 */
export function parseQuantTag(tag: string): ParsedQuantTag | undefined {
  const m = /^w(\d+)a(\d+)kv(\d+)(?:_(.*))?$/.exec(tag);
  if (!m) return undefined;
  const parts = m[4] ? m[4].split('_') : [];
  const method = parts.includes('gptq') ? 'gptq' : parts.includes('rtn') ? 'rtn' : null;
  const legacy = method === null;
  const rotation = legacy
    ? parts.includes('had')
      ? 'had'
      : 'none'
    : parts.includes('quarot')
      ? 'quarot'
      : parts.includes('ffnhadblock')
        ? 'ffnhadblock'
        : parts.includes('ffnhad')
          ? 'ffnhad'
          : 'none';
  const known = new Set(['rtn', 'gptq', 'quarot', 'ffnhadblock', 'ffnhad', ...(legacy ? ['had'] : [])]);
  return {
    bits: `W${m[1]}A${m[2]}KV${m[3]}`,
    w: Number(m[1]),
    a: Number(m[2]),
    kv: Number(m[3]),
    legacy,
    method,
    rotation,
    modifiers: parts.filter((p) => !known.has(p)),
  };
}

const METHOD_RANK = { rtn: 0, gptq: 1 } as const;
const ROTATION_RANK = { none: 0, had: 1, ffnhad: 1, ffnhadblock: 2, quarot: 3 } as const;

/**
 * Quantization tags in the report's order: tags of osp-lab < 0.2 first (`w4a4kv4` before
 * `w4a4kv4_had`), then by weight quantizer (RTN before GPTQ), then by rotation (none, FFN Had,
 * block-diagonal FFN Had, QuaRot), then alphabetically (bit widths, modifiers); tags of another shape last.
 * Repeats are removed.
 * @example sortQuantTags(['w4a4kv4_gptq', 'w4a4kv4_rtn_quarot', 'w4a4kv4_rtn']) // ['w4a4kv4_rtn', 'w4a4kv4_rtn_quarot', 'w4a4kv4_gptq']
 */
export function sortQuantTags(tags: Iterable<string>): string[] {
  const key = (tag: string): number[] => {
    const p = parseQuantTag(tag);
    if (!p) return [2, 0, 0];
    if (p.legacy) return [0, ROTATION_RANK[p.rotation], 0];
    return [1, METHOD_RANK[p.method!], ROTATION_RANK[p.rotation]];
  };
  return [...new Set(tags)].sort((x, y) => {
    const kx = key(x);
    const ky = key(y);
    for (let i = 0; i < kx.length; i++) if (kx[i] !== ky[i]) return kx[i]! - ky[i]!;
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

const SHORT_MODIFIER: Record<string, string> = { noqk: 'noQK', minmax: 'mm', noclip: 'noclip', actorder: 'AO' };

/**
 * A quantization tag in a few characters, for console headers and bar labels (quantTagName has the
 * words): 'RTN', 'RTN+Had', 'RTN+HadB' (block-diagonal), 'GPTQ', 'GPTQ+Had', 'QuaRot', 'QR+GPTQ'; tags of
 * osp-lab < 0.2 'W4' and 'W4Had'. Modifiers follow after a space ('GPTQ g64,AO'); with `bits`, the bit
 * widths lead ('W8A8KV8 RTN'), for reports whose tags differ in them. Other tags come back unchanged.
 * @example shortQuantName('w4a4kv4_gptq_quarot') // 'QR+GPTQ'
 * @example shortQuantName('w4a4kv4_had') // 'W4Had'
 */
export function shortQuantName(tag: string, opts: { bits?: boolean } = {}): string {
  const p = parseQuantTag(tag);
  if (!p) return tag;
  let name: string;
  if (p.legacy) name = `${opts.bits ? p.bits : `W${p.w}`}${p.rotation === 'had' ? 'Had' : ''}`;
  else {
    const gptq = p.method === 'gptq';
    if (p.rotation === 'quarot') name = gptq ? 'QR+GPTQ' : 'QuaRot';
    else name = `${gptq ? 'GPTQ' : 'RTN'}${{ none: '', ffnhad: '+Had', ffnhadblock: '+HadB', had: '+Had' }[p.rotation]}`;
    if (opts.bits) name = `${p.bits} ${name}`;
  }
  const mods = p.modifiers.map((m) => SHORT_MODIFIER[m] ?? m);
  return mods.length > 0 ? `${name} ${mods.join(',')}` : name;
}

/** The bit widths all tags share ('W4A4KV4'), or undefined when they differ, a tag has another shape or there is none. */
export function commonQuantBits(tags: readonly string[]): string | undefined {
  const bits = new Set(tags.map((t) => parseQuantTag(t)?.bits));
  return bits.size === 1 ? [...bits][0] : undefined;
}

const FIXED: Record<string, string> = {
  step: 'training step',
  'train/loss': 'training loss (nats/byte)',
  'train/grad_norm': 'gradient norm',
  'train/skipped_total': 'skipped updates (count)',
  'eval/loss': 'validation loss (nats/byte)',
  'val/loss': 'validation loss (nats/byte)',
  'eval/perplexity': 'validation perplexity',
  'eval/bits_per_byte': 'validation bits per byte',
  'throughput/tokens_per_s': 'throughput (tokens/s)',
  'throughput/step_ms': 'step time (ms)',
  'outliers/osp_kurtosis': 'excess kurtosis (OSP estimator)',
  'outliers/gaussian_floor': 'Gaussian floor of the kurtosis estimator',
  'outliers/max_median': 'max / median |activation|, worst layer',
  'outliers/max_abs': 'largest |activation| over the layers',
  'outliers/channel_kurtosis': 'per-channel kurtosis, worst layer',
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
 * @example metricLabel('quant/w4a4kv4_gptq_quarot/ppl_ratio') // 'W4A4KV4 QuaRot + GPTQ / 16-bit perplexity'
 * @example metricLabel('outliers/layers.2.out/osp_kurtosis') // 'excess kurtosis, layer 2 output'
 */
export function metricLabel(key: string): string {
  const fixed = FIXED[key];
  if (fixed !== undefined) return fixed;
  let m = /^(?:train\/lr\/(\w+)|update\/(\w+)_rms)$/.exec(key);
  if (m) {
    const name = (m[1] ?? m[2])!;
    const label = (OPTIMIZERS as Record<string, { label: string } | undefined>)[name]?.label ?? name;
    return m[1] !== undefined ? `${label} learning rate` : `${label} update RMS`;
  }
  m = /^outliers\/(.+)\/(osp_kurtosis|channel_kurtosis|max_median|max_abs|channel_rms)$/.exec(key);
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
    const q = quantTagName(m[1]!);
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

/** The configuration of a trial whose name is only `seed=N` (a sweep with seeds and nothing else). */
export const BASE_CONFIGURATION = 'base';

const SEED_PART = /^seed=(\d+)$/;

/**
 * Splits a trial name into its configuration (the name without its `seed=N` part) and that seed, as
 * expandTrials names the trials of a sweep with `seeds` (the part is last there; a grid over `seed`
 * puts it where the key is, and that works too). A name without a seed part is its own configuration,
 * with seed null; a name that is nothing but its seed part belongs to BASE_CONFIGURATION.
 * @example configurationOf('osp__optimizer.muon.lr=0.01__seed=2') // { configuration: 'osp__optimizer.muon.lr=0.01', seed: 2 }
 * @example configurationOf('seed=0') // { configuration: 'base', seed: 0 }
 */
export function configurationOf(name: string): { configuration: string; seed: number | null } {
  const parts = name.split('__');
  for (let i = parts.length - 1; i >= 0; i--) {
    const m = SEED_PART.exec(parts[i]!);
    if (!m) continue;
    const rest = parts.filter((_, j) => j !== i);
    return { configuration: rest.length > 0 ? rest.join('__') : BASE_CONFIGURATION, seed: Number(m[1]) };
  }
  return { configuration: name, seed: null };
}

/** Whether any of these trial names has a `seed=N` part: the report then aggregates over seeds. */
export function hasSeeds(names: Iterable<string>): boolean {
  for (const n of names) if (configurationOf(n).seed !== null) return true;
  return false;
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
