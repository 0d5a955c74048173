/**
 * Small-sample statistics for multi-seed sweeps: Student's t distribution (CDF and quantile, for any
 * positive real degrees of freedom, so Welch's fractional dof work too), the normal quantile, the
 * mean / sample standard deviation / 95% confidence interval of a handful of seeds, and Welch's
 * t-interval for the difference of two means. No dependencies; pure functions.
 *
 * Accuracy: the t CDF comes from the regularized incomplete beta function (Lentz's continued
 * fraction, relative error ~1e-14), the quantile from bisection on it (below 1e4 dof) or from the
 * Cornish-Fisher expansion around the normal quantile (above, where its error is ~1e-14); the normal
 * quantile is Acklam's rational approximation refined by one Halley step on the normal CDF (from the
 * incomplete gamma function).
 */

/** ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  const y = x - 1;
  let a = c[0]!;
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const TINY = 1e-300;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 100000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/**
 * The regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1].
 * @example regularizedBeta(0.5, 2, 2) // 0.5
 */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  // The continued fraction converges fast on this side of the mean; the other side by symmetry.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T > t) for t >= 0: the upper tail, computed without the cancellation of 1 - CDF. */
function tUpperTail(t: number, dof: number): number {
  return 0.5 * regularizedBeta(dof / (dof + t * t), dof / 2, 0.5);
}

/**
 * The CDF of Student's t distribution with `dof` > 0 degrees of freedom (real, not only integer).
 * @example tCdf(2.776445, 4) // ~0.975
 */
export function tCdf(t: number, dof: number): number {
  checkDof(dof);
  if (Number.isNaN(t)) return NaN;
  if (!Number.isFinite(dof)) return normalCdf(t);
  const tail = tUpperTail(Math.abs(t), dof);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * Regularized upper incomplete gamma Q(a, x) = 1 - P(a, x): P by its series (x < a + 1), else Q by
 * its continued fraction, so a small Q in the far tail keeps its precision.
 */
function regularizedGammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let ap = a;
    let del = 1 / a;
    let sum = del;
    for (let n = 0; n < 10000 && Math.abs(del) > Math.abs(sum) * 1e-16; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
    }
    return 1 - sum * front;
  }
  // Lentz's continued fraction.
  const TINY = 1e-300;
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return front * h;
}

/** The upper tail P(Z > z) of the standard normal for z >= 0: Q(1/2, z^2/2) / 2. */
function normalUpperTail(z: number): number {
  return 0.5 * regularizedGammaQ(0.5, (z * z) / 2);
}

/**
 * The CDF of the standard normal distribution (the incomplete gamma function; relative error ~1e-15
 * away from the far tails).
 * @example normalCdf(1.959964) // ~0.975
 */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  const tail = normalUpperTail(Math.abs(z));
  return z >= 0 ? 1 - tail : tail;
}

function checkDof(dof: number): void {
  if (!(dof > 0)) throw new RangeError(`degrees of freedom must be positive, got ${dof}`);
}

/**
 * The quantile (inverse CDF) of the standard normal distribution: Acklam's rational approximation
 * (relative error below 1.2e-9), refined by one Halley step.
 * @example normalQuantile(0.975) // 1.959964
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    throw new RangeError(`probability must be in [0, 1], got ${p}`);
  }
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p > 1 - low) return -normalQuantile(1 - p);
  let x: number;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    x =
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else {
    const q = p - 0.5;
    const r = q * q;
    x =
      ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
      (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  }
  // One Halley step on the exact CDF takes the approximation to full double precision.
  const e = normalCdf(x) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

/** Above this many degrees of freedom the Cornish-Fisher expansion is exact to ~1e-14. */
const CORNISH_FISHER_DOF = 1e4;

/**
 * The p-quantile of Student's t distribution with `dof` > 0 degrees of freedom (real; Infinity gives
 * the normal quantile). Known values: t(0.975; 1) = 12.706, t(0.975; 4) = 2.776, t(0.975; 30) = 2.042.
 * @example tQuantile(0.975, 2) // 4.302653
 */
