/**
 * The report of scripts/torch-compare.ts: how two loss curves compare (pairStats), the text table and
 * summary it prints (report: every line within 80 columns), and the two SVG plots (plots: both loss
 * curves; the |difference| per step on a log axis, with the control's gap when there is one).
 */
import { lineChart } from '../../src/sweep/svg.ts';
import type { Side } from './sides.ts';

const fmt = (v: number, digits = 6) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));
const sci = (v: number) => (Number.isFinite(v) ? (v >= 0 ? '+' : '') + v.toExponential(2) : String(v));
const pad = (s: string, w: number) => s.padStart(w);

/** Steps shown in the table: 1..10, then every 10 up to 50, every 25 after, and the last. */
function tableSteps(n: number): number[] {
  const s = new Set<number>();
  for (let i = 1; i <= Math.min(10, n); i++) s.add(i);
  for (let i = 20; i <= Math.min(50, n); i += 10) s.add(i);
  for (let i = 75; i <= n; i += 25) s.add(i);
  s.add(n);
  return [...s].sort((a, b) => a - b);
}

function maxAbsDiff(a: number[], b: number[], from: number, to: number): { value: number; step: number } {
  let best = { value: -1, step: 0 };
  for (let i = from; i < to; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= best.value)) best = { value: d, step: i + 1 };
  }
  return best;
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
export const kurtosisAt = (s: Side, step: number) => s.kurtosis[String(step)]?.aggregate ?? NaN;

/** How two loss curves compare: the early and overall gaps, when they open, and the end statistics. */
export interface PairStats {
  maxDiffFirst10: { value: number; step: number };
  maxDiffAll: { value: number; step: number };
  /** First step whose |difference| exceeds each threshold (null: never). */
  firstStepAbove: Record<string, number | null>;
  finalWindow: number;
  finalMean: [number, number];
  finalMeanDiff: number;
  kurtosisFinal: [number, number];
}

export function pairStats(a: Side, b: Side, steps: number): PairStats {
  const window = Math.min(100, steps);
  const ma = mean(a.loss.slice(steps - window));
  const mb = mean(b.loss.slice(steps - window));
  const firstStepAbove: Record<string, number | null> = {};
  for (const th of [1e-4, 1e-3, 1e-2, 1e-1]) {
    const i = a.loss.findIndex((v, j) => !(Math.abs(v - b.loss[j]!) <= th));
    firstStepAbove[th.toExponential(0)] = i < 0 ? null : i + 1;
  }
  return {
    maxDiffFirst10: maxAbsDiff(a.loss, b.loss, 0, Math.min(10, steps)),
    maxDiffAll: maxAbsDiff(a.loss, b.loss, 0, steps),
    firstStepAbove,
    finalWindow: window,
    finalMean: [ma, mb],
    finalMeanDiff: ma - mb,
    kurtosisFinal: [kurtosisAt(a, steps), kurtosisAt(b, steps)],
  };
}

export interface Summary extends PairStats {
  gradNormStep1: [number, number];
  kurtosisStep1: [number, number];
  routingAgrees: boolean;
  routingDiffs: string[];
  /** PyTorch against PyTorch from initial weights moved by one ulp: the spread rounding alone causes. */
  control?: PairStats;
}

function gapLines(p: PairStats, steps: number, indent = ''): string[] {
  const above = Object.entries(p.firstStepAbove)
    .map(([th, st]) => `>${th}: ${st ?? 'never'}`)
    .join(', ');
  return [
    `${indent}max |difference|, steps 1-${Math.min(10, steps)}: ${p.maxDiffFirst10.value.toExponential(2)} ` +
      `(step ${p.maxDiffFirst10.step})`,
    `${indent}max |difference|, all ${steps} steps: ${p.maxDiffAll.value.toExponential(2)} (step ${p.maxDiffAll.step})`,
    `${indent}first step |diff| ${above}`,
  ];
}

