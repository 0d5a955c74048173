/**
 * The research signal in one short phrase per monitor, for the console: the aggregate outlier
 * kurtosis against the Gaussian floor of its estimator, the fake-quantized perplexity ratio, and the
 * top Hessian eigenvalue. Used by the progress output (from a step's metrics) and by the final
 * `done:` line (from summary.json's monitors). A monitor that did not run adds nothing.
 */
import { quantTagName } from '../quant/config.ts';

export interface Signal {
  kurtosis?: number;
  floor?: number;
  /** Quantization variants by tag as in metrics (`w4a4kv4_rtn`, `w4a4kv4_gptq_quarot`) and their perplexity ratios. */
  quant?: { tag: string; ratio: number }[];
  hessianTop?: number;
}

/** `kurtosis 0.134 (1.25x floor 0.107)`; below the floor it says so (sub-Gaussian, ReLU-clipped tokens). */
function kurtosisPhrase(k: number, floor: number | undefined): string {
  if (floor === undefined || !(floor > 0)) return `kurtosis ${k.toFixed(3)}`;
  const ratio = k / floor;
  if (ratio < 1) return `kurtosis ${k.toFixed(3)} (below the Gaussian floor ${floor.toFixed(3)})`;
  return `kurtosis ${k.toFixed(3)} (${ratio.toFixed(ratio < 10 ? 2 : 0)}x floor ${floor.toFixed(3)})`;
}

/** The phrases of a signal joined by two spaces, or '' when no monitor measured anything. */
export function formatSignal(s: Signal): string {
  const parts: string[] = [];
  if (s.kurtosis !== undefined) parts.push(kurtosisPhrase(s.kurtosis, s.floor));
  if (s.quant?.length) {
    // 'W4A4KV4 RTN ppl x1.062', further variants by their method and rotation only: ', QuaRot x1.031'.
    const [first, ...rest] = s.quant.map((q) => ({ name: quantTagName(q.tag).replace(/ \(.*\)$/, ''), ratio: q.ratio }));
    let phrase = `${first!.name} ppl x${first!.ratio.toFixed(3)}`;
    for (const q of rest) phrase += `, ${q.name.replace(/^W\d+A\d+KV\d+ /, '')} x${q.ratio.toFixed(3)}`;
    parts.push(phrase);
  }
  if (s.hessianTop !== undefined) parts.push(`top Hessian eig ${s.hessianTop.toPrecision(4)}`);
  return parts.join('  ');
}

/** The signal in one step's metrics (names as in metrics.jsonl). */
export function signalOfMetrics(get: (name: string) => number | undefined, names: readonly string[]): Signal {
  const s: Signal = {};
  const k = get('outliers/osp_kurtosis');
  if (k !== undefined) {
    s.kurtosis = k;
    s.floor = get('outliers/gaussian_floor');
  }
  const q = names.filter((n) => /^quant\/[^/]+\/ppl_ratio$/.test(n));
  if (q.length) s.quant = q.map((n) => ({ tag: n.split('/')[1]!, ratio: get(n)! }));
  const h = get('hessian/eig_1');
  if (h !== undefined) s.hessianTop = h;
  return s;
}

/** The signal in summary.json's `monitors` (the last measurement of each monitor). */
export function signalOfSummary(monitors: Record<string, unknown>): Signal {
  const s: Signal = {};
  const o = monitors.outliers as { ospKurtosis?: number; gaussianFloor?: number } | null | undefined;
  if (o && typeof o.ospKurtosis === 'number') {
    s.kurtosis = o.ospKurtosis;
    s.floor = o.gaussianFloor;
  }
  const q = monitors.quant as
    | {
        variants?: { tag: string; gap: { perplexityRatio: number } }[];
        config?: { w: number; a: number; kv: number; had?: boolean };
        gap?: { perplexityRatio: number };
      }
    | null
    | undefined;
  if (q?.variants?.length) s.quant = q.variants.map((v) => ({ tag: v.tag, ratio: v.gap.perplexityRatio }));
  else if (q?.config && q.gap) {
    // summary.json of osp-lab < 0.2: one variant, tagged as it was then.
    const c = q.config;
    s.quant = [{ tag: `w${c.w}a${c.a}kv${c.kv}${c.had ? '_had' : ''}`, ratio: q.gap.perplexityRatio }];
  }
  const h = monitors.hessian as { topk?: number[] } | null | undefined;
  if (h?.topk?.length) s.hessianTop = h.topk[0];
  return s;
}
