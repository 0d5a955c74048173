/**
 * The report's figures as a reader of a draft sees them: from a synthetic sweep of six trials whose
 * names share a long prefix, every plot kind is written and checked for legend labels that are whole
 * and tell the trials apart, one drawn series per trial with all its points, linear axes for values
 * clustered near 1, no value silently missing from a log axis, a validation-loss plot, readable axis
 * titles, a sensible axis for a lone point, grid-value table columns and the 80-column console table.
 * Where rsvg-convert is installed every SVG is also rasterized and must give a non-blank image.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/train/config.ts';
import { chooseScale } from '../../src/sweep/axes.ts';
import { quantVariants, resolveQuantConfig } from '../../src/quant/config.ts';
import {
  commonQuantBits,
  compactNumber,
  formatColumn,
  metricLabel,
  shortLabels,
  shortQuantName,
  sortQuantTags,
} from '../../src/sweep/labels.ts';
import { writeReport } from '../../src/sweep/report.ts';
import { consoleTable } from '../../src/sweep/report_table.ts';
import { barChart, lineChart } from '../../src/sweep/svg.ts';
import { tempDir } from '../helpers/scratch.ts';
import { unescapeXml as unescape } from '../helpers/svg_read.ts';

// ---------------------------------------------------------------------------------------------------
// A synthetic sweep: variants adam and osp, grid over the AdamW learning rate; names like
// 'adam__optimizer.adamw.lr=0.003' share everything but the last few characters.

const LRS = [0.001, 0.003, 0.01];
const MODEL = { hiddenSize: 64, numLayers: 3, numHeads: 4, maxSeqLen: 64 };
const STEPS = 60;
const LOG_EVERY = 5; // train/loss rows: steps 5, 10, ..., 60 -> 12 points
const EVAL_STEPS = [20, 40, 60];
const MONITOR_STEPS = [1, 30, 60];

interface Spec {
  name: string;
  variant: 'adam' | 'osp';
  lr: number;
}
const TRIALS: Spec[] = (['adam', 'osp'] as const).flatMap((variant) =>
  LRS.map((lr) => ({ name: `${variant}__optimizer.adamw.lr=${lr}`, variant, lr })),
);

/** Hessian measurements per trial: one for the first, none for the last, two for the others. */
const hessianSteps = (i: number): number[] => (i === 0 ? [60] : i === TRIALS.length - 1 ? [] : [30, 60]);

function buildSweep(): string {
  const sweep = tempDir('osp-figures-');
  TRIALS.forEach((t, i) => {
    const dir = join(sweep, t.name);
    mkdirSync(dir, { recursive: true });
    const variantSet =
      t.variant === 'adam'
        ? {
            model: { ...MODEL, norm: 'rmsnorm', embedding: 'plain' },
            optimizer: { adamw: { lr: t.lr }, routing: [{ match: '*', optimizer: 'adamw' }] },
          }
        : { model: { ...MODEL, norm: 'ssnorm', embedding: 'embproj' }, optimizer: { adamw: { lr: t.lr } } };
    const input = { name: t.name, out: sweep, steps: STEPS, batch: { size: 2, seqLen: 32 }, ...variantSet };
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ input, resolved: resolveRunConfig(input) }));
    const rows: Record<string, number>[] = [];
    for (let step = 1; step <= STEPS; step++) {
      const row: Record<string, number> = { step };
      if (step % LOG_EVERY === 0) row['train/loss'] = 5.5 - step * 0.04 - i * 0.05;
      if (EVAL_STEPS.includes(step)) row['eval/loss'] = 5 - step * 0.03 - i * 0.04;
      if (MONITOR_STEPS.includes(step)) {
        // Kurtosis in [0.15, 1.3]: less than 1.5 decades, so a linear axis. The osp lr=0.001 trial
        // measures exactly 0 at step 1, which a log axis could not show.
        const k = t.name === 'osp__optimizer.adamw.lr=0.001' && step === 1 ? 0 : 0.15 + (step / STEPS) * (0.2 + i * 0.15);
        row['outliers/osp_kurtosis'] = k;
        row['outliers/gaussian_floor'] = 0.175;
        for (let l = 0; l < 3; l++) row[`outliers/layers.${l}.out/osp_kurtosis`] = k * (1 + l * 0.1);
      }
      if (step === STEPS) {
        row['quant/fp_loss'] = Math.log(12);
        row['quant/w4a4kv4_rtn/perplexity'] = 12 * (1.02 + i * 0.012);
        row['quant/w4a4kv4_rtn/ppl_ratio'] = 1.02 + i * 0.012; // 1.02 .. 1.08: clustered near 1
      }
      if (hessianSteps(i).includes(step)) {
        row['hessian/eig_1'] = 27 + i + step / 30;
        row['hessian/measured_at_step'] = step;
      }
      if (Object.keys(row).length > 1) rows.push(row);
    }
    writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r) + '\n').join(''));
    const summary = {
      name: t.name,
      steps: STEPS,
      eval: { loss: [...rows].reverse().find((r) => 'eval/loss' in r)!['eval/loss'], bitsPerByte: 4 },
    };
    writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary));
  });
  writeFileSync(join(sweep, 'sweep.json'), JSON.stringify({ spec: '/x/spec.json', trials: TRIALS.map((t) => t.name) }));
  return sweep;
}

