/**
 * Multi-seed sweeps in the report: trials `<configuration>__seed=N` aggregated per configuration
 * (n, mean, sample std, 95% t-interval, computed here again in closed form), unfinished seeds left
 * out but counted, report.json `configurations`, the aggregated report.md table before the per-trial
 * one, the 80-column console table, mean curves with a band and bars with error bars in the SVGs,
 * and `osp sweep report DIR --compare A,B` through the command line (Welch's interval by hand).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/train/config.ts';
import { buildReport, writeReport } from '../../src/sweep/report.ts';
import { configurationOf } from '../../src/sweep/labels.ts';
import { meanCurve } from '../../src/sweep/aggregate.ts';
import { consoleTable, formatStat } from '../../src/sweep/report_table.ts';
import { compareConfigurations, parseComparePair } from '../../src/sweep/compare.ts';
import { consoleColumns } from '../helpers/console_table.ts';
import { tempDir } from '../helpers/scratch.ts';
import { unescapeXml as unescape } from '../helpers/svg_read.ts';

// t(0.975; n - 1) from a printed table (not from stats.ts): the closed forms below use these.
const T975 = { 1: 12.706204736174707, 2: 4.302652729749464 } as const;
const FLOOR = 0.175;
const MODEL = { hiddenSize: 64, numLayers: 2, numHeads: 4, maxSeqLen: 64 };
const ADAM = { model: { ...MODEL, norm: 'rmsnorm', embedding: 'plain' }, optimizer: { routing: [{ match: '*', optimizer: 'adamw' }] } };
const OSP = { model: { ...MODEL, norm: 'ssnorm', embedding: 'embproj' } };

interface SeedRun {
  seed: number;
  kurtosis: number;
  valLoss: number;
  ratio: number;
  /** train/loss at steps 10, 20, 30 (and 40 for a seed that logged one step more). */
  loss: number[];
  layers: [number, number];
  finished?: boolean;
}

function writeTrial(sweep: string, name: string, config: Record<string, unknown>, r: SeedRun): void {
  const dir = join(sweep, name);
  mkdirSync(dir, { recursive: true });
  const input = { ...config, seed: r.seed, name, out: sweep, steps: 30, batch: { size: 2, seqLen: 32 }, quant: { every: 30 } };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ input, resolved: resolveRunConfig(input) }));
  const rows = r.loss.map((loss, i) => {
    const step = (i + 1) * 10;
    const row: Record<string, number> = { step, 'train/loss': loss };
    if (step === 30) {
      Object.assign(row, {
        'eval/loss': r.valLoss,
        'eval/bits_per_byte': r.valLoss / Math.LN2,
        'outliers/osp_kurtosis': r.kurtosis,
        'outliers/gaussian_floor': FLOOR,
        'outliers/layers.0.out/osp_kurtosis': r.layers[0],
        'outliers/layers.1.out/osp_kurtosis': r.layers[1],
        'quant/fp_loss': Math.log(10),
        'quant/w4a4kv4_rtn/perplexity': 10 * r.ratio,
        'quant/w4a4kv4_rtn/ppl_ratio': r.ratio,
      });
    }
    return row;
  });
  writeFileSync(join(dir, 'metrics.jsonl'), rows.map((row) => JSON.stringify(row) + '\n').join(''));
  if (r.finished !== false) writeFileSync(join(dir, 'summary.json'), JSON.stringify({ name, steps: 30 }));
}

const ADAM_RUNS: SeedRun[] = [
  { seed: 0, kurtosis: 1, valLoss: 2.5, ratio: 1.02, loss: [4, 3, 2.5, 2.25], layers: [1, 2] },
  { seed: 1, kurtosis: 2, valLoss: 2.6, ratio: 1.04, loss: [5, 3.5, 2.75], layers: [2, 4] },
  { seed: 2, kurtosis: 3, valLoss: 2.7, ratio: 1.06, loss: [6, 4, 3], layers: [3, 6] },
];
const OSP_RUNS: SeedRun[] = [
  { seed: 0, kurtosis: 0.1, valLoss: 2.2, ratio: 1.1, loss: [4, 3, 2], layers: [0.1, 0.2] },
  { seed: 1, kurtosis: 0.14, valLoss: 2.4, ratio: 1.2, loss: [4.5, 3.25, 2.25], layers: [0.2, 0.3] },
  // Killed after step 20 with wild values: counted, never averaged.
  { seed: 2, kurtosis: 50, valLoss: 9, ratio: 9, loss: [9, 9], layers: [50, 50], finished: false },
];

