/**
 * Every config and sweep preset the repository ships (configs/) is valid as it stands: a preset that
 * fails after an hour of someone else's training is the failure this guards against.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfigFile, resolveRunConfig } from '../../src/config/run.ts';
import { expandTrials, loadSweepSpec } from '../../src/sweep/spec.ts';

describe('shipped presets', () => {
  for (const f of readdirSync('configs').filter((n) => n.endsWith('.json'))) {
    it(`configs/${f} resolves`, () => {
      expect(() => resolveRunConfig(readConfigFile(join('configs', f)))).not.toThrow();
    });
  }
  for (const f of readdirSync('configs/sweeps').filter((n) => n.endsWith('.json'))) {
    it(`configs/sweeps/${f} expands into valid trials`, () => {
      const trials = expandTrials(loadSweepSpec(join('configs/sweeps', f)), 'configs/sweeps');
      expect(trials.length).toBeGreaterThan(0);
    });
  }

  it("the ablation preset measures the paper's quantization variants", () => {
    const trials = expandTrials(loadSweepSpec('configs/sweeps/osp-ablation.json'), 'configs/sweeps');
    const quant = resolveRunConfig(trials[0]!.config).quant;
    expect(quant.method).toEqual(['rtn', 'gptq']);
    expect(quant.rotate).toEqual(['none', 'ffn', 'quarot']);
    expect(quant.every).toBeGreaterThan(0);
  });
});