/**
 * A sweep of two trials that also logs the worst layer's max/median and max |activation| and measures
 * the quantization gap at three steps (the emergence experiment's figures).
 */
function buildEmergenceSweep(): string {
  const sweep = tempDir('osp-figures-');
  const names = ['adam', 'osp'];
  names.forEach((name, i) => {
    const dir = join(sweep, name);
    mkdirSync(dir, { recursive: true });
    const input = { name, out: sweep, steps: STEPS, batch: { size: 2, seqLen: 32 }, model: MODEL };
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ input, resolved: resolveRunConfig(input) }));
    const rows: Record<string, number>[] = [];
    for (const step of [20, 40, 60]) {
      rows.push({
        step,
        'train/loss': 3 - step / 100,
        'eval/loss': 3 - step / 100,
        'outliers/osp_kurtosis': 0.2 + i + step / 10,
        'outliers/max_median': 10 + step * (i + 1),
        'outliers/max_abs': 100 * step * (i + 1),
        'quant/fp_loss': 3 - step / 100 - i / 10,
        'quant/w4a4kv4_rtn/ppl_ratio': 1 + step / 1000 + i / 100,
        'quant/w4a4kv4_rtn/perplexity': Math.exp(3 - step / 100 - i / 10) * (1 + step / 1000 + i / 100),
      });
    }
    writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r) + '\n').join(''));
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({ name, steps: STEPS, eval: { loss: 2.4, bitsPerByte: 3.5 } }));
  });
  writeFileSync(join(sweep, 'sweep.json'), JSON.stringify({ spec: '/x/spec.json', trials: names }));
  return sweep;
}

// ---------------------------------------------------------------------------------------------------
// Reading the SVG back (the output is well-formed XML: svg.test.ts parses it strictly).

function polylines(svg: string): { name: string; points: number }[] {
  return [...svg.matchAll(/<polyline class="series" data-name="([^"]*)"[^>]* points="([^"]*)"/g)].map((m) => ({
    name: unescape(m[1]!),
    points: m[2]!.trim().split(/\s+/).length,
  }));
}

/** Legend entries: the full name (data-name) and the text shown. */
function legend(svg: string): { name: string; text: string }[] {
  return [...svg.matchAll(/<g class="legend-entry" data-name="([^"]*)">.*?<text [^>]*>([^<]*)<\/text><\/g>/g)].map((m) => ({
    name: unescape(m[1]!),
    text: unescape(m[2]!),
  }));
}

const yTicks = (svg: string) => [...svg.matchAll(/<g class="tick y" data-value="([^"]*)"/g)].map((m) => Number(m[1]));
const xTicks = (svg: string) => [...svg.matchAll(/<g class="tick x" data-value="([^"]*)"/g)].map((m) => Number(m[1]));
const axisLabel = (svg: string, axis: 'x' | 'y') =>
  unescape(new RegExp(`<text class="axis-label ${axis}"[^>]*>([^<]*)</text>`).exec(svg)![1]!);

