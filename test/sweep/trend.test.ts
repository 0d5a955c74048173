/**
 * The outlier-emergence verdict (src/sweep/trend.ts): the log-linear fit against the normal equations
 * solved independently (Cramer's rule on raw sums), the extrapolation against the closed form of a
 * known line, and the targets on synthetic seeds built so that each is met, missed or undecidable.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/train/config.ts';
import { writeReport, type TrialResult } from '../../src/sweep/report.ts';
import { tempDir } from '../helpers/scratch.ts';
import {
  extrapolate,
  fitLogLinear,
  gapAtLoss,
  pairTrend,
  renderTrendMarkdown,
  trendConsoleLines,
  type MetricTrend,
} from '../../src/sweep/trend.ts';
import { Rng } from '../../src/utils/rng.ts';

const TOKENS_PER_STEP = 8 * 128;

/** A finished trial whose metrics at each step are given by functions of the tokens seen. */
function trial(name: string, steps: number[], at: (tokens: number) => Record<string, number>): TrialResult {
  return {
    name,
    dir: `/x/${name}`,
    config: { input: {}, resolved: { batch: { size: 8, seqLen: 128, accum: 1 } } },
    metrics: steps.map((step) => ({ step, ...at(step * TOKENS_PER_STEP) })),
    summary: {},
    truncatedMetricsLine: false,
  };
}

describe('fitLogLinear', () => {
  it('recovers an exact line in log10 tokens', () => {
    const f = fitLogLinear([1e3, 1e4, 1e5, 1e6].map((x) => [x, 2 + 0.5 * Math.log10(x)] as [number, number]))!;
    expect(f.slope).toBeCloseTo(0.5, 12);
    expect(f.intercept).toBeCloseTo(2, 11);
    expect(f.n).toBe(4);
  });

  it("equals the normal equations solved by Cramer's rule on noisy data", () => {
    const rng = new Rng(3);
    const pts = Array.from(
      { length: 30 },
      (_, i) => [10 ** (3 + i / 10), 1 + 0.3 * (3 + i / 10) + rng.normals(1, 0.2)[0]!] as [number, number],
    );
    const f = fitLogLinear(pts)!;
    let n = 0,
      sx = 0,
      sy = 0,
      sxx = 0,
      sxy = 0;
    for (const [x, y] of pts) {
      const l = Math.log10(x);
      n++;
      sx += l;
      sy += y;
      sxx += l * l;
      sxy += l * y;
    }
    const det = n * sxx - sx * sx;
    expect(f.slope).toBeCloseTo((n * sxy - sx * sy) / det, 10);
    expect(f.intercept).toBeCloseTo((sy * sxx - sx * sxy) / det, 9);
  });

  it('needs two distinct token counts; drops non-finite values', () => {
    expect(fitLogLinear([[100, 1]])).toBeNull();
    expect(
      fitLogLinear([
        [100, 1],
        [100, 2],
      ]),
    ).toBeNull();
    expect(
      fitLogLinear([
        [100, 1],
        [1000, NaN],
        [1000, 2],
      ])!.slope,
    ).toBeCloseTo(1, 12);
  });
});

describe('extrapolate', () => {
  const trend = (fits: { intercept: number; slope: number }[]): MetricTrend =>
    ({ fits: fits.map((f) => ({ ...f, n: 5, seed: 0 })) }) as unknown as MetricTrend;

  it("solves each seed's line for the level and averages log10 tokens", () => {
    // Lines reaching 0.2 at 10^7, 10^8 and 10^9 tokens.
    const e = extrapolate(trend([7, 8, 9].map((d) => ({ slope: 0.05, intercept: 0.2 - 0.05 * d }))), 0.2);
    expect(e.log10Tokens.mean).toBeCloseTo(8, 10);
    expect(e.log10Tokens.n).toBe(3);
    expect(e.never).toBe(0);
    expect(e.log10Tokens.ci95![0]).toBeLessThan(8);
  });

  it('a seed whose trend points away never reaches the level', () => {
    const e = extrapolate(
      trend([
        { slope: -0.01, intercept: 0.1 },
        { slope: 0, intercept: 0.1 },
        { slope: 0.1, intercept: -0.6 },
      ]),
      0.2,
    );
    expect(e.never).toBe(2);
    expect(e.log10Tokens.n).toBe(1);
    expect(e.log10Tokens.mean).toBeCloseTo(8, 10);
  });
});