/** Two configurations, adam (3 seeds) and osp (2 of 3 finished), in the order the sweep runner writes. */
function buildSweep(): string {
  const sweep = tempDir('osp-sweep-seeds-');
  for (const r of ADAM_RUNS) writeTrial(sweep, `adam__seed=${r.seed}`, ADAM, r);
  for (const r of OSP_RUNS) writeTrial(sweep, `osp__seed=${r.seed}`, OSP, r);
  const order = [...ADAM_RUNS.map((r) => `adam__seed=${r.seed}`), ...OSP_RUNS.map((r) => `osp__seed=${r.seed}`)];
  writeFileSync(join(sweep, 'sweep.json'), JSON.stringify({ spec: '/x/spec.json', trials: order }));
  return sweep;
}

/** Closed-form mean, sample std and 95% half-width of a small sample. */
function closedForm(xs: number[]): { mean: number; std: number; hw: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
  return { mean, std, hw: (T975[(xs.length - 1) as 1 | 2] * std) / Math.sqrt(xs.length) };
}

const points = (attr: string) =>
  attr
    .trim()
    .split(/\s+/)
    .map((p) => p.split(',').map(Number) as [number, number]);
function polylines(svg: string): { name: string; points: [number, number][] }[] {
  return [...svg.matchAll(/<polyline class="series" data-name="([^"]*)"[^>]* points="([^"]*)"/g)].map((m) => ({
    name: unescape(m[1]!),
    points: points(m[2]!),
  }));
}
function bands(svg: string): { name: string; points: [number, number][] }[] {
  return [...svg.matchAll(/<polygon class="band" data-name="([^"]*)" points="([^"]*)"/g)].map((m) => ({
    name: unescape(m[1]!),
    points: points(m[2]!),
  }));
}