function expectLinearTicks(ticks: number[]): void {
  expect(ticks.length).toBeGreaterThanOrEqual(3);
  const step = ticks[1]! - ticks[0]!;
  for (let i = 1; i < ticks.length; i++) expect(ticks[i]! - ticks[i - 1]!).toBeCloseTo(step, 9);
}

// ---------------------------------------------------------------------------------------------------
// rsvg-convert, when installed: the figures must rasterize to something that is not blank.

const RSVG = spawnSync('rsvg-convert', ['--version'], { encoding: 'utf8' }).status === 0;

/** Pixels of an 8-bit non-interlaced PNG (what rsvg-convert writes), all five row filters undone. */
function decodePng(png: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.subarray(pos + 4, pos + 8).toString('latin1');
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect(data[8]).toBe(8);
      channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[data[9]!]!;
      expect(data[12]).toBe(0);
    }
    if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f]!;
      px[y * stride + x] = (raw[y * (stride + 1) + 1 + x]! + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels: px };
}

// ---------------------------------------------------------------------------------------------------

describe('report figures from a multi-trial sweep', () => {
  const sweep = buildSweep();
  const { report } = writeReport(sweep, { title: 'lr sweep' });
  const read = (f: string) => readFileSync(join(sweep, f), 'utf8');
  const names = TRIALS.map((t) => t.name);
  const lineFigures = ['loss.svg', 'val_loss.svg', 'kurtosis.svg', 'kurtosis_layers.svg', 'hessian.svg'];

  it('writes every plot kind, the validation loss among them', () => {
    expect(report.plots).toEqual(['loss.svg', 'val_loss.svg', 'kurtosis.svg', 'kurtosis_layers.svg', 'quant_gap.svg', 'hessian.svg']);
    expect(read('report.md')).toContain('](val_loss.svg)');
  });

  it('legend labels are whole, unique and show what tells each trial apart', () => {
    const expected = TRIALS.map((t) => `${t.variant}, lr=${compactNumber(t.lr)}`);
    expect(report.trials.map((t) => t.label)).toEqual(expected);
    expect(expected).toContain('adam, lr=3e-3');
    for (const f of [...lineFigures, 'quant_gap.svg']) {
      const svg = read(f);
      expect(svg, f).not.toContain('\u2026');
      expect(svg, f).not.toContain('...');
      if (f === 'quant_gap.svg') {
        const shown = [...svg.matchAll(/<text class="bar-label"[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]!));
        expect(shown).toEqual(expected);
        continue;
      }
      const entries = legend(svg);
      expect(new Set(entries.map((e) => e.text)).size, f).toBe(entries.length);
      for (const e of entries) {
        const t = TRIALS[names.indexOf(e.name)]!;
        expect(e.text, f).toContain(t.variant);
        expect(e.text, f).toContain(`lr=${compactNumber(t.lr)}`);
      }
    }
  });

  it('draws one series per trial per plot, each with all its points', () => {
    const count = (f: string) => polylines(read(f)).map((p) => [p.name, p.points]);
    expect(count('loss.svg')).toEqual(names.map((n) => [n, STEPS / LOG_EVERY]));
    expect(count('val_loss.svg')).toEqual(names.map((n) => [n, EVAL_STEPS.length]));
    // The zero kurtosis is drawn: the axis is linear, so nothing is lost.
    expect(count('kurtosis.svg')).toEqual(names.map((n) => [n, MONITOR_STEPS.length]));
    expect(count('kurtosis_layers.svg')).toEqual(names.map((n) => [n, 3]));
    expect(count('hessian.svg')).toEqual(names.slice(0, -1).map((n, i) => [n, hessianSteps(i).length]));
    const bars = [...read('quant_gap.svg').matchAll(/<rect class="bar" data-label="([^"]*)"/g)].map((m) => unescape(m[1]!));
    expect(bars).toEqual(names);
    for (const f of lineFigures) expect(legend(read(f)).map((e) => e.name)).toEqual(polylines(read(f)).map((p) => p.name));
  });

  it('axes: linear and zoomed for ratios near 1, metric names with units, a lone point against a sensible axis', () => {
    const gap = read('quant_gap.svg');
    const ticks = yTicks(gap);
    expectLinearTicks(ticks);
    expect(Math.min(...ticks)).toBeGreaterThanOrEqual(0.9);
    expect(Math.max(...ticks)).toBeLessThanOrEqual(1.2);
    expect(axisLabel(gap, 'y')).toBe('W4A4KV4 RTN / 16-bit perplexity');
    expect(gap).not.toContain('log scale');

    expect(axisLabel(read('loss.svg'), 'y')).toBe('training loss (nats/byte)');
    expect(axisLabel(read('loss.svg'), 'x')).toBe('training step');
    expect(axisLabel(read('val_loss.svg'), 'y')).toBe('validation loss (nats/byte)');
    expect(axisLabel(read('kurtosis.svg'), 'y')).toBe('excess kurtosis (OSP estimator)');
    for (const f of lineFigures) expect(axisLabel(read(f), 'y')).not.toMatch(/^[a-z_]+\/[a-z_/]+$/);
    // Kurtosis 0 .. 1.3 with a zero: linear, from zero.
    expectLinearTicks(yTicks(read('kurtosis.svg')));
    expect(yTicks(read('kurtosis.svg'))[0]).toBe(0);

    // Hessian: a lone measurement (the first trial's) carries its value next to it; steps start at 0;
    // values 28..33 from several trials get an axis zoomed around them.
    const hess = read('hessian.svg');
    expect(xTicks(hess)[0]).toBe(0);
    expectLinearTicks(yTicks(hess));
    expect(Math.min(...yTicks(hess))).toBeGreaterThan(20);
    expect(hess).toMatch(/<text class="point-label" data-name="adam__optimizer\.adamw\.lr=0\.001"[^>]*>29<\/text>/);
  });

  it('a single point is drawn against an axis from zero, not a +-10% sliver around it', () => {
    const svg = lineChart({
      title: 'Top Hessian eigenvalue',
      xLabel: 'step',
      yLabel: metricLabel('hessian/eig_1'),
      yScale: 'auto',
      xFromZero: true,
      series: [{ name: 'adam__optimizer.adamw.lr=0.003', short: 'adam, lr=3e-3', points: [[60, 30]] }],
    });
    const ys = yTicks(svg);
    expect(ys[0]).toBe(0);
    expect(Math.max(...ys)).toBeGreaterThan(30);
    expect(Math.max(...ys)).toBeLessThanOrEqual(40);
    expect(xTicks(svg)[0]).toBe(0);
    expect(Math.max(...xTicks(svg))).toBe(60);
    expect(svg).toMatch(/class="point-label"[^>]*>30<\/text>/);
  });

  it('report.md has one column per swept key with one precision per column', () => {
    const lines = read('report.md').split('\n');
    const header = lines.find((l) => l.startsWith('| config |'))!;
    expect(header).toMatch(/^\| config \| optimizer\.adamw\.lr \| norm \|/);
    // The one quantization variant of the sweep: its perplexity, the 16-bit reference, their ratio.
    expect(header).toContain('| W4A4KV4 RTN PPL | 16-bit PPL | W4A4KV4 RTN / 16-bit |');
    const rows = lines.filter((l) => TRIALS.some((t) => l.startsWith(`| ${t.name.replace(/_/g, '\\_')} |`))).slice(0, TRIALS.length);
    expect(rows.map((r) => r.split(' | ')[1])).toEqual(['1e-3', '3e-3', '1e-2', '1e-3', '3e-3', '1e-2']);
    expect(report.trials[1]!.grid).toEqual({ 'optimizer.adamw.lr': 0.003 });
    expect(report.trials[1]!.variant).toBe('adam');
  });

  it('the console table fits in 80 columns and names every trial', () => {
    const lines = consoleTable(report);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
    const text = lines.join('\n');
    for (const lr of ['1e-3', '3e-3', '1e-2']) expect(text).toContain(lr);
    expect(text).toContain('val loss');
    expect(text).toContain('RTN PPL');
    expect(text).toContain('RTN/16b');
    // Printed by writeReport when asked, line by line.
    const printed: string[] = [];
    writeReport(sweep, { title: 'lr sweep', print: (l) => printed.push(l) });
    expect(printed).toEqual(lines);
  });

  it.skipIf(!RSVG)('every figure rasterizes with rsvg-convert to a non-blank image', () => {
    for (const f of report.plots) {
      const r = spawnSync('rsvg-convert', ['-f', 'png', join(sweep, f)], { maxBuffer: 64 << 20 });
      expect(r.status, `${f}: ${r.stderr?.toString()}`).toBe(0);
      const img = decodePng(r.stdout);
      expect(img.width).toBeGreaterThan(300);
      expect(img.height).toBeGreaterThan(200);
      // Not blank: many distinct colours and a good share of non-white pixels.
      const colours = new Set<number>();
      let ink = 0;
      for (let i = 0; i < img.width * img.height; i++) {
        const o = i * img.channels;
        const [r0, g0, b0] = [img.pixels[o]!, img.pixels[o + 1]!, img.pixels[o + 2]!];
        colours.add((r0 << 16) | (g0 << 8) | b0);
        if (r0 + g0 + b0 < 600) ink++;
      }
      expect(colours.size, f).toBeGreaterThan(20);
      expect(ink / (img.width * img.height), f).toBeGreaterThan(0.01);
    }
  });
});