/** Seeds of one configuration: the values plus a small seed-dependent offset. */
function seeds(name: string, values: (tokens: number) => Record<string, number>, n = 3, jitter = 0.01): TrialResult[] {
  return Array.from({ length: n }, (_, s) =>
    trial(`${name}__seed=${s}`, [1, 100, 200, 400, 800], (tok) => {
      const v = values(tok);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k === 'outliers/gaussian_floor' ? x : x * (1 + jitter * (s - 1))]));
    }),
  );
}

const metrics = (o: { kurt: number; chk: number; mm: number; ratio: number; loss: number }) => ({
  'outliers/osp_kurtosis': o.kurt,
  'outliers/gaussian_floor': 0.1,
  'outliers/channel_kurtosis': o.chk,
  'outliers/max_median': o.mm,
  'quant/fp_loss': o.loss,
  'quant/w4a4kv4_rtn/ppl_ratio': o.ratio,
  'quant/w4a4kv4_rtn_ffnhad/ppl_ratio': 1 + (o.ratio - 1) / 4,
});

describe('pairTrend', () => {
  it('all targets met: Adam far above the floor with a large gap, OSP at the floor, equal 16-bit loss', () => {
    // Seeds 0.5% apart: the interval of the loss difference (3 + 3 seeds) is about -+1.1%, inside 2%.
    // The losses fall to 1.5 over training, so each side passes the other's final loss.
    const loss = (tok: number) => 1.5 + 0.2 * (1 - tok / (800 * TOKENS_PER_STEP));
    const adam = seeds('adam', (tok) => metrics({ kurt: 3, chk: 50, mm: 200, ratio: 1.5, loss: loss(tok) }), 3, 0.005);
    const osp = seeds('osp', (tok) => metrics({ kurt: 0.11, chk: 2, mm: 8, ratio: 1.05, loss: loss(tok) }), 3, 0.005);
    const p = pairTrend(adam, osp, 'adam', 'osp');
    expect(p.tag).toBe('w4a4kv4_rtn'); // plain RTN, not the FFN-Hadamard variant
    expect(p.targets.map((t) => t.met)).toEqual([true, true, true, true, true, true, true, true]);
    expect(p.metricsA.find((m) => m.metric === 'kurtosis_floor')!.last.mean).toBeCloseTo(30, 9);
    const md = renderTrendMarkdown([p]);
    expect(md).toContain('| adam: OSP kurtosis >= 10x the Gaussian floor | yes |');
    // Every table row has its 5 (metrics) or 3 (targets) cells: pipes inside a cell are escaped.
    for (const row of md.split('\n').filter((l) => l.startsWith('| '))) {
      const cells = row.replace(/\\\|/g, '').split('|').length - 2;
      expect([3, 5], row).toContain(cells);
    }
    expect(md).toContain('max/median \\|x\\|, worst layer');
    // Seeds 1% apart: the same means, but the interval (about -+2.3%) no longer shows the losses within 2%.
    const wide = pairTrend(
      seeds('adam', () => metrics({ kurt: 3, chk: 50, mm: 200, ratio: 1.5, loss: 1.5 })),
      seeds('osp', () => metrics({ kurt: 0.11, chk: 2, mm: 8, ratio: 1.05, loss: 1.5 })),
      'adam',
      'osp',
    );
    expect(wide.targets.find((t) => t.claim === '16-bit losses within 2% of each other')!.met).toBe(false);
    for (const line of trendConsoleLines([p])) expect(line.length).toBeLessThanOrEqual(80);
  });

  it("the small-scale picture: outliers without a gap; the gap's trend is extrapolated", () => {
    // Adam's gap grows 0.05 per decade of tokens and is 0.2 at 10^8 tokens; OSP's does not grow.
    const gap = (tok: number) => 0.2 + 0.05 * (Math.log10(tok) - 8);
    const adam = seeds('adam', (tok) => metrics({ kurt: 1.5, chk: 12, mm: 30, ratio: 1 + gap(tok), loss: 2.0 }), 3, 0.001);
    const osp = seeds('osp', () => metrics({ kurt: 0.12, chk: 2, mm: 8, ratio: 1.04, loss: 1.6 }), 3, 0.001);
    const p = pairTrend(adam, osp, 'adam', 'osp');
    const byClaim = new Map(p.targets.map((t) => [t.claim, t]));
    expect(byClaim.get('adam: OSP kurtosis >= 10x the Gaussian floor')!.met).toBe(true);
    const g = byClaim.get('adam: W4A4KV4 perplexity increase >= 0.2')!;
    expect(g.met).toBe(false);
    // The jitter scales the ratio, not the gap, so each seed's line is only near the exact one.
    expect(g.extrapolation!.log10Tokens.mean!).toBeGreaterThan(7.8);
    expect(g.extrapolation!.log10Tokens.mean!).toBeLessThan(8.2);
    expect(byClaim.get('16-bit losses within 2% of each other')!.met).toBe(false);
    expect(renderTrendMarkdown([p])).toMatch(/trend: reaches 0\.2 at \d/);
  });

  it('one seed decides nothing', () => {
    const adam = seeds('adam', () => metrics({ kurt: 3, chk: 50, mm: 200, ratio: 1.5, loss: 1.5 }), 1);
    const osp = seeds('osp', () => metrics({ kurt: 0.11, chk: 2, mm: 8, ratio: 1.05, loss: 1.5 }), 1);
    expect(pairTrend(adam, osp, 'adam', 'osp').targets.map((t) => t.met)).toEqual([null, null, null, null, null, null, null, null]);
  });
});

