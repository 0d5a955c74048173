import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/train/config.ts';
import { DataError } from '../../src/errors.ts';
import { quantVariants, resolveQuantConfig, type QuantConfigInput } from '../../src/quant/config.ts';
import { collectTrials, readMetricsJsonl, writeReport, type SweepReport } from '../../src/sweep/report.ts';
import { consoleTable } from '../../src/sweep/report_table.ts';
import { consoleColumns } from '../helpers/console_table.ts';
import { tempDir } from '../helpers/scratch.ts';
import { unescapeXml as unescape } from '../helpers/svg_read.ts';

// ---------------------------------------------------------------------------------------------------
// A fake sweep directory: what `osp train` leaves in each trial directory, with hand-picked numbers
// (few significant digits, so the expected table cells can be written down literally).

/**
 * summary.json's `monitors.quant` as osp-lab 0.1 wrote it (one W4A4KV4 RTN measurement at step 100,
 * tagged w4a4kv4 or, with the block-diagonal Hadamard, w4a4kv4_had): the report must keep reading it.
 */
function legacyQuantSummary(fpPerplexity: number, perplexity: number, had: boolean) {
  return {
    step: 100,
    fp: { loss: Math.log(fpPerplexity), perplexity: fpPerplexity },
    quant: { loss: Math.log(perplexity), perplexity },
    gap: { loss: Math.log(perplexity / fpPerplexity), perplexityRatio: perplexity / fpPerplexity },
    config: { w: 4, a: 4, kv: 4, had, clipSearch: true },
  };
}

const FLOOR = 0.175; // the estimator's Gaussian floor at d = 64 (README)
const UNFINISHED = 'a<b&c'; // also the escaping test: a legal directory name on Linux

type Row = Record<string, number | string | null>;

function writeTrial(
  sweep: string,
  name: string,
  config: Record<string, unknown>,
  rows: Row[],
  summary?: Record<string, unknown>,
  tail = '',
): string {
  const dir = join(sweep, name);
  mkdirSync(dir, { recursive: true });
  // Run names are restricted; a directory can still be renamed to anything (the report uses the directory's).
  const input = { ...config, name: name.replace(/[^A-Za-z0-9._-]/g, '_'), out: sweep };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ input, resolved: resolveRunConfig(input) }, null, 2));
  writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r) + '\n').join('') + tail);
  if (summary) writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2));
  return dir;
}

const MODEL = { hiddenSize: 64, numLayers: 2, numHeads: 4, maxSeqLen: 64 };
const BATCH = { size: 2, seqLen: 32 };

/** Outlier-monitor metrics of one measurement: aggregate, floor and the per-tap values. */
function outlierRow(agg: number, layers: [number, number]): Row {
  const row: Row = { 'outliers/osp_kurtosis': agg, 'outliers/gaussian_floor': FLOOR, 'outliers/embed/osp_kurtosis': 0.5 };
  layers.forEach((k, i) => {
    row[`outliers/layers.${i}.attn_in/osp_kurtosis`] = k / 2;
    row[`outliers/layers.${i}.ffn_in/osp_kurtosis`] = k / 3;
    row[`outliers/layers.${i}.out/osp_kurtosis`] = k;
  });
  row['outliers/final_norm/osp_kurtosis'] = agg;
  return row;
}

function perTap(layers: [number, number]): Record<string, unknown> {
  return Object.fromEntries(
    layers.map((k, i) => [`layers.${i}.out`, { ospKurtosis: k, channelKurtosis: 1.5, maxMedianRatio: 9, maxAbs: 30 }]),
  );
}

/**
 * adam: AdamW everywhere, RMSNorm, plain embedding, W4A4KV4 without Hadamard, Hessian probe on.
 * osp: Muon (default routing), SSNorm, EmbProj, W4A4KV4 with FFN Hadamard, Hessian probe on.
 * (Both as osp-lab < 0.2 wrote them: tags w4a4kv4 / w4a4kv4_had, the old summary.json quant shape.)
 * a<b&c: Muon with embedding and head on Muon, killed at step 30 (truncated last line, no summary).
 */
