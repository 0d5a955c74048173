/**
 * The outlier-emergence preset (configs/sweeps/outlier-emergence.json, `npm run emergence`) as CI can
 * afford it: the same variants, trend pairs and measurements, 2 steps and 2 seeds, trained for real in
 * the sweep's worker threads; the report must carry the trend verdict of every pair. And a trend pair
 * that names no configuration of the sweep is refused before anything is written.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { runSweep } from '../../src/sweep/run.ts';
import type { PairTrend } from '../../src/sweep/trend.ts';
import { has } from '../helpers/capabilities.ts';
import { tempDir } from '../helpers/scratch.ts';
const PRESET = 'configs/sweeps/outlier-emergence.json';

/** The part of a sweep spec the tests edit (the rest passes through untouched). */
type SpecJson = { trend: { pairs: string[][] }; [key: string]: unknown };

/**
 * The preset shrunk to a smoke test: every measurement still runs, twice, on 2 seeds. The weight scales
 * skip the MSE clip search: at d=256 it took 20 of the 21 s of each quantized variant (80 candidate clips
 * per weight row, a pow per weight each): the test took 395 s with it, 75 s without. It has its own tests in
 * test/quant/weights.test.ts and changes no step of the sweep's pipeline, only the tag ('_noclip').
 */
function smokeSpec(dir: string, edit: (spec: SpecJson) => void = () => {}): string {
  const spec = JSON.parse(readFileSync(PRESET, 'utf8'));
  Object.assign(spec.base, {
    steps: 2,
    schedule: { ...spec.base.schedule, warmupSteps: 1 },
    eval: { every: 2, batches: 1 },
    checkpoint: { every: 2, keep: 1 },
    monitor: { ...spec.base.monitor, every: 1, batchSize: 2 },
    quant: { ...spec.base.quant, every: 1, batches: 1, clipSearch: false },
  });
  spec.seeds = [0, 1];
  edit(spec);
  const path = join(dir, 'spec.json');
  writeFileSync(path, JSON.stringify(spec));
  return path;
}

describe('outlier-emergence preset', () => {
  // The preset trains on the native backend (as `npm run emergence` does); without the kernel pack it skips.
  it.skipIf(!has.native)(
    'runs end to end at 2 steps x 2 seeds and writes the trend verdict of every pair',
    async () => {
      const dir = tempDir('osp-emergence-');
      const out = join(dir, 'sweep');
      const preset = JSON.parse(readFileSync(PRESET, 'utf8'));
      const r = await runSweep({ spec: smokeSpec(dir), out, parallel: 2, log: () => {} });
      expect(r.failed).toEqual([]);
      expect(r.finished.length).toBe(preset.variants.length * 2);
      const trends = JSON.parse(readFileSync(join(out, 'trend.json'), 'utf8')) as PairTrend[];
      expect(trends.map((t) => [t.a, t.b])).toEqual(preset.trend.pairs);
      for (const t of trends) {
        expect([t.seedsA, t.seedsB]).toEqual([2, 2]);
        expect(t.tag).toBe('w4a4kv4_rtn_noclip');
        expect(t.targets.length).toBe(8);
        // Steps 1 and 2 both measure; step 1 (the initialization) is left out of the trend, so each seed
        // contributes its step-2 value (and no slope: a line needs two points).
        const gap = t.metricsA.find((m) => m.metric === 'gap')!;
        expect(gap.last.n).toBe(2);
        expect(gap.slope.n).toBe(0);
      }
      const md = readFileSync(join(out, 'trend.md'), 'utf8');
      for (const [a, b] of preset.trend.pairs) expect(md).toContain(`## ${a} vs ${b}`);
      expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('](trend.md)');
      for (const f of ['kurtosis.svg', 'max_median.svg', 'quant_gap.svg']) expect(existsSync(join(out, f)), f).toBe(true);
    },
    600_000,
  );

  it('a trend pair naming no configuration is a ConfigError before anything is written', async () => {
    const dir = tempDir('osp-emergence-');
    const out = join(dir, 'never');
    const spec = smokeSpec(dir, (s) => (s.trend = { pairs: [[s.trend.pairs[0][0], 'no-such-config']] }));
    const err = await runSweep({ spec, out, parallel: 1, log: () => {} }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/sweep\.trend\.pairs\.0\.1: 'no-such-config' is not a configuration of this sweep/);
    expect(existsSync(out)).toBe(false);
  });
});