describe('at matched 16-bit loss', () => {
  it('gapAtLoss interpolates along training; null when the loss is never reached', () => {
    const t = trial('osp__seed=0', [1, 100, 200, 300], (tok) => {
      const step = tok / TOKENS_PER_STEP;
      return { 'quant/fp_loss': 3 - step / 100, 'quant/w4a4kv4_rtn/ppl_ratio': 1 + step / 1000 };
    });
    // Losses 2, 1, 0 at steps 100, 200, 300 with gaps 0.1, 0.2, 0.3: loss 1.5 lies halfway at gap 0.15.
    expect(gapAtLoss(t, 'w4a4kv4_rtn', 1.5)).toBeCloseTo(0.15, 12);
    expect(gapAtLoss(t, 'w4a4kv4_rtn', 1)).toBeCloseTo(0.2, 12);
    expect(gapAtLoss(t, 'w4a4kv4_rtn', 2.5)).toBeNull(); // only the left-out step 1 had that loss
    expect(gapAtLoss(t, 'w4a4kv4_rtn', -1)).toBeNull();
  });

  it("the better-trained configuration is taken where it had the other one's final loss", () => {
    // Adam ends at loss 2.0 with gap 0.03; OSP passes loss 2.0 halfway between its measurements with
    // gaps 0.01 and 0.02 (0.015 there), and ends at 1.5 with a larger gap (0.05).
    const steps = [1, 300, 600, 900];
    const adam = [0, 1, 2].map((s) =>
      trial(`adam__seed=${s}`, steps, (tok) => ({
        'quant/fp_loss': 2.6 - (0.2 * tok) / (300 * TOKENS_PER_STEP) + s * 1e-3,
        'quant/w4a4kv4_rtn/ppl_ratio': 1.03 + s * 1e-3,
      })),
    );
    const ospLoss = [3, 2.25, 1.75, 1.5];
    const ospGap = [0, 0.01, 0.02, 0.05];
    const osp = [0, 1, 2].map((s) =>
      trial(`osp__seed=${s}`, steps, (tok) => {
        const i = steps.indexOf(tok / TOKENS_PER_STEP);
        return { 'quant/fp_loss': ospLoss[i]!, 'quant/w4a4kv4_rtn/ppl_ratio': 1 + ospGap[i]! + s * 1e-3 };
      }),
    );
    const p = pairTrend(adam, osp, 'adam', 'osp');
    const m = p.targets.at(-1)!;
    expect(m.claim).toBe("at matched 16-bit loss: adam's perplexity increase above osp's");
    expect(m.met).toBe(true);
    // OSP at Adam's mean final loss (2.001): 0.01 + 0.01 * (2.25 - 2.001) / 0.5, plus the seed offsets.
    expect(m.detail).toContain("osp when it had adam's final loss 2.001");
    // At matched steps the order is the other way round: OSP's final gap (0.05) is above Adam's (0.03).
    expect(p.targets.find((t) => t.claim === "adam: perplexity increase >= 3x osp's")!.met).toBe(false);
  });
});