function buildSweep(): string {
  const sweep = tempDir('osp-sweep-report-');
  writeTrial(
    sweep,
    'adam',
    {
      steps: 100,
      model: { ...MODEL, norm: 'rmsnorm', embedding: 'plain' },
      batch: BATCH,
      optimizer: { routing: [{ match: '*', optimizer: 'adamw' }] },
      quant: { every: 50 },
      hessian: { every: 50, topk: 2 },
    },
    [
      { step: 1, time: '2025-01-01T00:00:00Z', 'train/loss': 5.5, 'train/grad_norm': 2, ...outlierRow(0.3, [0.25, 0.5]) },
      { step: 10, 'train/loss': null, 'train/grad_norm': 1.5 }, // a non-finite loss: JSON writes null
      {
        step: 50,
        'train/loss': 3.5,
        'train/grad_norm': 1,
        ...outlierRow(200, [150, 400]),
        'quant/fp_loss': Math.log(20),
        'quant/w4a4kv4/loss': Math.log(2000),
        'quant/w4a4kv4/perplexity': 2000,
        'quant/w4a4kv4/ppl_ratio': 100,
      },
      { step: 60, 'train/loss': 3.25, 'hessian/eig_1': 30, 'hessian/eig_2': 10, 'hessian/measured_at_step': 50 },
      {
        step: 100,
        'train/loss': 2.75,
        'train/grad_norm': 0.75,
        'eval/loss': 2.5,
        'eval/perplexity': Math.exp(2.5),
        'eval/bits_per_byte': 3.5,
        ...outlierRow(1250, [900, 1600]),
        'quant/fp_loss': Math.log(12.5),
        'quant/w4a4kv4/loss': Math.log(80000),
        'quant/w4a4kv4/perplexity': 80000,
        'quant/w4a4kv4/ppl_ratio': 6400,
        'hessian/eig_1': 42.5,
        'hessian/eig_2': 12,
        'hessian/measured_at_step': 100,
      },
    ],
    {
      name: 'adam',
      steps: 100,
      eval: { loss: 2.5, perplexity: Math.exp(2.5), bitsPerByte: 3.5 },
      unigramBaseline: { loss: 4.5, bitsPerByte: 6.5 },
      monitors: {
        outliers: { step: 100, ospKurtosis: 1250, gaussianFloor: FLOOR, perTap: perTap([900, 1600]) },
        quant: legacyQuantSummary(12.5, 80000, false),
        hessian: { step: 100, topk: [42.5, 12], outlierCount: 1 },
      },
    },
  );
  writeTrial(
    sweep,
    'osp',
    {
      steps: 100,
      model: { ...MODEL, norm: 'ssnorm', embedding: 'embproj' },
      batch: BATCH,
      quant: { every: 100, had: true },
      hessian: { every: 100, topk: 2 },
    },
    [
      { step: 1, 'train/loss': 5.5, 'train/grad_norm': 2, ...outlierRow(0.25, [0.2, 0.3]) },
      { step: 50, 'train/loss': 3.25, 'train/grad_norm': 1, ...outlierRow(0.5, [0.25, 0.75]) },
      {
        step: 100,
        'train/loss': 2.5,
        'train/grad_norm': 0.5,
        'eval/loss': 2.25,
        'eval/perplexity': Math.exp(2.25),
        'eval/bits_per_byte': 3.25,
        ...outlierRow(0.2, [0.18, 0.22]),
        'quant/fp_loss': Math.log(10),
        'quant/w4a4kv4_had/loss': Math.log(14.5),
        'quant/w4a4kv4_had/perplexity': 14.5,
        'quant/w4a4kv4_had/ppl_ratio': 1.45,
      },
      { step: 103, 'hessian/eig_1': 8.5, 'hessian/eig_2': 4, 'hessian/measured_at_step': 100 },
    ],
    {
      name: 'osp',
      steps: 100,
      eval: { loss: 2.25, perplexity: Math.exp(2.25), bitsPerByte: 3.25 },
      unigramBaseline: { loss: 4.5, bitsPerByte: 6.5 },
      monitors: {
        outliers: { step: 100, ospKurtosis: 0.2, gaussianFloor: FLOOR, perTap: perTap([0.18, 0.22]) },
        quant: legacyQuantSummary(10, 14.5, true),
        hessian: { step: 100, topk: [8.5, 4], outlierCount: 0 },
      },
    },
  );
  writeTrial(
    sweep,
    UNFINISHED,
    {
      steps: 100,
      model: { ...MODEL, norm: 'rmsnorm', embedding: 'plain' },
      batch: BATCH,
      optimizer: {
        routing: [
          { match: 'model.embed_tokens.weight', optimizer: 'muon' },
          { match: 'lm_head.weight', optimizer: 'muon' },
        ],
      },
    },
    [
      { step: 1, 'train/loss': 5.5, 'train/grad_norm': 3, ...outlierRow(0.5, [0.5, 1]) },
      { step: 10, 'train/loss': 4.5, 'train/grad_norm': 2.5 },
      { step: 20, 'train/loss': 4, 'eval/loss': 3, 'eval/bits_per_byte': 4.25, ...outlierRow(25, [12, 50]) },
      { step: 30, 'train/loss': 3.75, 'train/grad_norm': 1.25 },
    ],
    undefined,
    '{"step":40,"train/loss":3.6,"train/gr', // killed in the middle of a write
  );
  // What the sweep runner keeps next to the trials: its trial configs (no config.json) and the order.
  mkdirSync(join(sweep, 'trials'));
  writeFileSync(join(sweep, 'trials', 'adam.json'), '{}');
  writeFileSync(join(sweep, 'sweep.json'), JSON.stringify({ spec: '/x/spec.json', trials: ['osp', 'adam', UNFINISHED, 'later'] }));
  return sweep;
}

// ---------------------------------------------------------------------------------------------------
// SVG inspection by regexes over the (well-formed, see svg.test.ts) output.

function viewBox(svg: string): [number, number, number, number] {
  const m = /<svg [^>]*viewBox="([^"]+)"/.exec(svg);
  expect(m).not.toBeNull();
  return m![1]!.split(' ').map(Number) as [number, number, number, number];
}

function polylines(svg: string): { name: string; points: [number, number][] }[] {
  return [...svg.matchAll(/<polyline class="series" data-name="([^"]*)"[^>]* points="([^"]*)"/g)].map((m) => ({
    name: unescape(m[1]!),
    points: m[2]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]),
  }));
}

const attrValues = (svg: string, re: RegExp) => [...svg.matchAll(re)].map((m) => unescape(m[1]!));
const legendNames = (svg: string) => attrValues(svg, /<g class="legend-entry" data-name="([^"]*)"/g);
const yTickValues = (svg: string) => attrValues(svg, /<g class="tick y" data-value="([^"]*)"/g).map(Number);
const hLineValues = (svg: string) => attrValues(svg, /<line class="hline" data-y="([^"]*)"/g).map(Number);
const gapBars = (svg: string) =>
  [...svg.matchAll(/<rect class="bar" data-label="([^"]*)" data-value="([^"]*)"/g)].map((m) => [unescape(m[1]!), Number(m[2])]);
const shownBarLabels = (svg: string) => attrValues(svg, /<text class="bar-label"[^>]*>([^<]*)<\/text>/g);
const svgTitle = (svg: string) => unescape(/<text class="title"[^>]*>([^<]*)<\/text>/.exec(svg)![1]!);
const yAxisLabel = (svg: string) => unescape(/<text class="axis-label y"[^>]*>([^<]*)<\/text>/.exec(svg)![1]!);