describe('configurations of a multi-seed sweep', () => {
  it('configurationOf strips the seed part wherever it is', () => {
    expect(configurationOf('adam__seed=1')).toEqual({ configuration: 'adam', seed: 1 });
    expect(configurationOf('osp__optimizer.muon.lr=0.01__seed=2')).toEqual({ configuration: 'osp__optimizer.muon.lr=0.01', seed: 2 });
    expect(configurationOf('seed=0')).toEqual({ configuration: 'base', seed: 0 });
    expect(configurationOf('seed=3__model.norm=ssnorm')).toEqual({ configuration: 'model.norm=ssnorm', seed: 3 });
    expect(configurationOf('adam')).toEqual({ configuration: 'adam', seed: null });
    expect(configurationOf('adam__seed=x')).toEqual({ configuration: 'adam__seed=x', seed: null });
  });

  it('report.json: n, mean, std and the 95% interval per column over the finished seeds', () => {
    const sweep = buildSweep();
    const { report } = writeReport(sweep);
    const json = JSON.parse(readFileSync(join(sweep, 'report.json'), 'utf8'));
    expect(json).toEqual(JSON.parse(JSON.stringify(report)));
    expect(json.configurations.map((c: { name: string }) => c.name)).toEqual(['adam', 'osp']);
    const [adam, osp] = json.configurations;
    expect(adam).toMatchObject({
      name: 'adam',
      variant: 'adam',
      grid: {},
      seeds: [0, 1, 2],
      finished: 3,
      finishedSeeds: [0, 1, 2],
      gaussianFloor: FLOOR,
    });
    expect(adam.trials).toEqual(['adam__seed=0', 'adam__seed=1', 'adam__seed=2']);
    expect(osp).toMatchObject({ seeds: [0, 1, 2], finished: 2, finishedSeeds: [0, 1] });
    expect(json.trials.map((t: { configuration: string; seed: number }) => [t.configuration, t.seed])).toEqual([
      ['adam', 0],
      ['adam', 1],
      ['adam', 2],
      ['osp', 0],
      ['osp', 1],
      ['osp', 2],
    ]);
    expect(Object.keys(adam.stats)).toEqual([
      'outliers/osp_kurtosis',
      'quant/w4a4kv4_rtn/perplexity',
      'quant/fp_perplexity',
      'quant/w4a4kv4_rtn/ppl_ratio',
      'eval/loss',
      'eval/bits_per_byte',
    ]);
    const check = (stat: { n: number; mean: number; std: number; ci95: [number, number] }, xs: number[]) => {
      const c = closedForm(xs);
      expect(stat.n).toBe(xs.length);
      expect(stat.mean).toBeCloseTo(c.mean, 12);
      expect(stat.std).toBeCloseTo(c.std, 12);
      expect(stat.ci95[0]).toBeCloseTo(c.mean - c.hw, 9);
      expect(stat.ci95[1]).toBeCloseTo(c.mean + c.hw, 9);
    };
    const fin = (runs: SeedRun[]) => runs.filter((r) => r.finished !== false);
    for (const [conf, runs] of [
      [adam, ADAM_RUNS],
      [osp, OSP_RUNS],
    ] as const) {
      check(
        conf.stats['outliers/osp_kurtosis'],
        fin(runs).map((r) => r.kurtosis),
      );
      check(
        conf.stats['eval/loss'],
        fin(runs).map((r) => r.valLoss),
      );
      check(
        conf.stats['eval/bits_per_byte'],
        fin(runs).map((r) => r.valLoss / Math.LN2),
      );
      check(
        conf.stats['quant/w4a4kv4_rtn/ppl_ratio'],
        fin(runs).map((r) => r.ratio),
      );
      check(
        conf.stats['quant/w4a4kv4_rtn/perplexity'],
        fin(runs).map((r) => 10 * r.ratio),
      );
    }
    // adam's kurtosis 1, 2, 3: mean 2, std 1, 2 +- 4.303 / sqrt(3).
    expect(adam.stats['outliers/osp_kurtosis'].ci95[1]).toBeCloseTo(2 + 4.3027 / Math.sqrt(3), 3);
    // Identical 16-bit perplexities: no spread, a zero-width interval.
    expect(adam.stats['quant/fp_perplexity'].std).toBeCloseTo(0, 12);
  });

  it('report.md: the aggregated table first (mean ± half-width), then the per-trial table', () => {
    const sweep = buildSweep();
    writeReport(sweep);
    const md = readFileSync(join(sweep, 'report.md'), 'utf8');
    const lines = md.split('\n');
    const agg = lines.indexOf('## Mean over seeds');
    const per = lines.indexOf('## Per trial');
    expect(agg).toBeGreaterThan(0);
    expect(per).toBeGreaterThan(agg);
    expect(lines[agg + 2]).toBe(
      '| config | seeds | norm | embedding | optimizer | excess kurtosis | W4A4KV4 RTN PPL | 16-bit PPL | ' +
        'W4A4KV4 RTN / 16-bit | val loss | bits/byte |',
    );
    // Closed forms: kurtosis 2 +- 2.484 -> '2.0 ± 2.5'; ratio 1.04 +- 0.0497; val loss 2.6 +- 0.248.
    const pm = (xs: number[], decimals: number) => {
      const c = closedForm(xs);
      return `${c.mean.toFixed(decimals)} \u00B1 ${c.hw.toFixed(decimals)}`;
    };
    expect(pm([1, 2, 3], 1)).toBe('2.0 \u00B1 2.5');
    const adamRow =
      `| adam | 3 | rmsnorm | plain | adamw | ${pm([1, 2, 3], 1)} | ${pm([10.2, 10.4, 10.6], 2)} | 10 \u00B1 0 | ` +
      `${pm([1.02, 1.04, 1.06], 3)} | ${pm([2.5, 2.6, 2.7], 2)} | ${pm(
        [2.5, 2.6, 2.7].map((v) => v / Math.LN2),
        2,
      )} |`;
    expect(lines.find((l) => l.startsWith('| adam |'))).toBe(adamRow);
    // osp: the two finished seeds only, 2 of 3; with 1 dof the interval is wide.
    const ospRow = lines.find((l) => l.startsWith('| osp | 2 of 3 |'))!;
    expect(ospRow).toContain(`| ${pm([0.1, 0.14], 2)} |`);
    expect(ospRow).toContain(`| ${pm([1.1, 1.2], 2)} |`);
    expect(md).toContain('Left out of the means (unfinished or not started): osp (2 of 3 seeds finished).');
    expect(md).toContain(
      "Each cell: the mean over the configuration's finished seeds \u00B1 the half-width of its 95% confidence interval",
    );
    // The per-trial table keeps every trial, the unfinished one marked, with the seed as a column.
    expect(lines[per + 2]).toMatch(/^\| trial \| seed \| norm \|/);
    expect(lines).toContain('| adam\\_\\_seed=1 | 1 | rmsnorm | plain | adamw | 2 | 10.4 | 10 | 1.04 | 2.6 | 3.751 |');
    expect(lines.some((l) => l.startsWith('| osp\\_\\_seed=2 (unfinished: step 20 of 30) | 2 |'))).toBe(true);
    // osp's mean kurtosis (0.12) is below the floor, its interval is not entirely.
    expect(md).toMatch(
      /Mean below the floor \(osp\): on average over their seeds [^\n]*below floor \(sub-Gaussian\), not "at the floor"\./,
    );
    expect(md).toContain('(mean over seeds, band \u00B1 one standard deviation)](loss.svg)');
    expect(md).toContain('(mean over seeds, error bar: 95% confidence interval)](quant_gap.svg)');
  });

  it('the whole interval below the floor says so; a configuration with one seed shows its mean alone', () => {
    const sweep = tempDir('osp-sweep-seeds-');
    writeTrial(sweep, 'osp__seed=0', OSP, { ...OSP_RUNS[0]!, kurtosis: 0.1 });
    writeTrial(sweep, 'osp__seed=1', OSP, { ...OSP_RUNS[1]!, kurtosis: 0.1001 });
    writeTrial(sweep, 'adam__seed=0', ADAM, ADAM_RUNS[0]!);
    const { report } = writeReport(sweep);
    const md = readFileSync(join(sweep, 'report.md'), 'utf8');
    expect(md).toMatch(/Mean below the floor \(osp\)[^\n]*; the whole 95% interval is below it for osp\./);
    const adam = report.configurations.find((c) => c.name === 'adam')!;
    expect(adam.stats['outliers/osp_kurtosis']).toEqual({ n: 1, mean: 1, std: null, ci95: null });
    expect(md.split('\n').find((l) => l.startsWith('| adam | 1 |'))).toContain('| adamw | 1 | 10.2 | 10 | 1.02 | 2.5 |');
  });

  it('the console shows the aggregated table within 80 columns', () => {
    const sweep = buildSweep();
    const printed: string[] = [];
    writeReport(sweep, { title: 'seeds', print: (l) => printed.push(l) });
    for (const l of printed) expect(l.length, l).toBeLessThanOrEqual(80);
    expect(printed[0]).toBe('seeds: 2 configurations, 6 trials');
    const cols = consoleColumns(printed);
    expect(cols.get('config')).toEqual(['adam', 'osp *']);
    expect(cols.get('seeds')).toEqual(['3', '2 of 3']);
    expect(cols.get('kurtosis')).toEqual(['2.0\u00B12.5', '0.12\u00B10.25']);
    expect(cols.get('RTN/16b')).toEqual(['1.040\u00B10.050', '1.15\u00B10.64']);
    expect(cols.get('val loss')).toEqual(['2.60\u00B10.25', '2.3\u00B11.3']);
    expect(printed.join('\n')).toContain('* not every seed finished');
    // Same table from consoleTable at another width: still fitted.
    for (const l of consoleTable(buildReport(sweep).report, [], 60)) expect(l.length, l).toBeLessThanOrEqual(60);
  });

  it('line charts: one mean curve per configuration over the steps all its finished seeds have, with a band', () => {
    const sweep = buildSweep();
    writeReport(sweep);
    const loss = readFileSync(join(sweep, 'loss.svg'), 'utf8');
    const lines = polylines(loss);
    expect(lines.map((l) => l.name)).toEqual(['adam', 'osp']);
    // adam seed 0 logged step 40 too, the others did not: steps 10, 20, 30. osp: its unfinished seed
    // (steps 10 and 20 only) is left out, else it would cut the curve to two steps.
    expect(lines.map((l) => l.points.length)).toEqual([3, 3]);
    const b = bands(loss);
    expect(b.map((x) => x.name)).toEqual(['adam', 'osp']);
    // A closed outline: the upper edge left to right, the lower edge back.
    expect(b.map((x) => x.points.length)).toEqual([6, 6]);
    // Bands under the lines: every polygon comes before every polyline.
    expect(loss.lastIndexOf('<polygon class="band"')).toBeLessThan(loss.indexOf('<polyline class="series"'));
    // Same colour, low opacity.
    expect(loss).toMatch(/<polygon class="band" data-name="adam" points="[^"]*" fill="#0072B2" fill-opacity="0.18"/);
    expect(loss).toContain('band: \u00B1 one standard deviation across seeds');

    // Pixel geometry: at each step the mean lies between the band's edges, symmetric (mean +- std).
    const [adamLine] = lines;
    const [adamBand] = b;
    for (let i = 0; i < 3; i++) {
      const [x, y] = adamLine!.points[i]!;
      const hi = adamBand!.points[i]!;
      const lo = adamBand!.points[5 - i]!;
      expect(hi[0]).toBeCloseTo(x, 6);
      expect(lo[0]).toBeCloseTo(x, 6);
      expect(y - hi[1]).toBeCloseTo(lo[1] - y, 1);
      expect(hi[1]).toBeLessThan(y);
    }
    // Step 10: losses 4, 5, 6 (mean 5, std 1); step 30: 2.5, 2.75, 3 (std 0.25): the band narrows 4x.
    const width = (i: number) => adamBand!.points[5 - i]![1] - adamBand!.points[i]![1];
    expect(width(0) / width(2)).toBeCloseTo(4, 1);

    for (const f of ['val_loss.svg', 'kurtosis.svg', 'kurtosis_layers.svg']) {
      const svg = readFileSync(join(sweep, f), 'utf8');
      expect(
        polylines(svg).map((l) => l.name),
        f,
      ).toEqual(['adam', 'osp']);
      expect(
        bands(svg).map((x) => x.name),
        f,
      ).toEqual(['adam', 'osp']);
    }
    // Legend: the configuration's label, with its finished seeds when not all.
    expect(loss).toContain('>osp (2 of 3 seeds)</text>');
    const layers = readFileSync(join(sweep, 'kurtosis_layers.svg'), 'utf8');
    expect(bands(layers).map((x) => x.points.length)).toEqual([4, 4]);
  });

  it('quant_gap.svg: one bar per configuration at the mean with its 95% interval as an error bar', () => {
    const sweep = buildSweep();
    writeReport(sweep);
    const svg = readFileSync(join(sweep, 'quant_gap.svg'), 'utf8');
    const bars = [...svg.matchAll(/<rect class="bar" data-label="([^"]*)" data-value="([^"]*)"/g)].map((m) => [m[1], Number(m[2])]);
    expect(bars.map(([l]) => l)).toEqual(['adam', 'osp']);
    expect(bars[0]![1]).toBeCloseTo(1.04, 12);
    expect(bars[1]![1]).toBeCloseTo(1.15, 12);
    const errs = [...svg.matchAll(/<g class="error-bar" data-label="([^"]*)" data-lo="([^"]*)" data-hi="([^"]*)"/g)].map(
      (m) => [m[1], Number(m[2]), Number(m[3])] as const,
    );
    expect(errs.map(([l]) => l)).toEqual(['adam', 'osp']);
    const c = closedForm([1.02, 1.04, 1.06]);
    expect(errs[0]![1]).toBeCloseTo(c.mean - c.hw, 9);
    expect(errs[0]![2]).toBeCloseTo(c.mean + c.hw, 9);
    expect(svg).toContain('error bar: 95% confidence interval of the mean');
  });

  it('a sweep without seeds has no aggregated section, bands or error bars', () => {
    const sweep = tempDir('osp-sweep-seeds-');
    writeTrial(sweep, 'adam', ADAM, ADAM_RUNS[0]!);
    writeTrial(sweep, 'osp', OSP, OSP_RUNS[0]!);
    const { report } = writeReport(sweep);
    const md = readFileSync(join(sweep, 'report.md'), 'utf8');
    expect(md).not.toContain('## Mean over seeds');
    expect(md).not.toContain('## Per trial');
    expect(md.split('\n')[2]).toMatch(/^\| config \| norm \|/);
    for (const f of report.plots) {
      const svg = readFileSync(join(sweep, f), 'utf8');
      expect(svg, f).not.toContain('class="band"');
      expect(svg, f).not.toContain('class="error-bar"');
      expect(svg, f).not.toContain('class="caption"');
    }
    // Still one configuration per trial in report.json, for --compare.
    expect(report.configurations.map((c) => [c.name, c.finished, c.stats['eval/loss']!.n])).toEqual([
      ['adam', 1, 1],
      ['osp', 1, 1],
    ]);
  });

  it('meanCurve averages the x values every curve has', () => {
    const m = meanCurve([
      [
        [1, 2],
        [2, 4],
        [3, 9],
      ],
      [
        [1, 4],
        [2, 8],
      ],
    ]);
    expect(m.points).toEqual([
      [1, 3],
      [2, 6],
    ]);
    expect(m.band[0]![1]).toBeCloseTo(3 - Math.SQRT2, 12);
    expect(m.band[1]![2]).toBeCloseTo(6 + 2 * Math.SQRT2, 12);
    expect(meanCurve([[[1, 2]]])).toEqual({ points: [[1, 2]], band: [] });
  });

  it("formatStat: mean ± half-width at the half-width's precision", () => {
    const stat = (mean: number, hw: number) => ({ n: 3, mean, std: 1, ci95: [mean - hw, mean + hw] as [number, number] });
    expect(formatStat(stat(1.03456, 0.01234))).toBe('1.035 \u00B1 0.012');
    expect(formatStat(stat(1251, 314))).toBe('1250 \u00B1 310');
    expect(formatStat(stat(180000, 20000))).toBe('1.8e+5 \u00B1 2e+4');
    expect(formatStat({ n: 1, mean: 2.5, std: null, ci95: null })).toBe('2.5');
    expect(formatStat({ n: 0, mean: null, std: null, ci95: null })).toBe('-');
    expect(formatStat({ n: 2, mean: NaN, std: NaN, ci95: [NaN, NaN] })).toBe('NaN');
  });
});