describe('trend.md from a sweep directory', () => {
  /** A sweep directory with finished trials of two configurations and sweep.json's `trend`. */
  function sweepDir(trend: unknown): string {
    const dir = tempDir('osp-trend-');
    const names: string[] = [];
    for (const [config, kurt] of [
      ['adam', 3],
      ['osp', 0.11],
    ] as const) {
      for (const s of [0, 1]) {
        const name = `${config}__seed=${s}`;
        names.push(name);
        const input = {
          name,
          seed: s,
          steps: 400,
          batch: { size: 8, seqLen: 128 },
          model: { hiddenSize: 64, numLayers: 2, numHeads: 4, maxSeqLen: 128 },
        };
        mkdirSync(join(dir, name));
        writeFileSync(join(dir, name, 'config.json'), JSON.stringify({ input, resolved: resolveRunConfig(input) }));
        const rows = [200, 400].map((step) => ({
          step,
          ...metrics({ kurt: kurt * (1 + s / 100), chk: 5, mm: 9, ratio: 1.02 + s / 1000, loss: 2 - step / 1000 }),
        }));
        writeFileSync(join(dir, name, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r) + '\n').join(''));
        writeFileSync(join(dir, name, 'summary.json'), JSON.stringify({ name }));
      }
    }
    writeFileSync(join(dir, 'sweep.json'), JSON.stringify({ spec: '/x/spec.json', trials: names, trend }));
    return dir;
  }

  it('`osp sweep report` rebuilds it from the pairs sweep.json recorded', () => {
    const dir = sweepDir({ pairs: [['adam', 'osp']] });
    const { files } = writeReport(dir);
    expect(files).toContain(join(dir, 'trend.md'));
    expect(readFileSync(join(dir, 'trend.md'), 'utf8')).toContain('## adam vs osp');
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toContain('[trend.md](trend.md)');
    const [p] = JSON.parse(readFileSync(join(dir, 'trend.json'), 'utf8')) as { seedsA: number; targets: { met: boolean | null }[] }[];
    expect(p!.seedsA).toBe(2);
    expect(p!.targets[0]!.met).toBe(true); // 30x the floor on both seeds
  });

  it('mid-sweep: a configuration with no trial directory yet (listed in sweep.json) has no seeds, not an error', () => {
    const dir = sweepDir({
      pairs: [
        ['adam', 'osp'],
        ['adam', 'later'],
      ],
    });
    const record = JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8'));
    writeFileSync(join(dir, 'sweep.json'), JSON.stringify({ ...record, trials: [...record.trials, 'later__seed=0'] }));
    writeReport(dir);
    const trends = JSON.parse(readFileSync(join(dir, 'trend.json'), 'utf8')) as {
      b: string;
      seedsB: number;
      targets: { met: boolean | null }[];
    }[];
    expect(trends[1]!.b).toBe('later');
    expect(trends[1]!.seedsB).toBe(0);
    expect(trends[1]!.targets[1]!.met).toBeNull();
  });

  it('a malformed trend in sweep.json is a DataError naming the file; an unknown configuration names the known ones', () => {
    expect(() => writeReport(sweepDir({ pairs: 'adam,osp' }))).toThrow(/sweep\.json: "trend": expected \{"pairs"/);
    expect(() => writeReport(sweepDir({ pairs: [['adam', 'lion']] }))).toThrow(
      /trend: unknown configuration 'lion'; the sweep's configurations are adam, osp/,
    );
  });
});