export function tQuantile(p: number, dof: number): number {
  checkDof(dof);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`probability must be in [0, 1], got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, dof);
  if (p === 1) return Infinity;
  if (dof > CORNISH_FISHER_DOF) {
    const z = normalQuantile(p);
    const z2 = z * z;
    const g1 = (z * (z2 + 1)) / 4;
    const g2 = (z * ((5 * z2 + 16) * z2 + 3)) / 96;
    const g3 = (z * (((3 * z2 + 19) * z2 + 17) * z2 - 15)) / 384;
    const g4 = (z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945)) / 92160;
    if (!Number.isFinite(dof)) return z;
    return z + g1 / dof + g2 / dof ** 2 + g3 / dof ** 3 + g4 / dof ** 4;
  }
  // Bisection on the upper tail, which falls monotonically from 1/2 at t = 0.
  const tail = 1 - p;
  let lo = 0;
  let hi = 1;
  while (tUpperTail(hi, dof) > tail) {
    lo = hi;
    hi *= 2;
    if (!Number.isFinite(hi)) return Infinity;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tUpperTail(mid, dof) > tail) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Mean, spread and 95% interval of one column over the seeds of one configuration. */
export interface Stat {
  /** Values measured (seeds that have the column). */
  n: number;
  /** Null when n = 0; NaN (JSON null) when a seed measured a non-finite value. */
  mean: number | null;
  /** Sample standard deviation (n - 1 in the denominator); null when n < 2. */
  std: number | null;
  /** 95% confidence interval of the mean: mean -+ t(0.975; n - 1) * std / sqrt(n); null when n < 2. */
  ci95: [number, number] | null;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Sample variance (two-pass, n - 1 in the denominator). */
function variance(values: readonly number[]): number {
  const m = mean(values);
  return values.reduce((a, v) => a + (v - m) * (v - m), 0) / (values.length - 1);
}

/**
 * n, mean, sample standard deviation and the 95% t-interval of the mean of `values`. A single value
 * gets its mean only (no spread, no interval); none gets n = 0 and nulls. A non-finite value makes the
 * mean NaN: a diverged seed shows in the aggregate instead of being averaged away.
 * @example describeSample([1, 2, 3]) // { n: 3, mean: 2, std: 1, ci95: [-0.484, 4.484] }
 */
export function describeSample(values: readonly number[]): Stat {
  const n = values.length;
  if (n === 0) return { n, mean: null, std: null, ci95: null };
  const m = mean(values);
  if (n === 1) return { n, mean: m, std: null, ci95: null };
  const std = Math.sqrt(variance(values));
  const half = (tQuantile(0.975, n - 1) * std) / Math.sqrt(n);
  return { n, mean: m, std, ci95: [m - half, m + half] };
}

/** Half the width of a Stat's 95% interval, or null without one. */
export function halfWidth(s: Stat): number | null {
  return s.ci95 === null ? null : (s.ci95[1] - s.ci95[0]) / 2;
}

/** The difference of two means with Welch's t-interval. */
export interface Difference {
  /** mean(b) - mean(a); null when either side has no value. */
  diff: number | null;
  /** Standard error of the difference, sqrt(s_a^2/n_a + s_b^2/n_b); null when either n < 2. */
  se: number | null;
  /** Welch-Satterthwaite degrees of freedom; null when either n < 2. */
  dof: number | null;
  /** 95% interval of the difference; null when either n < 2 (not available from a single seed). */
  ci95: [number, number] | null;
}

/**
 * Welch's 95% t-interval for mean(b) - mean(a): unequal variances, Welch-Satterthwaite degrees of
 * freedom (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a - 1) + (s_b^2/n_b)^2/(n_b - 1)). Both
 * samples without any spread give a zero-width interval at n_a + n_b - 2 dof.
 * @example welchInterval([1, 2, 3], [2, 4, 6]).diff // 2
 */
export function welchInterval(a: readonly number[], b: readonly number[]): Difference {
  if (a.length === 0 || b.length === 0) return { diff: null, se: null, dof: null, ci95: null };
  const diff = mean(b) - mean(a);
  if (a.length < 2 || b.length < 2) return { diff, se: null, dof: null, ci95: null };
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const se = Math.sqrt(va + vb);
  if (Number.isNaN(se)) return { diff, se, dof: NaN, ci95: [NaN, NaN] };
  if (se === 0) return { diff, se, dof: a.length + b.length - 2, ci95: [diff, diff] };
  const dof = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const half = tQuantile(0.975, dof) * se;
  return { diff, se, dof, ci95: [diff - half, diff + half] };
}