/** Checks what every chart must satisfy and returns its series. */
function checkLineChart(svg: string): { name: string; points: [number, number][] }[] {
  expect(svg.startsWith('<svg ')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  // Escaped: no raw '<' or bare '&' inside any attribute value.
  for (const m of svg.matchAll(/="([^"]*)"/g)) {
    expect(m[1]).not.toMatch(/</);
    expect(m[1]).not.toMatch(/&(?!(amp|lt|gt|quot|#39);)/);
  }
  const [vx, vy, vw, vh] = viewBox(svg);
  const lines = polylines(svg);
  for (const l of lines) {
    expect(l.points.length).toBeGreaterThan(0);
    for (const [x, y] of l.points) {
      expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true);
      expect(x >= vx && x <= vx + vw && y >= vy && y <= vy + vh).toBe(true);
    }
  }
  expect(legendNames(svg)).toEqual(lines.map((l) => l.name));
  return lines;
}

function expectPowersOfTen(values: number[]): void {
  expect(values.length).toBeGreaterThanOrEqual(2);
  for (const v of values) expect(Math.log10(v)).toBeCloseTo(Math.round(Math.log10(v)), 12);
}

// ---------------------------------------------------------------------------------------------------

describe('writeReport', () => {
  it('writes report.json with the values of every trial', () => {
    const sweep = buildSweep();
    const { files, report } = writeReport(sweep, { title: 'OSP ablation (tiny)', metrics: ['train/grad_norm', 'nope/x'] });
    // The gap is measured at two steps here (50 and 100), so it is also drawn against step and against loss.
    const plots = [
      'loss.svg',
      'val_loss.svg',
      'kurtosis.svg',
      'kurtosis_layers.svg',
      'quant_gap.svg',
      'quant_gap_steps.svg',
      'quant_gap_vs_loss.svg',
      'hessian.svg',
    ];
    const names = ['report.json', 'report.md', ...plots];
    expect([...files].sort()).toEqual(names.map((n) => join(sweep, n)).sort());
    for (const f of files) expect(existsSync(f)).toBe(true);

    const json = JSON.parse(readFileSync(join(sweep, 'report.json'), 'utf8')) as SweepReport;
    expect(json).toEqual(JSON.parse(JSON.stringify(report)));
    expect(json.title).toBe('OSP ablation (tiny)');
    // sweep.json's order; 'later' is listed there but has no directory yet; 'trials/' is not a trial.
    expect(json.trials.map((t) => t.name)).toEqual(['osp', 'adam', UNFINISHED]);
    expect(json.pending).toEqual(['later']);
    expect(json.floors).toEqual([{ hiddenSize: 64, gaussianFloor: FLOOR, source: 'measured' }]);
    expect(json.plots).toEqual(plots);

    const [osp, adam, killed] = json.trials;
    // Parameters of a 2-layer model, counted by hand: 9 per block (2 norms + 7 matrices), embedding,
    // final norm, head (+ 2 EmbProj matrices). adam: all 21 on AdamW. osp: 14 block matrices and the
    // 2 EmbProj on Muon, embedding, head and 5 norms on AdamW. a<b&c: embedding and head moved to Muon.
    expect(adam!.modules).toEqual({
      norm: 'rmsnorm',
      embedding: 'plain',
      optimizer: 'adamw',
      routing: { adamw: 21 },
      hiddenSize: 64,
      numLayers: 2,
    });
    expect(osp!.modules).toEqual({
      norm: 'ssnorm',
      embedding: 'embproj',
      optimizer: 'muon',
      routing: { muon: 16, adamw: 7 },
      hiddenSize: 64,
      numLayers: 2,
    });
    expect(killed!.modules.optimizer).toBe('muon (emb too)');
    expect(killed!.modules.routing).toEqual({ muon: 16, adamw: 5 });

    expect(adam).toMatchObject({
      finished: true,
      steps: 100,
      plannedSteps: 100,
      valLoss: 2.5,
      bitsPerByte: 3.5,
      ospKurtosis: 1250,
      gaussianFloor: FLOOR,
      layerKurtosis: [900, 1600],
      hessianEig1: 42.5,
      hessianStep: 100,
      extra: { 'train/grad_norm': 0.75, 'nope/x': null },
      truncatedMetricsLine: false,
    });
    expect(adam!.valPerplexity).toBeCloseTo(Math.exp(2.5), 12);
    expect(Object.keys(adam!.quant)).toEqual(['w4a4kv4']);
    expect(adam!.quant.w4a4kv4!.fpPerplexity).toBe(12.5);
    expect(adam!.quant.w4a4kv4!.perplexity).toBe(80000);
    expect(adam!.quant.w4a4kv4!.pplRatio).toBe(6400);
    expect(adam!.quant.w4a4kv4!.step).toBe(100);
    expect(adam!.quant.w4a4kv4!.loss).toBeCloseTo(Math.log(80000), 12);

    expect(osp).toMatchObject({ finished: true, steps: 100, valLoss: 2.25, bitsPerByte: 3.25, ospKurtosis: 0.2 });
    expect(osp!.layerKurtosis).toEqual([0.18, 0.22]);
    expect(Object.keys(osp!.quant)).toEqual(['w4a4kv4_had']);
    expect(osp!.quant.w4a4kv4_had).toMatchObject({ fpPerplexity: 10, perplexity: 14.5, pplRatio: 1.45, step: 100 });
    expect(osp!.hessianEig1).toBe(8.5);
    expect(osp!.extra).toEqual({ 'train/grad_norm': 0.5, 'nope/x': null });

    // The killed trial: the latest logged values (step 20's measurement, not step 1's).
    expect(killed).toMatchObject({
      finished: false,
      steps: 30,
      plannedSteps: 100,
      valLoss: 3,
      valPerplexity: null,
      bitsPerByte: 4.25,
      ospKurtosis: 25,
      gaussianFloor: FLOOR,
      layerKurtosis: [12, 50],
      quant: {},
      hessianEig1: null,
      hessianStep: null,
      extra: { 'train/grad_norm': 1.25, 'nope/x': null },
      truncatedMetricsLine: true,
    });
  });

  it('writes report.md: the ablation table, the floor line, unfinished trials marked, escaped names, plot links', () => {
    const sweep = buildSweep();
    writeReport(sweep, { metrics: ['train/grad_norm', 'nope/x'] });
    const md = readFileSync(join(sweep, 'report.md'), 'utf8');
    const lines = md.split('\n');
    expect(lines[0]).toBe(
      `# Sweep ${sweep
        .split('/')
        .at(-1)!
        .replace(/[_*[\]\\`|#]/g, '\\$&')}`,
    );
    // Two tags of osp-lab < 0.2 (old-shape summary.json): one ratio column each, plain before FFN Had,
    // and no perplexity column (that is kept only when the report has a single tag).
    expect(lines).toContain(
      '| config | norm | embedding | optimizer | excess kurtosis | 16-bit PPL | ' +
        'W4A4KV4 v0.1 RTN (keys unrotated, min/max ranges) / 16-bit | ' +
        'W4A4KV4 v0.1 RTN + FFN Had (block-diagonal, keys unrotated, min/max ranges) / 16-bit | ' +
        'val loss | bits/byte | Hessian eig 1 | train/grad\\_norm | nope/x |',
    );
    expect(lines).toContain('| osp | ssnorm | embproj | muon | 0.2 | 10 | - | 1.45 | 2.25 | 3.25 | 8.5 | 0.5 | - |');
    expect(lines).toContain('| adam | rmsnorm | plain | adamw | 1250 | 12.5 | 6400 | - | 2.5 | 3.5 | 42.5 | 0.75 | - |');
    expect(lines).toContain(
      '| a&lt;b&amp;c (unfinished: step 30 of 100) | rmsnorm | plain | muon (emb too) | 25 | - | - | - | 3 | 4.25 | - | 1.25 | - |',
    );
    // Table rows come in sweep order.
    const rowIndex = (p: string) => lines.findIndex((l) => l.startsWith(`| ${p}`));
    expect(rowIndex('osp')).toBeLessThan(rowIndex('adam'));
    expect(rowIndex('adam')).toBeLessThan(rowIndex('a&lt;b'));
    expect(md).toContain('at this width an outlier-free model measures about 0.175, not 0');
    expect(md).toMatch(/Unfinished \(no summary\.json[^\n]*a&lt;b&amp;c \(step 30 of 100\)/);
    expect(md).toContain('Not started: later.');
    expect(md).not.toContain('a<b');
    // Per-layer table and links to every plot.
    expect(lines).toContain('| adam | 900 | 1600 |');
    expect(lines).toContain('| a&lt;b&amp;c | 12 | 50 |');
    for (const p of ['loss.svg', 'val_loss.svg', 'kurtosis.svg', 'kurtosis_layers.svg', 'quant_gap.svg', 'hessian.svg']) {
      expect(md).toContain(`](${p})`);
    }
  });

  it('names the trials whose kurtosis is below the Gaussian floor as sub-Gaussian, not "at the floor"', () => {
    const sweep = tempDir('osp-sweep-report-');
    const cfg = { steps: 10, model: { ...MODEL, norm: 'ssnorm', embedding: 'embproj' }, batch: BATCH };
    writeTrial(sweep, 'low', cfg, [{ step: 10, 'train/loss': 3, ...outlierRow(0.1, [0.1, 0.1]) }]);
    writeTrial(sweep, 'high', cfg, [{ step: 10, 'train/loss': 3, ...outlierRow(0.5, [0.5, 0.5]) }]);
    writeReport(sweep);
    const md = readFileSync(join(sweep, 'report.md'), 'utf8');
    expect(md).toMatch(/Below the floor \(low\): these measure less than Gaussian noise[^\n]*sub-Gaussian\), not "at the floor"/);
    expect(md).not.toMatch(/Below the floor \([^)]*high/);
  });

  it('writes SVG plots with one series or bar per trial that has the data', () => {
    const sweep = buildSweep();
    writeReport(sweep);
    const read = (f: string) => readFileSync(join(sweep, f), 'utf8');

    // Loss: every trial; adam's null loss (step 10) is skipped, the killed trial's partial line is gone.
    const loss = checkLineChart(read('loss.svg'));
    expect(loss.map((l) => l.name)).toEqual(['osp', 'adam', UNFINISHED]);
    expect(loss.map((l) => l.points.length)).toEqual([3, 4, 4]);
    expect(read('loss.svg')).toContain('data-name="a&lt;b&amp;c"');
    // x is the step: the points of each series run left to right.
    for (const l of loss) for (let i = 1; i < l.points.length; i++) expect(l.points[i]![0]).toBeGreaterThan(l.points[i - 1]![0]);

    // Kurtosis vs step: log axis with ticks at powers of ten, the Gaussian floor as a reference line.
    const kurt = checkLineChart(read('kurtosis.svg'));
    expect(kurt.map((l) => l.name)).toEqual(['osp', 'adam', UNFINISHED]);
    expect(kurt.map((l) => l.points.length)).toEqual([3, 3, 2]);
    const kTicks = yTickValues(read('kurtosis.svg'));
    expectPowersOfTen(kTicks);
    expect(Math.min(...kTicks)).toBeLessThanOrEqual(0.175);
    expect(Math.max(...kTicks)).toBeGreaterThanOrEqual(1250);
    expect(hLineValues(read('kurtosis.svg'))).toEqual([FLOOR]);
    // Higher kurtosis is drawn higher: adam's final point (1250) above osp's (0.2).
    expect(kurt[1]!.points.at(-1)![1]).toBeLessThan(kurt[0]!.points.at(-1)![1]);

    // Per-layer kurtosis: x = layer index 0..1, one series per trial with monitor data.
    const layers = checkLineChart(read('kurtosis_layers.svg'));
    expect(layers.map((l) => l.name)).toEqual(['osp', 'adam', UNFINISHED]);
    expect(layers.map((l) => l.points.length)).toEqual([2, 2, 2]);
    expectPowersOfTen(yTickValues(read('kurtosis_layers.svg')));
    expect(hLineValues(read('kurtosis_layers.svg'))).toEqual([FLOOR]);

    // Quantization gap: one bar per trial and tag it measured (two tags: named in the label), log axis.
    const gap = read('quant_gap.svg');
    expect(gapBars(gap)).toEqual([
      ['osp (W4Had)', 1.45],
      ['adam (W4)', 6400],
    ]);
    expect(svgTitle(gap)).toBe('W4A4KV4 perplexity ratio (quantized / 16-bit)');
    expectPowersOfTen(yTickValues(gap));
    const [vx, vy, vw, vh] = viewBox(gap);
    for (const m of gap.matchAll(/<rect class="bar"[^>]* x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)"/g)) {
      const [x, y, w, h] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
      expect(x >= vx && x + w <= vx + vw && y >= vy && y + h <= vy + vh && h > 0).toBe(true);
    }

    // Hessian: eig_1 against the step whose weights were measured, for the two trials that ran the probe.
    const hess = checkLineChart(read('hessian.svg'));
    expect(hess.map((l) => l.name)).toEqual(['osp', 'adam']);
    expect(hess.map((l) => l.points.length)).toEqual([1, 2]);
    // osp's one measurement describes step 100, like adam's second: same x pixel.
    expect(hess[0]!.points[0]![0]).toBeCloseTo(hess[1]!.points[1]![0], 6);
  });

  it('handles trials without monitors: no Hessian plot, "-" cells, the floor computed for the width', () => {
    const sweep = tempDir('osp-sweep-report-');
    const cfg = { steps: 20, model: { ...MODEL, norm: 'ssnorm' }, batch: BATCH, monitor: { every: 0 } };
    const rows: Row[] = [
      { step: 1, 'train/loss': 5.5 },
      { step: 20, 'train/loss': 4.5, 'eval/loss': 4.25, 'eval/bits_per_byte': 6 },
    ];
    const evalSummary = { loss: 4.25, perplexity: 70, bitsPerByte: 6 };
    writeTrial(sweep, 'plain', cfg, rows, { name: 'plain', steps: 20, eval: evalSummary, monitors: {} });
    // Callbacks that never measured write null into summary.json.
    const nulls = { outliers: null, quant: null, hessian: null };
    writeTrial(sweep, 'nulls', cfg, rows, { name: 'nulls', steps: 20, eval: evalSummary, monitors: nulls });
    const { files, report } = writeReport(sweep);
    expect(files.some((f) => f.endsWith('hessian.svg'))).toBe(false);
    expect(existsSync(join(sweep, 'hessian.svg'))).toBe(false);
    expect(report.plots).not.toContain('hessian.svg');
    expect(report.trials.map((t) => t.name)).toEqual(['nulls', 'plain']);
    for (const t of report.trials) {
      expect(t).toMatchObject({ finished: true, ospKurtosis: null, gaussianFloor: null, layerKurtosis: [], quant: {}, hessianEig1: null });
    }
    // No monitor ran: the floor comes from the estimator on Gaussian samples. The paper quotes 0.182 at
    // d = 64 (its script's estimate; ours is within its Monte Carlo error of a few thousandths).
    expect(report.floors).toHaveLength(1);
    expect(report.floors[0]!.source).toBe('computed');
    expect(report.floors[0]!.gaussianFloor).toBeGreaterThan(0.165);
    expect(report.floors[0]!.gaussianFloor).toBeLessThan(0.19);
    const md = readFileSync(join(sweep, 'report.md'), 'utf8');
    // No quantization anywhere: the quant columns stay, empty, so the table keeps its shape.
    expect(md).toContain('| excess kurtosis | quantized PPL | 16-bit PPL | quantized / 16-bit | val loss |');
    expect(md).toContain('| plain | ssnorm | plain | muon | - | - | - | - | 4.25 | 6 |');
    // ... and the console leaves out the columns without values.
    expect(consoleTable(report).join('\n')).not.toMatch(/PPL|16b/);
    expect(md).toContain('at this width an outlier-free model measures about');
    expect(md).not.toContain('FFN Had');
    // Empty charts are still valid documents saying so.
    expect(checkLineChart(readFileSync(join(sweep, 'kurtosis.svg'), 'utf8'))).toEqual([]);
    expect(readFileSync(join(sweep, 'kurtosis.svg'), 'utf8')).toContain('no data');
    expect(readFileSync(join(sweep, 'quant_gap.svg'), 'utf8')).not.toContain('class="bar"');
    expect(svgTitle(readFileSync(join(sweep, 'quant_gap.svg'), 'utf8'))).toBe('Quantized / 16-bit perplexity ratio');
    // A second report over the same directory replaces the files.
    expect(() => writeReport(sweep)).not.toThrow();
  });

  it('reports a trial that crashed before logging anything as unfinished', () => {
    const sweep = tempDir('osp-sweep-report-');
    const dir = writeTrial(sweep, 'early', { steps: 50, model: MODEL, batch: BATCH }, []);
    rmSync(join(dir, 'metrics.jsonl'));
    const { report } = writeReport(sweep);
    expect(report.trials[0]).toMatchObject({ name: 'early', finished: false, steps: null, plannedSteps: 50, valLoss: null });
    expect(readFileSync(join(sweep, 'report.md'), 'utf8')).toContain('early (unfinished: no step logged)');
    expect(polylines(readFileSync(join(sweep, 'loss.svg'), 'utf8'))).toEqual([]);
  });

  it('an empty sweep directory gives an empty report; a missing one is a DataError', () => {
    const sweep = tempDir('osp-sweep-report-');
    const { report } = writeReport(sweep);
    expect(report.trials).toEqual([]);
    expect(readFileSync(join(sweep, 'report.md'), 'utf8')).toContain('No trial directories');
    expect(() => writeReport(join(sweep, 'missing'))).toThrow(DataError);
  });
});

describe('reading trial files', () => {
  it('a malformed line in the middle of metrics.jsonl is a DataError naming the file and line', () => {
    const sweep = tempDir('osp-sweep-report-');
    const dir = writeTrial(sweep, 'bad', { steps: 10, model: MODEL, batch: BATCH }, []);
    const file = join(dir, 'metrics.jsonl');
    writeFileSync(file, '{"step":1,"train/loss":5}\n{"step":2,"train/lo\n{"step":3,"train/loss":4}\n');
    let err: unknown;
    try {
      writeReport(sweep);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).file).toBe(file);
    expect((err as DataError).message).toContain(file);
    expect((err as DataError).message).toMatch(/line 2\b/);
    // Nothing was written: the report is not half-made from a trial it could not read.
    expect(existsSync(join(sweep, 'report.md'))).toBe(false);
  });

  it('a malformed last line that was completely written (newline-terminated) is an error too', () => {
    const dir = tempDir('osp-sweep-report-');
    const file = join(dir, 'metrics.jsonl');
    writeFileSync(file, '{"step":1}\n{"step":2,\n');
    expect(() => readMetricsJsonl(file)).toThrow(/line 2/);
  });

  it('rows must be objects with a numeric step', () => {
    const dir = tempDir('osp-sweep-report-');
    const file = join(dir, 'metrics.jsonl');
    writeFileSync(file, '{"step":1}\n[1,2]\n');
    expect(() => readMetricsJsonl(file)).toThrow(/line 2: expected a JSON object with a numeric "step"/);
    writeFileSync(file, '{"train/loss":1}\n');
    expect(() => readMetricsJsonl(file)).toThrow(/line 1/);
  });

  it('skips a truncated last line, blank lines and CRLF; null reads as NaN; strings are dropped', () => {
    const dir = tempDir('osp-sweep-report-');
    const file = join(dir, 'metrics.jsonl');
    writeFileSync(file, '{"step":1,"a":1,"time":"t"}\r\n\n{"step":2,"a":null}\n{"step":3,"a":');
    const { rows, truncatedLine } = readMetricsJsonl(file);
    expect(truncatedLine).toBe(true);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toEqual({ step: 1, a: 1 });
    expect(rows[1]!.a).toBeNaN();
  });

  it('rows a resumed run logged again replace the ones it superseded', () => {
    const dir = tempDir('osp-sweep-report-');
    const file = join(dir, 'metrics.jsonl');
    // Checkpoint at step 20, killed after logging step 40, resumed: steps 30 and 40 are logged again.
    const rows = [10, 20, 30, 40].map((s) => ({ step: s, v: s })).concat([30, 40, 50].map((s) => ({ step: s, v: -s })));
    writeFileSync(file, rows.map((r) => JSON.stringify(r) + '\n').join(''));
    expect(readMetricsJsonl(file).rows).toEqual([
      { step: 10, v: 10 },
      { step: 20, v: 20 },
      { step: 30, v: -30 },
      { step: 40, v: -40 },
      { step: 50, v: -50 },
    ]);
  });

  it('collectTrials names the file of a malformed config.json or summary.json', () => {
    const sweep = tempDir('osp-sweep-report-');
    const dir = writeTrial(sweep, 't', { steps: 10, model: MODEL, batch: BATCH }, [{ step: 1 }]);
    writeFileSync(join(dir, 'summary.json'), '{"name":');
    expect(() => collectTrials(sweep)).toThrow(join(dir, 'summary.json'));
    writeFileSync(join(dir, 'summary.json'), '{}');
    writeFileSync(join(dir, 'config.json'), '{"input":{}}');
    expect(() => collectTrials(sweep)).toThrow(/config\.json: expected \{ "input"/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Quantization variants (osp-lab >= 0.2): tags `w4a4kv4_<method>[_<rotation>][_<modifier>...]` in
// metrics.jsonl, and summary.json's `monitors.quant` = { step, fp, variants: [...], config }.

/** summary.json's `monitors.quant` as the quant callback writes it, with the given ratio per tag. */
function variantsSummary(
  step: number,
  fpPerplexity: number,
  quant: QuantConfigInput,
  ratios: Record<string, number>,
): Record<string, unknown> {
  const config = resolveQuantConfig(quant);
  const variants = quantVariants(config).map((v) => {
    const r = ratios[v.tag];
    if (r === undefined) throw new Error(`no ratio for ${v.tag}`);
    const perplexity = fpPerplexity * r;
    return { ...v, quant: { loss: Math.log(perplexity), perplexity }, gap: { loss: Math.log(r), perplexityRatio: r }, seconds: 2.5 };
  });
  return { step, fp: { loss: Math.log(fpPerplexity), perplexity: fpPerplexity }, variants, config };
}

/** quant/* metrics of one measurement: fp loss and, per tag, loss, perplexity and ratio. */
function quantRow(fpPerplexity: number, ratios: Record<string, number>): Row {
  const row: Row = { 'quant/fp_loss': Math.log(fpPerplexity) };
  for (const [tag, r] of Object.entries(ratios)) {
    row[`quant/${tag}/loss`] = Math.log(fpPerplexity * r);
    row[`quant/${tag}/perplexity`] = fpPerplexity * r;
    row[`quant/${tag}/ppl_ratio`] = r;
  }
  return row;
}

const QUAROT_GPTQ = { method: ['rtn', 'gptq'], rotate: ['none', 'quarot'] } satisfies QuantConfigInput;

describe('quantization variants in the report', () => {
  it('one ratio column per tag, in canonical order; summary.json (new shape) wins for its tags', () => {
    const sweep = tempDir('osp-sweep-report-');
    const cfg = {
      steps: 100,
      model: { ...MODEL, norm: 'ssnorm', embedding: 'embproj' },
      batch: BATCH,
      quant: { every: 50, ...QUAROT_GPTQ },
    };
    const final = { w4a4kv4_rtn: 1.25, w4a4kv4_rtn_quarot: 1.125, w4a4kv4_gptq: 1.5, w4a4kv4_gptq_quarot: 1.05 };
    writeTrial(
      sweep,
      'osp',
      cfg,
      [
        // Step 50 also measured the FFN Had variant (a config changed on resume): only the metrics have it.
        { step: 50, 'train/loss': 3, ...quantRow(12, { w4a4kv4_rtn_ffnhad: 3, w4a4kv4_rtn: 4 }) },
        // Logged in another order than the canonical one, and with values summary.json overrides.
        {
          step: 100,
          'train/loss': 2.5,
          ...quantRow(15, { w4a4kv4_gptq_quarot: 9, w4a4kv4_rtn_quarot: 8, w4a4kv4_gptq: 7, w4a4kv4_rtn: 6 }),
        },
      ],
      {
        name: 'osp',
        steps: 100,
        eval: { loss: 2.25, perplexity: Math.exp(2.25), bitsPerByte: 3.25 },
        monitors: { quant: variantsSummary(100, 16, QUAROT_GPTQ, final) },
      },
    );
    // Unfinished, RTN and GPTQ only: the other variants' cells stay '-'.
    writeTrial(sweep, 'adam', { ...cfg, quant: { every: 50, method: ['rtn', 'gptq'] } }, [
      { step: 50, 'train/loss': 3.5, ...quantRow(8, { w4a4kv4_gptq: 10, w4a4kv4_rtn: 20 }) },
    ]);
    const { report } = writeReport(sweep);

    const [adam, osp] = report.trials;
    expect(Object.keys(osp!.quant).sort()).toEqual([
      'w4a4kv4_gptq',
      'w4a4kv4_gptq_quarot',
      'w4a4kv4_rtn',
      'w4a4kv4_rtn_ffnhad',
      'w4a4kv4_rtn_quarot',
    ]);
    expect(osp!.quant.w4a4kv4_gptq_quarot).toMatchObject({ step: 100, fpPerplexity: 16, perplexity: 16 * 1.05, pplRatio: 1.05 });
    expect(osp!.quant.w4a4kv4_gptq_quarot!.fpLoss).toBeCloseTo(Math.log(16), 12);
    expect(osp!.quant.w4a4kv4_rtn).toMatchObject({ step: 100, fpPerplexity: 16, perplexity: 20, pplRatio: 1.25 });
    expect(osp!.quant.w4a4kv4_rtn_ffnhad).toMatchObject({ step: 50, perplexity: 36, pplRatio: 3 });
    expect(osp!.quant.w4a4kv4_rtn_ffnhad!.fpPerplexity).toBeCloseTo(12, 12);
    expect(adam!.quant.w4a4kv4_gptq).toMatchObject({ step: 50, pplRatio: 10 });

    const lines = readFileSync(join(sweep, 'report.md'), 'utf8').split('\n');
    expect(lines).toContain(
      '| config | norm | embedding | optimizer | excess kurtosis | 16-bit PPL | W4A4KV4 RTN / 16-bit | ' +
        'W4A4KV4 RTN + FFN Had / 16-bit | W4A4KV4 QuaRot / 16-bit | W4A4KV4 GPTQ / 16-bit | ' +
        'W4A4KV4 QuaRot + GPTQ / 16-bit | val loss | bits/byte |',
    );
    // osp's 16-bit PPL is that of its latest measurement (step 100), not step 50's 12.
    expect(lines).toContain('| osp | ssnorm | embproj | muon | - | 16 | 1.25 | 3 | 1.125 | 1.5 | 1.05 | 2.25 | 3.25 |');
    expect(lines).toContain('| adam (unfinished: step 50 of 100) | ssnorm | embproj | muon | - | 8 | 20 | - | - | 10 | - | - | - |');

    // One bar per trial and measured tag: trials in report order, tags in column order.
    const gap = readFileSync(join(sweep, 'quant_gap.svg'), 'utf8');
    expect(gapBars(gap)).toEqual([
      ['adam (RTN)', 20],
      ['adam (GPTQ)', 10],
      ['osp (RTN)', 1.25],
      ['osp (RTN+Had)', 3],
      ['osp (QuaRot)', 1.125],
      ['osp (GPTQ)', 1.5],
      ['osp (QR+GPTQ)', 1.05],
    ]);
    expect(shownBarLabels(gap)).toEqual([
      'adam (unfinished) (RTN)',
      'adam (unfinished) (GPTQ)',
      'osp (RTN)',
      'osp (RTN+Had)',
      'osp (QuaRot)',
      'osp (GPTQ)',
      'osp (QR+GPTQ)',
    ]);
    expect(svgTitle(gap)).toBe('W4A4KV4 perplexity ratio (quantized / 16-bit)');
    expect(yAxisLabel(gap)).toBe('quantized / 16-bit perplexity');
  });

  it('reads old-shape summary.json next to new runs: legacy tags first, each summary wins for its own tag', () => {
    const sweep = tempDir('osp-sweep-report-');
    const base = { steps: 100, model: MODEL, batch: BATCH };
    writeTrial(sweep, 'v01', { ...base, quant: { every: 100 } }, [{ step: 100, 'train/loss': 3, ...quantRow(10, { w4a4kv4: 99 }) }], {
      name: 'v01',
      steps: 100,
      monitors: {
        quant: legacyQuantSummary(12.5, 25, false),
      },
    });
    const quant = { method: 'gptq', rotate: 'quarot' } satisfies QuantConfigInput;
    writeTrial(sweep, 'v02', { ...base, quant: { every: 100, ...quant } }, [{ step: 100, 'train/loss': 3 }], {
      name: 'v02',
      steps: 100,
      monitors: { quant: variantsSummary(100, 10, quant, { w4a4kv4_gptq_quarot: 1.25 }) },
    });
    // A later `rtn` trial in metrics only, without fp_loss: no 16-bit PPL, no ratio to derive, but its own.
    writeTrial(sweep, 'v03', { ...base, quant: { every: 100 } }, [
      { step: 100, 'train/loss': 3, 'quant/w4a4kv4_rtn/perplexity': 30, 'quant/w4a4kv4_rtn/ppl_ratio': 2.5 },
    ]);
    const { report } = writeReport(sweep);
    expect(report.trials.map((t) => Object.keys(t.quant))).toEqual([['w4a4kv4'], ['w4a4kv4_gptq_quarot'], ['w4a4kv4_rtn']]);
    expect(report.trials[0]!.quant.w4a4kv4).toMatchObject({ step: 100, fpPerplexity: 12.5, perplexity: 25, pplRatio: 2 });
    expect(report.trials[2]!.quant.w4a4kv4_rtn).toMatchObject({ fpPerplexity: null, perplexity: 30, pplRatio: 2.5 });

    const lines = readFileSync(join(sweep, 'report.md'), 'utf8').split('\n');
    const header = lines.find((l) => l.startsWith('| config |'))!;
    expect(header).toContain(
      '| 16-bit PPL | W4A4KV4 v0.1 RTN (keys unrotated, min/max ranges) / 16-bit | W4A4KV4 RTN / 16-bit | ' +
        'W4A4KV4 QuaRot + GPTQ / 16-bit | val loss |',
    );
    const quantCells = (name: string) =>
      lines
        .find((l) => l.startsWith(`| ${name} `))!
        .split(' | ')
        .slice(5, 9);
    expect(quantCells('v01')).toEqual(['12.5', '2', '-', '-']);
    expect(quantCells('v02')).toEqual(['10', '-', '-', '1.25']);
    expect(quantCells('v03')).toEqual(['-', '-', '2.5', '-']);
    expect(consoleTable(report).join('\n')).toMatch(/16b PPL +W4\/16b +RTN\/16b +QR\+GPTQ\/16b/);
  });

  it('a single tag keeps its perplexity column and labels the bars by trial', () => {
    const sweep = tempDir('osp-sweep-report-');
    const quant = { method: 'gptq', rotate: 'quarot' } satisfies QuantConfigInput;
    const cfg = { steps: 100, model: MODEL, batch: BATCH, quant: { every: 100, ...quant } };
    for (const [name, r] of [
      ['a', 1.25],
      ['b', 1.5],
    ] as const) {
      writeTrial(sweep, name, cfg, [{ step: 100, 'train/loss': 3 }], {
        name,
        steps: 100,
        monitors: { quant: variantsSummary(100, 10, quant, { w4a4kv4_gptq_quarot: r }) },
      });
    }
    const { report } = writeReport(sweep);
    const lines = readFileSync(join(sweep, 'report.md'), 'utf8').split('\n');
    expect(lines.find((l) => l.startsWith('| config |'))).toContain(
      '| excess kurtosis | W4A4KV4 QuaRot + GPTQ PPL | 16-bit PPL | W4A4KV4 QuaRot + GPTQ / 16-bit | val loss |',
    );
    expect(lines.find((l) => l.startsWith('| b |'))).toContain('| - | 15 | 10 | 1.5 |');
    const cols = consoleColumns(consoleTable(report));
    expect(cols.get('QR+GPTQ PPL')).toEqual(['12.5', '15.0']);
    expect(cols.get('QR+GPTQ/16b')).toEqual(['1.25', '1.50']);
    const gap = readFileSync(join(sweep, 'quant_gap.svg'), 'utf8');
    expect(gapBars(gap)).toEqual([
      ['a', 1.25],
      ['b', 1.5],
    ]);
    expect(yAxisLabel(gap)).toBe('W4A4KV4 QuaRot + GPTQ / 16-bit perplexity');
  });

  it('the console table stays within 80 columns with six variants, every header and value whole', () => {
    const sweep = tempDir('osp-sweep-report-');
    const quant = { method: ['rtn', 'gptq'], rotate: ['none', 'ffn', 'quarot'] } satisfies QuantConfigInput;
    const tags = quantVariants(resolveQuantConfig(quant)).map((v) => v.tag);
    expect(tags).toHaveLength(6);
    const trials = [
      ['adam', 0.003],
      ['osp', 0.003],
      ['osp', 0.01],
    ] as const;
    trials.forEach(([variant, lr], i) => {
      const name = `${variant}__optimizer.adamw.lr=${lr}`;
      const ratios = Object.fromEntries(tags.map((t, j) => [t, 1 + (i + 1) * 0.01 + j * 0.1]));
      const cfg = { steps: 100, model: MODEL, batch: BATCH, optimizer: { adamw: { lr } }, quant: { every: 100, ...quant } };
      writeTrial(sweep, name, cfg, [{ step: 100, 'train/loss': 3, 'outliers/osp_kurtosis': 0.5 + i }], {
        name,
        steps: 100,
        eval: { loss: 2.5 - i * 0.125, perplexity: 12, bitsPerByte: 3.5 },
        monitors: { quant: variantsSummary(100, 16, quant, ratios) },
      });
    });
    const printed: string[] = [];
    const { report } = writeReport(sweep, { title: 'six variants', print: (l) => printed.push(l) });
    for (const l of printed) expect(l.length, l).toBeLessThanOrEqual(80);
    const cols = consoleColumns(printed);
    const shortHeaders = ['RTN/16b', 'RTN+Had/16b', 'QuaRot/16b', 'GPTQ/16b', 'GPTQ+Had/16b', 'QR+GPTQ/16b'];
    for (const h of ['16b PPL', ...shortHeaders, 'val loss', 'bits/B']) expect(cols.has(h), h).toBe(true);
    // Ratio columns in canonical order across the blocks, each cell the trial's value at one precision.
    const order = [...cols.keys()].filter((h) => h.endsWith('/16b'));
    expect(order).toEqual(shortHeaders);
    expect(cols.get('RTN/16b')).toEqual(['1.01', '1.02', '1.03']);
    expect(cols.get('QR+GPTQ/16b')).toEqual(['1.51', '1.52', '1.53']);
    expect(cols.get('16b PPL')).toEqual(['16', '16', '16']);
    // Every block repeats the row labels (the variant; lr is a grid column).
    expect(cols.get('config')).toEqual(['adam', 'osp', 'osp']);
    expect(cols.get('lr')).toEqual(['3e-3', '3e-3', '1e-2']);
    expect(report.trials.map((t) => Object.keys(t.quant).length)).toEqual([6, 6, 6]);
  });

  it('tags of different bit widths get the widths in their short names and a generic plot title', () => {
    const sweep = tempDir('osp-sweep-report-');
    const cfg = { steps: 100, model: MODEL, batch: BATCH };
    writeTrial(sweep, 't', cfg, [{ step: 100, ...quantRow(10, { w8a8kv8_rtn: 1.01, w4a4kv4_rtn: 1.5 }) }]);
    const { report } = writeReport(sweep);
    const cols = consoleColumns(consoleTable(report));
    expect(cols.get('W4A4KV4 RTN/16b')).toEqual(['1.5']);
    expect(cols.get('W8A8KV8 RTN/16b')).toEqual(['1.01']);
    const gap = readFileSync(join(sweep, 'quant_gap.svg'), 'utf8');
    expect(svgTitle(gap)).toBe('Quantized / 16-bit perplexity ratio');
    expect(gapBars(gap).map(([l]) => l)).toEqual(['t (W4A4KV4 RTN)', 't (W8A8KV8 RTN)']);
  });
});