describe('osp sweep report DIR --compare A,B', () => {
  function osp(...args: string[]): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  it("prints both means and B - A with Welch's interval, writes nothing", () => {
    const sweep = buildSweep();
    const r = osp('sweep', 'report', sweep, '--compare', 'adam,osp');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('A = adam: 3 of 3 seeds finished [0, 1, 2]');
    expect(lines).toContain('B = osp: 2 of 3 seeds finished [0, 1]');
    // Writes nothing: no report files appear.
    expect(() => readFileSync(join(sweep, 'report.md'))).toThrow();

    // Kurtosis by hand: A = 1, 2, 3 (s^2 = 1), B = 0.1, 0.14 (s^2 = 0.0008).
    const va = 1 / 3;
    const vb = 0.0008 / 2;
    const se = Math.sqrt(va + vb);
    const dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1);
    const diff = 0.12 - 2;
    // dof = 2.0048: t(0.975; dof) from scipy.stats.t.ppf (just under the table's 4.303 at 2 dof).
    expect(dof).toBeCloseTo(2.004797106184334, 12);
    const t = 4.2928017342831195;
    const row = lines.find((l) => l.startsWith('kurtosis'))!;
    const m = /(-?[\d.]+)\s+\[(-?[\d.]+), (-?[\d.]+)\]\s+([\d.]+)$/.exec(row);
    expect(m, row).not.toBeNull();
    expect(Number(m![1])).toBeCloseTo(diff, 2);
    expect(Number(m![2])).toBeCloseTo(diff - t * se, 2);
    expect(Number(m![3])).toBeCloseTo(diff + t * se, 2);
    expect(Number(m![4])).toBeCloseTo(dof, 1);
    expect(row).toMatch(/^kurtosis\s+2 \(3\)\s+0\.12 \(2\)/);

    // Val loss: A = 2.5, 2.6, 2.7, B = 2.2, 2.4: the interval includes 0, no '*'.
    const vrow = lines.find((l) => l.startsWith('val loss'))!;
    expect(vrow).not.toContain('*');
    const vm = /\[(-?[\d.]+), (-?[\d.]+)\]/.exec(vrow)!;
    const vse = Math.sqrt(0.01 / 3 + 0.02 / 2);
    const vdof = (0.01 / 3 + 0.02 / 2) ** 2 / ((0.01 / 3) ** 2 / 2 + (0.02 / 2) ** 2 / 1);
    expect(vdof).toBeGreaterThan(1);
    expect(vdof).toBeLessThan(2);
    // Welch dof ~1.7: the interval's half-width is between t(1 dof) * se and t(2 dof) * se.
    const half = (Number(vm[2]) - Number(vm[1])) / 2;
    expect(half).toBeGreaterThan(4.302652729749464 * vse);
    expect(half).toBeLessThan(12.706204736174707 * vse);
    expect((Number(vm[1]) + Number(vm[2])) / 2).toBeCloseTo(2.3 - 2.6, 2);

    // The same numbers from the library (the CLI only prints them).
    const c = compareConfigurations(sweep, 'adam', 'osp');
    const k = c.rows.find((x) => x.key === 'outliers/osp_kurtosis')!;
    expect(k.difference.dof).toBeCloseTo(dof, 10);
    expect(k.difference.se).toBeCloseTo(se, 12);
    expect(k.difference.ci95![1] - diff).toBeCloseTo(t * se, 2);
  });

  it('a single seed on a side: the interval is not available', () => {
    const sweep = tempDir('osp-sweep-seeds-');
    for (const r of ADAM_RUNS) writeTrial(sweep, `adam__seed=${r.seed}`, ADAM, r);
    writeTrial(sweep, 'osp__seed=0', OSP, OSP_RUNS[0]!);
    const r = osp('sweep', 'report', sweep, '--compare', 'adam,osp');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').find((l) => l.startsWith('kurtosis'))).toMatch(/^kurtosis\s+2 \(3\)\s+0\.1 \(1\)\s+-1\.9\s+n\/a \(n=1\)$/);
  });

  it('unknown configuration names and malformed pairs are clear errors', () => {
    const sweep = buildSweep();
    const r = osp('sweep', 'report', sweep, '--compare', 'adam,sgd');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`unknown configuration 'sgd' in ${sweep}; known configurations: adam, osp`);
    // A trial name (with its seed) is not a configuration name.
    expect(osp('sweep', 'report', sweep, '--compare', 'adam__seed=0,osp').stderr).toContain("unknown configuration 'adam__seed=0'");
    const bad = osp('sweep', 'report', sweep, '--compare', 'adam');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--compare expects two configuration names separated by a comma');
    expect(() => parseComparePair('a,a')).toThrow(/two different configurations/);
    expect(parseComparePair(' adam , osp ')).toEqual(['adam', 'osp']);
    const help = osp('sweep', '--help');
    expect(help.stdout).toContain('osp sweep report DIR [--compare A,B]');
    expect(help.stdout).toContain('--compare A,B');
  });
});