describe('values a log axis cannot show are never dropped silently', () => {
  it('line chart: a zero on a forced log axis gets an edge marker and a note', () => {
    const svg = lineChart({
      title: 't',
      xLabel: 'step',
      yLabel: 'k',
      logY: true,
      series: [
        {
          name: 'a',
          points: [
            [0, 0],
            [10, 5],
            [20, 50],
          ],
        },
        {
          name: 'b',
          points: [
            [0, 0.5],
            [10, NaN],
            [20, 500],
          ],
        },
      ],
    });
    expect(polylines(svg)).toEqual([
      { name: 'a', points: 2 },
      { name: 'b', points: 2 },
    ]);
    expect([...svg.matchAll(/class="log-dropped" data-name="a"/g)]).toHaveLength(1);
    expect([...svg.matchAll(/class="nonfinite" data-name="b"/g)]).toHaveLength(1);
    const notes = [...svg.matchAll(/<text class="log-note"[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]!));
    expect(notes.some((n) => n.includes('1 value') && n.includes('log axis'))).toBe(true);
    expect(notes.some((n) => n.includes('not finite'))).toBe(true);
  });

  it('bar chart: a zero on a log axis is marked with its value and a note', () => {
    const svg = barChart({
      title: 't',
      yLabel: 'r',
      logY: true,
      bars: [
        { label: 'x', value: 0 },
        { label: 'y', value: 40 },
        { label: 'z', value: 2 },
      ],
    });
    expect(svg).toMatch(/<text class="bar-missing" data-label="x"[^>]*>0<\/text>/);
    expect(svg).toContain('class="log-dropped"');
    expect(svg).toMatch(/class="log-note"[^>]*>[^<]*1 value [^<]*log axis/);
  });

  it('auto scale picks log only for positive data spanning more than 1.5 decades', () => {
    expect(chooseScale([1.03, 1.08, 1.09])).toBe('linear');
    expect(chooseScale([0.2, 1250])).toBe('log');
    expect(chooseScale([0, 0.2, 1250])).toBe('linear');
    expect(chooseScale([1, 30])).toBe('linear');
    const svg = lineChart({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      yScale: 'auto',
      series: [
        {
          name: 'a',
          points: [
            [0, 0.2],
            [1, 1250],
          ],
        },
      ],
    });
    expect(svg).toContain('log scale');
    expect(svg).not.toContain('log-note');
  });
});

