/**
 * The outlier monitor and the Hessian probe inside a training run: what they record (metrics.jsonl,
 * TensorBoard histograms and images, summary.json), that the probe's worker measured the weights of
 * the step it names, and `osp analyze` against an independent float64 computation.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, toFloat32 } from '../../src/io/safetensors.ts';
import { runProbe } from '../../src/metrics/probe.ts';
import { train } from '../../src/train/run.ts';
import { llama64 } from '../helpers/llama64.ts';
import { getBytes, getMessage, getString, getVarint } from '../helpers/protobuf_decode.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';
import { readEvents, values } from '../helpers/tfevents_read.ts';
import { checkpointWeights64, TINY_RUN_64 } from '../helpers/tiny64.ts';
import { ospKurtosis64 } from '../helpers/kurtosis64.ts';

const quiet = () => {};

describe('outlier monitor in a run', () => {
  it('records per-tap statistics, histograms, a heatmap and a summary', async () => {
    const s = await train({ config: tinyRun(tempDir(), { steps: 10, monitor: { every: 5, batchSize: 2 } }), log: quiet });
    const rows = readMetrics(s.runDir).filter((r) => 'outliers/osp_kurtosis' in r);
    expect(rows.map((r) => r.step)).toEqual([1, 5, 10]);
    for (const r of rows) {
      expect(r['outliers/osp_kurtosis']).toBeGreaterThanOrEqual(0);
      expect(r['outliers/gaussian_floor']).toBeGreaterThan(0.15); // d = 32: above the d = 64 floor (0.182 > ...)
      for (const tap of ['embed', 'layers.0.attn_in', 'layers.1.ffn_in', 'layers.1.out', 'final_norm']) {
        expect(Number.isFinite(r[`outliers/${tap}/channel_kurtosis`]), tap).toBe(true);
        expect(r[`outliers/${tap}/max_median`]).toBeGreaterThan(1);
      }
      // The worst layer's statistics are the maxima of the per-tap ones (taps: embed, 3 per layer, final_norm).
      const taps = Object.keys(r).filter((k) => /^outliers\/.+\/max_abs$/.test(k));
      expect(taps.length).toBe(1 + 3 * 2 + 1);
      const worst = (what: string) => Math.max(...taps.map((k) => r[k.replace('/max_abs', `/${what}`)]!));
      expect(r['outliers/max_abs']).toBe(worst('max_abs'));
      expect(r['outliers/max_median']).toBe(worst('max_median'));
      expect(r['outliers/channel_kurtosis']).toBe(worst('channel_kurtosis'));
    }
    const summary = JSON.parse(readFileSync(join(s.runDir, 'summary.json'), 'utf8'));
    expect(summary.monitors.outliers.step).toBe(10);
    expect(summary.monitors.outliers.ospKurtosis).toBeCloseTo(rows[2]!['outliers/osp_kurtosis']!, 10);

    const events = readEvents(
      join(
        s.runDir,
        readdirSync(s.runDir).find((f) => f.includes('tfevents'))!,
      ),
    );
    const tags = new Map<string, string>();
    for (const e of events.slice(1)) {
      for (const v of values(e)) {
        const tag = getString(v, 1)!;
        if (getMessage(v, 5)) tags.set(tag, 'histo');
        if (getMessage(v, 4)) tags.set(tag, 'image');
      }
    }
    expect(tags.get('outliers/channel_rms_heatmap')).toBe('image');
    // A figure with row labels, channel ticks and a colour bar around the 32 x 5 cells, not bare cells
    // (Summary.Image: height = 1, width = 2, encoded PNG = 4).
    const heatmap = events
      .flatMap((e) => (e === events[0] ? [] : values(e)))
      .find((v) => getString(v, 1) === 'outliers/channel_rms_heatmap');
    const image = getMessage(heatmap!, 4)!;
    expect(Number(getVarint(image, 2))).toBeGreaterThan(32 * 8 + 120);
    expect(Number(getVarint(image, 1))).toBeGreaterThan(5 * 20 + 40);
    expect([...getBytes(image, 4)!.subarray(1, 4)]).toEqual([0x50, 0x4e, 0x47]);
    expect(tags.get('outliers/layers.0.out/channel_rms')).toBe('histo');
    expect(tags.get('outliers/final_norm/channel_rms')).toBe('histo');
  });
});

describe('Hessian probe in a run', () => {
  it('measures in a worker the weights of the step it names', async () => {
    const hessian = { every: 5, topk: 3, lanczosSteps: 8, batchSize: 2, backend: 'wasm', method: 'exact', density: true };
    const s = await train({
      config: tinyRun(tempDir(), { steps: 10, hessian, checkpoint: { every: 5, keep: 5 }, monitor: { every: 0 } }),
      log: quiet,
    });
    const rows = readMetrics(s.runDir).filter((r) => 'hessian/eig_1' in r);
    expect(rows.length).toBeGreaterThanOrEqual(1);
    const last = rows[rows.length - 1]!;
    expect(last['hessian/measured_at_step']).toBe(10);
    expect(last['hessian/eig_1']).toBeGreaterThanOrEqual(last['hessian/eig_2']!);
    expect(last['hessian/eig_2']).toBeGreaterThanOrEqual(last['hessian/eig_3']!);
    const summary = JSON.parse(readFileSync(join(s.runDir, 'summary.json'), 'utf8'));
    expect(summary.monitors.hessian.step).toBe(10);
    expect(summary.monitors.hessian.method).toBe('exact');

    // The same probe in-process on the step-10 checkpoint's weights gives the same eigenvalues.
    const weights = decodeSafetensors(readFileSync(join(s.runDir, 'checkpoints/step_00000010/model.safetensors'))).tensors;
    const resolved = JSON.parse(readFileSync(join(s.runDir, 'config.json'), 'utf8')).resolved;
    const { evalBatches } = await import('../../src/data/batcher.ts');
    const { loadDataset } = await import('../../src/data/dataset.ts');
    const batch = evalBatches(loadDataset(resolved.data).train, { batchSize: 2, seqLen: 32, maxBatches: 1 })[0]!;
    const local = await runProbe({
      backend: 'wasm',
      model: resolved.model,
      weights: Object.fromEntries([...weights].map(([k, v]) => [k, toFloat32(v)])),
      inputs: batch.inputs,
      targets: batch.targets,
      batchSize: 2,
      seqLen: 32,
      topk: 3,
      lanczosSteps: 8,
      traceProbes: 0,
      density: false,
      params: '*',
      method: 'exact',
      seed: resolved.seed + 10,
    });
    expect(local.topk).toEqual(summary.monitors.hessian.topk);
  });
});

describe('osp analyze', () => {
  const osp = (...args: string[]) =>
    spawnSync(process.execPath, ['bin/osp.mjs', 'analyze', ...args], { encoding: 'utf8', timeout: 120_000 });

  it('kurtosis per tap and aggregate match a float64 computation; hessian eigenvalues are sorted', async () => {
    const dir = tempDir();
    await train({ config: tinyRun(dir, { steps: 3, schedule: { kind: 'constant' } }), log: quiet });
    const text = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(3);
    writeFileSync(join(dir, 'text.txt'), text);
    const r = osp(
      join(dir, 'tiny'),
      '--text',
      join(dir, 'text.txt'),
      '--batch',
      '2',
      '--seq',
      '20',
      '--kurtosis',
      '--hessian',
      '--topk',
      '3',
      '--lanczos',
      '6',
      '--outlier-window',
      '5',
      '--json',
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.tokens).toBe(40);

    const w = checkpointWeights64(join(dir, 'tiny/checkpoints/step_00000003'));
    const c = TINY_RUN_64;
    const bytes = [...Buffer.from(text)];
    const rows = [bytes.slice(0, 20), bytes.slice(21, 41)];
    const { hidden } = llama64(c, w, rows);
    // Per tap, every tap; the aggregate over what Hugging Face's output_hidden_states holds for a
    // 2-layer model: embed, layer 0's output, and the final norm's output (the last layer's raw
    // output is not among them).
    for (const tap of hidden.keys()) {
      expect(out.kurtosis.perTap[tap].ospKurtosis, tap).toBeCloseTo(ospKurtosis64(hidden.get(tap)!, 40, 32), 3);
    }
    const stream = ['embed', 'layers.0.out', 'final_norm'];
    const aggregate = stream.map((tap) => ospKurtosis64(hidden.get(tap)!, 40, 32)).reduce((a, b) => a + b, 0) / 3;
    expect(out.kurtosis.ospKurtosis).toBeCloseTo(aggregate, 3);
    expect(out.kurtosis.perTap.embed.topK).toHaveLength(8);

    expect(out.hessian.topk).toHaveLength(3);
    expect(out.hessian.topk[0]).toBeGreaterThanOrEqual(out.hessian.topk[1]);
    expect(out.hessian.dim).toBeGreaterThan(10_000);
    expect(out.hessian.outlierWindow).toBe(5);
    expect(typeof out.hessian.outliersCapped).toBe('boolean');
    expect(out.kurtosis.gaussianFloorStderr).toBeGreaterThan(0);
    expect(out.kurtosis.gaussianFloorStderr / out.kurtosis.gaussianFloor).toBeLessThan(0.002);
  });

  it('bad input: K > M, a text too short for the batch', async () => {
    const dir = tempDir();
    await train({ config: tinyRun(dir, { steps: 1, schedule: { kind: 'constant' } }), log: quiet });
    writeFileSync(join(dir, 'short.txt'), 'short');
    // osp analyze on the short text, the Hessian with 4 Lanczos steps and the given options.
    const hessian = (...extra: string[]) =>
      osp(join(dir, 'tiny'), '--text', join(dir, 'short.txt'), '--batch', '2', '--seq', '8', '--hessian', '--lanczos', '4', ...extra);
    const a = hessian('--topk', '9');
    expect(a.status).toBe(2);
    expect(a.stderr).toContain('--topk: 9 eigenvalues need at least as many Lanczos steps; --lanczos is 4');
    const w = hessian('--topk', '2', '--outlier-window', '6');
    expect(w.status).toBe(2);
    expect(w.stderr).toContain('--outlier-window: 6 exceeds --lanczos 4');
    const b = osp(join(dir, 'tiny'), '--text', join(dir, 'short.txt'), '--batch', '2', '--seq', '8');
    expect(b.status).toBe(2);
    expect(b.stderr).toContain('--batch 2 --seq 8 needs 18 bytes (B x (T+1)), the file has 5');
  });
});

describe('quantization robustness during training', () => {
  it('a quant section the model cannot be measured with fails before anything is written', async () => {
    const out = tempDir();
    const config = tinyRun(out, {
      steps: 4,
      model: { ...(tinyRun(out).model as object), intermediateSize: 172 },
      quant: { every: 2, rotate: 'ffn' },
    });
    await expect(train({ config, log: quiet })).rejects.toThrow(/model\.intermediateSize.*172.*nearest supported widths: 168 and 176/);
    expect(existsSync(join(out, 'tiny'))).toBe(false);
  });

  it('records full-precision and W4A4KV4 validation loss per variant (RTN, GPTQ, QuaRot), and training is unaffected', async () => {
    const base = { steps: 6, schedule: { kind: 'constant' }, monitor: { every: 0 } };
    const quant = { every: 3, batches: 1, method: ['rtn', 'gptq'], rotate: ['none', 'quarot'], gptq: { calibrationWindows: 8 } };
    const withQ = await train({ config: tinyRun(tempDir(), { ...base, quant }), log: quiet });
    const without = await train({ config: tinyRun(tempDir(), base), log: quiet });
    const rows = readMetrics(withQ.runDir).filter((r) => 'quant/fp_loss' in r);
    expect(rows.map((r) => r.step)).toEqual([3, 6]);
    const tags = ['w4a4kv4_rtn', 'w4a4kv4_rtn_quarot', 'w4a4kv4_gptq', 'w4a4kv4_gptq_quarot'];
    for (const r of rows) {
      for (const tag of tags) {
        expect(r[`quant/${tag}/loss`], tag).toBeGreaterThan(0);
        expect(r[`quant/${tag}/ppl_ratio`]).toBeCloseTo(Math.exp(r[`quant/${tag}/loss`]! - r['quant/fp_loss']!), 6);
      }
    }
    // The measurement restores the weights exactly: the trajectory is the one without it.
    const a = readMetrics(withQ.runDir).map((r) => r['train/loss']);
    const b = readMetrics(without.runDir).map((r) => r['train/loss']);
    expect(a).toEqual(b);
    const summary = JSON.parse(readFileSync(join(withQ.runDir, 'summary.json'), 'utf8'));
    expect(summary.monitors.quant.step).toBe(6);
    expect(summary.monitors.quant.variants.map((v: { tag: string }) => v.tag)).toEqual(tags);
    // The evaluation's standard error of the gap is logged with it (the last row's equals the summary's).
    for (const v of summary.monitors.quant.variants as { tag: string; gap: { lossStderr: number } }[]) {
      expect(rows[1]![`quant/${v.tag}/gap_stderr`]).toBe(v.gap.lossStderr);
      expect(v.gap.lossStderr).toBeGreaterThan(0);
    }
  });
});
