/**
 * Axis arithmetic for the sweep report's charts: which scale the data asks for (log only when it is all
 * positive and spans more than 1.5 decades), linear axes with "nice" ticks zoomed around the data, log
 * axes over whole decades, and number formatting for tick and value labels. Pure functions, no SVG.
 */

export type Scale = 'linear' | 'log';

export interface Axis {
  kind: Scale;
  /** Data value -> position along the axis in [0, 1]. */
  scale: (v: number) => number;
  ticks: { value: number; label: string }[];
  /** Domain in data units. */
  lo: number;
  hi: number;
}

/** Decades of spread above which an all-positive data set is drawn on a log axis. */
export const LOG_DECADES = 1.5;

/**
 * The scale a set of values asks for: 'log' when every finite value is positive and max / min exceeds
 * 10^1.5, else 'linear' (values clustered near 1, or any zero or negative value, which a log axis could
 * not show).
 * @example chooseScale([1.03, 1.08, 1.09]) // 'linear'
 * @example chooseScale([0.2, 40, 1250]) // 'log'
 */
export function chooseScale(values: Iterable<number>): Scale {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v <= 0) return 'linear';
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return hi > lo && Math.log10(hi / lo) > LOG_DECADES ? 'log' : 'linear';
}

/** Min and max of finite values; undefined when there are none. */
export function extent(values: Iterable<number>): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : undefined;
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
export function trimExp(s: string): string {
  return s.replace(/\.?0+e/, 'e');
}

/**
 * 1, 2 or 5 times a power of ten, the smallest at least `raw`: tick steps people can read at a glance.
 */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

export interface LinearAxisOptions {
  /** About this many ticks (default 6). */
  target?: number;
  /** Steps >= 1 (layer indices, steps). */
  integer?: boolean;
  /** Fraction of the data range added on each side before rounding to ticks, so no point sits on the frame. */
  pad?: number;
}

/**
 * A linear axis over [min, max] extended to whole tick steps, with about `target` ticks. Padding never
 * crosses zero (a positive quantity does not get a negative axis). A single value is drawn against an
 * axis from zero to a bit beyond it (a lone Hessian eigenvalue of 30 gets 0..35, not 27..33, which
 * would exaggerate nothing but noise).
 */
export function linearAxis(min: number, max: number, opts: LinearAxisOptions = {}): Axis {
  if (!(max > min)) {
    if (min > 0) min = 0;
    else if (max < 0) max = 0;
    else max = 1;
  }
  const pad = (opts.pad ?? 0) * (max - min);
  if (pad > 0) {
    min = min >= 0 ? Math.max(0, min - pad) : min - pad;
    max = max <= 0 ? Math.min(0, max + pad) : max + pad;
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
  return { kind: 'linear', scale: (v) => (v - lo) / (hi - lo), ticks, lo, hi };
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
export function logAxis(min: number, max: number, bars = false): Axis {
  let e0 = Math.floor(Math.log10(min) + 1e-12);
  let e1 = Math.ceil(Math.log10(max) - 1e-12);
  if (bars && Number(`1e${e0}`) >= min) e0 -= 1;
  if (e1 <= e0) e1 = e0 + 1;
  const stride = Math.ceil((e1 - e0) / 10);
  const ticks: Axis['ticks'] = [];
  for (let e = e0; e <= e1; e += stride) ticks.push({ value: Number(`1e${e}`), label: powerLabel(e) });
  return {
    kind: 'log',
    scale: (v) => (Math.log10(v) - e0) / (e1 - e0),
    ticks,
    lo: Number(`1e${e0}`),
    hi: Number(`1e${e1}`),
  };
}

/** Whether a value can be drawn on an axis of this kind. */
export function drawable(v: number, kind: Scale): boolean {
  return Number.isFinite(v) && (kind === 'linear' || v > 0);
}

/**
 * The y axis of a chart: values (data and reference lines) that can be drawn on `kind`, zoomed around
 * them. `base`: bars grow from this value, so it must be on the axis (0 by default on a linear axis).
 */
export function valueAxis(values: readonly number[], kind: Scale, bars: boolean, base?: number): Axis {
  const all = bars && base !== undefined ? [...values, base] : values;
  const e = extent(all.filter((v) => drawable(v, kind)));
  if (kind === 'log') return e ? logAxis(e[0], e[1], bars && base === undefined) : logAxis(1, 10, bars);
  if (!e) return linearAxis(0, 1);
  if (!bars) return linearAxis(e[0], e[1], { pad: 0.04 });
  const b = base ?? 0;
  // Bars grow from the base: pad only away from it, so the base stays the axis end where it is one.
  const lo = Math.min(b, e[0]);
  const hi = Math.max(b, e[1]);
  const pad = 0.08 * (hi - lo);
  return linearAxis(lo < b ? lo - pad : lo, hi > b ? hi + pad : hi);
}

/**
 * An axis for integer positions min..max (layer indices): half a position of room at both ends, so the
 * first and last points do not sit on the frame, and ticks on whole positions only.
 */
export function indexAxis(min: number, max: number): Axis {
  const inner = linearAxis(min, Math.max(max, min + 1), { integer: true, target: Math.min(10, max - min + 1) });
  const lo = min - 0.5;
  const hi = max + 0.5;
  const ticks = inner.ticks.filter((t) => t.value >= min && t.value <= max);
  return { kind: 'linear', scale: (v) => (v - lo) / (hi - lo), ticks, lo, hi };
}