describe('labels', () => {
  it('shortLabels keeps what differs, abbreviates keys, and leaves other names whole', () => {
    expect(shortLabels(['adam__optimizer.adamw.lr=0.003', 'adam__optimizer.adamw.lr=0.01'])).toEqual(['lr=3e-3', 'lr=0.01']);
    expect(shortLabels(['x__optimizer.muon.lr=0.01__optimizer.adamw.lr=0.1', 'x__optimizer.muon.lr=0.02__optimizer.adamw.lr=0.2'])).toEqual(
      ['muon.lr=0.01, adamw.lr=0.1', 'muon.lr=0.02, adamw.lr=0.2'],
    );
    expect(shortLabels(['adam', 'osp', 'a<b&c'])).toEqual(['adam', 'osp', 'a<b&c']);
    expect(shortLabels(['osp__model.norm=ssnorm', 'adam__model.norm=ssnorm'])).toEqual(['osp', 'adam']);
  });

  it('metricLabel names metrics with units', () => {
    expect(metricLabel('train/loss')).toBe('training loss (nats/byte)');
    expect(metricLabel('train/lr/muon')).toBe('Muon learning rate');
    expect(metricLabel('update/adamw_rms')).toBe('AdamW update RMS');
    expect(metricLabel('train/lr/sgd')).toBe('sgd learning rate');
    expect(metricLabel('val/loss')).toBe('validation loss (nats/byte)');
    expect(metricLabel('outliers/layers.2.out/osp_kurtosis')).toBe('excess kurtosis, layer 2 output');
    expect(metricLabel('quant/w4a4kv4_gptq_quarot/ppl_ratio')).toBe('W4A4KV4 QuaRot + GPTQ / 16-bit perplexity');
    expect(metricLabel('quant/w4a4kv4_rtn_ffnhad/perplexity')).toBe('W4A4KV4 RTN + FFN Had perplexity');
    expect(metricLabel('quant/w4a4kv4_gptq_g64/loss')).toBe('W4A4KV4 GPTQ (weight groups of 64) loss (nats/byte)');
    expect(metricLabel('quant/w4a4kv4_had/ppl_ratio')).toBe(
      'W4A4KV4 v0.1 RTN + FFN Had (block-diagonal, keys unrotated, min/max ranges) / 16-bit perplexity',
    );
    expect(metricLabel('hessian/eig_1')).toBe('top Hessian eigenvalue \u03BB1');
    expect(metricLabel('something/else')).toBe('something/else');
  });

  it('sortQuantTags: legacy tags, then RTN before GPTQ, then rotation none/FFN Had/block/QuaRot, then the rest', () => {
    const tags = [
      'w4a4kv4_gptq_quarot',
      'w4a4kv4_rtn_noqk',
      'w4a4kv4_rtn_quarot',
      'custom',
      'w4a4kv4_gptq',
      'w4a4kv4_had',
      'w4a4kv4_rtn_ffnhadblock',
      'w4a4kv4_rtn',
      'w8a8kv8_rtn',
      'w4a4kv4_gptq_ffnhad_actorder',
      'w4a4kv4',
      'w4a4kv4_rtn_ffnhad',
      'w4a4kv4_rtn',
    ];
    expect(sortQuantTags(tags)).toEqual([
      'w4a4kv4',
      'w4a4kv4_had',
      'w4a4kv4_rtn',
      'w4a4kv4_rtn_noqk',
      'w8a8kv8_rtn',
      'w4a4kv4_rtn_ffnhad',
      'w4a4kv4_rtn_ffnhadblock',
      'w4a4kv4_rtn_quarot',
      'w4a4kv4_gptq',
      'w4a4kv4_gptq_ffnhad_actorder',
      'w4a4kv4_gptq_quarot',
      'custom',
    ]);
  });

  it('shortQuantName abbreviates every tag the quant config can produce', () => {
    const short = (tag: string) => shortQuantName(tag);
    expect(short('w4a4kv4_rtn')).toBe('RTN');
    expect(short('w4a4kv4_rtn_ffnhad')).toBe('RTN+Had');
    expect(short('w4a4kv4_rtn_ffnhadblock')).toBe('RTN+HadB');
    expect(short('w4a4kv4_rtn_quarot')).toBe('QuaRot');
    expect(short('w4a4kv4_gptq')).toBe('GPTQ');
    expect(short('w4a4kv4_gptq_ffnhad')).toBe('GPTQ+Had');
    expect(short('w4a4kv4_gptq_quarot')).toBe('QR+GPTQ');
    expect(short('w4a4kv4')).toBe('W4');
    expect(short('w4a4kv4_had')).toBe('W4Had');
    expect(short('w4a4kv4_gptq_quarot_noqk_minmax_g64_noclip_actorder')).toBe('QR+GPTQ noQK,mm,g64,noclip,AO');
    expect(shortQuantName('w8a8kv8_rtn_quarot', { bits: true })).toBe('W8A8KV8 QuaRot');
    expect(shortQuantName('w4a4kv4_had', { bits: true })).toBe('W4A4KV4Had');
    expect(short('custom')).toBe('custom');
    // Distinct tags of one bit width get distinct short names.
    const tags = quantVariants(resolveQuantConfig({ method: ['rtn', 'gptq'], rotate: ['none', 'ffn', 'ffn-block', 'quarot'] })).map(
      (v) => v.tag,
    );
    expect(new Set([...tags, 'w4a4kv4', 'w4a4kv4_had'].map(short)).size).toBe(tags.length + 2);
    expect(commonQuantBits(tags)).toBe('W4A4KV4');
    expect(commonQuantBits(['w4a4kv4_rtn', 'w8a8kv8_rtn'])).toBeUndefined();
  });

  it('formatColumn uses one precision per column', () => {
    expect(formatColumn([0.5, 1, 2.25]).cells).toEqual(['0.50', '1.00', '2.25']);
    expect(formatColumn([0.0015, 0.003, null]).cells).toEqual(['1.5e-3', '3.0e-3', '-']);
    expect(formatColumn([128, 256]).cells).toEqual(['128', '256']);
    expect(formatColumn(['ssnorm', 'rmsnorm'])).toEqual({ cells: ['ssnorm', 'rmsnorm'], numeric: false });
  });
});