export function report(head: string[], o: Side, t: Side, s: Summary, steps: number, floor: number, controlSeconds = NaN): string {
  const lines = [...head, '-'.repeat(78)];
  lines.push(
    `${pad('step', 5)}  ${pad('osp-lab loss', 12)}  ${pad('PyTorch loss', 12)}  ${pad('difference', 10)}` +
      `  ${pad('gnorm osp', 10)}  ${pad('gnorm torch', 11)}`,
  );
  for (const step of tableSteps(steps)) {
    const i = step - 1;
    lines.push(
      `${pad(String(step), 5)}  ${pad(fmt(o.loss[i]!), 12)}  ${pad(fmt(t.loss[i]!), 12)}  ` +
        `${pad(sci(o.loss[i]! - t.loss[i]!), 10)}  ${pad(fmt(o.gradNorm[i]!, 5), 10)}  ${pad(fmt(t.gradNorm[i]!, 5), 11)}`,
    );
  }
  lines.push(
    '-'.repeat(78),
    ...gapLines(s, steps),
    `mean loss, last ${s.finalWindow} steps: osp-lab ${fmt(s.finalMean[0])}  PyTorch ${fmt(s.finalMean[1])}  ` +
      `diff ${sci(s.finalMeanDiff)}`,
    `grad norm, step 1: osp-lab ${fmt(s.gradNormStep1[0], 7)}  PyTorch ${fmt(s.gradNormStep1[1], 7)}  ` +
      `rel. diff ${sci((s.gradNormStep1[0] - s.gradNormStep1[1]) / s.gradNormStep1[1])}`,
    `OSP kurtosis, step 1: osp-lab ${fmt(s.kurtosisStep1[0], 5)}  PyTorch ${fmt(s.kurtosisStep1[1], 5)}`,
    `OSP kurtosis, step ${steps} (final): osp-lab ${fmt(s.kurtosisFinal[0], 5)}  PyTorch ${fmt(s.kurtosisFinal[1], 5)}` +
      `  (floor ${floor.toFixed(3)})`,
    `routing, weight-decay exemptions, lr schedule: ${s.routingAgrees ? 'identical' : `DIFFER: ${s.routingDiffs[0]}`}`,
  );
  if (s.control) {
    const c = s.control;
    lines.push(
      `control: PyTorch vs PyTorch with every initial weight moved by 1 ulp (${controlSeconds.toFixed(1)} s):`,
      ...gapLines(c, steps, '  '),
      `  mean loss, last ${c.finalWindow} steps: PyTorch ${fmt(c.finalMean[0])}  control ${fmt(c.finalMean[1])}  ` +
        `diff ${sci(c.finalMeanDiff)}`,
      `  OSP kurtosis, step ${steps}: PyTorch ${fmt(c.kurtosisFinal[0], 5)}  control ${fmt(c.kurtosisFinal[1], 5)}`,
    );
  }
  // Wall times are printed by the caller. Every line fits 80 columns; cut one that would not.
  return lines.map((l) => (l.length > 80 ? l.slice(0, 79) + '~' : l)).join('\n');
}

export function plots(name: string, o: Side, t: Side, control?: Side): { loss: string; diff: string } {
  const pts = (ys: number[]) => ys.map((y, i) => [i + 1, y] as const);
  const loss = lineChart({
    title: `${name}: training loss, osp-lab vs PyTorch (same init, same batches)`,
    xLabel: 'step',
    yLabel: 'loss (nats)',
    series: [
      { name: 'osp-lab', points: pts(o.loss) },
      { name: 'PyTorch', points: pts(t.loss) },
    ],
    xFromZero: true,
  });
  const gap = (a: Side, b: Side) => pts(a.loss.map((v, i) => Math.abs(v - b.loss[i]!)));
  const diff = lineChart({
    title: `${name}: |loss difference| per step`,
    xLabel: 'step',
    yLabel: '|difference| (nats)',
    series: [
      { name: 'osp-lab vs PyTorch', points: gap(o, t) },
      ...(control ? [{ name: 'PyTorch vs PyTorch, init moved 1 ulp', points: gap(t, control) }] : []),
    ],
    yScale: 'log',
    xFromZero: true,
    caption: 'rounding-level at first, then growing roughly exponentially: two trajectories of a chaotic map',
  });
  return { loss, diff };
}