describe('emergence figures: worst-layer outliers, and the gap against step and against the 16-bit loss', () => {
  const sweep = buildEmergenceSweep();
  const { report } = writeReport(sweep, { title: 'emergence' });
  const read = (f: string) => readFileSync(join(sweep, f), 'utf8');

  it('are written only when measured (the six-trial sweep above has one quantization step and no worst-layer metrics)', () => {
    expect(report.plots).toEqual([
      'loss.svg',
      'val_loss.svg',
      'kurtosis.svg',
      'kurtosis_layers.svg',
      'max_median.svg',
      'max_abs.svg',
      'quant_gap.svg',
      'quant_gap_steps.svg',
      'quant_gap_vs_loss.svg',
    ]);
  });

  it('draw every trial with all its measurements, on axes that name the metric', () => {
    for (const f of ['max_median.svg', 'max_abs.svg', 'quant_gap_steps.svg', 'quant_gap_vs_loss.svg']) {
      expect(
        polylines(read(f)).map((p) => [p.name, p.points]),
        f,
      ).toEqual([
        ['adam', 3],
        ['osp', 3],
      ]);
    }
    expect(axisLabel(read('max_median.svg'), 'y')).toBe('max / median |activation|, worst layer');
    expect(axisLabel(read('quant_gap_steps.svg'), 'x')).toBe('training step');
    expect(axisLabel(read('quant_gap_steps.svg'), 'y')).toBe('W4A4KV4 RTN / 16-bit perplexity');
    expect(axisLabel(read('quant_gap_vs_loss.svg'), 'x')).toBe('16-bit loss (nats/byte)');
    // The x axis of the matched-loss view spans the 16-bit losses (2.3 .. 2.8), not steps.
    const ticks = xTicks(read('quant_gap_vs_loss.svg'));
    expect(Math.min(...ticks)).toBeGreaterThanOrEqual(2.2);
    expect(Math.max(...ticks)).toBeLessThanOrEqual(2.9);
  });
});
