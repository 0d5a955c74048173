/**
 * Every config and sweep preset the repository ships (configs/) is valid as it stands: a preset that
 * fails after an hour of someone else's training is the failure this guards against.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfigFile, resolveRunConfig } from '../../src/train/config.ts';
import { expandTrials, loadSweepSpec } from '../../src/sweep/spec.ts';
import { prepareSweep } from '../../src/sweep/run.ts';
import { checkQuantSetting } from '../../src/quant/eval.ts';

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
      // What training checks before its first step: the quantization setting fits the model (e.g. an
      // exact Hadamard of the FFN width exists); and the trend pairs name configurations of the sweep.
      for (const t of trials) {
        const c = resolveRunConfig(t.config);
        const { every, batches: _batches, ...quant } = c.quant;
        if (every > 0) expect(() => checkQuantSetting(c.model, quant), t.name).not.toThrow();
      }
      expect(() => prepareSweep({ spec: join('configs/sweeps', f), out: '/nonexistent/never-written' })).not.toThrow();
    });
  }

  it("the ablation preset measures the paper's quantization variants", () => {
    const trials = expandTrials(loadSweepSpec('configs/sweeps/osp-ablation.json'), 'configs/sweeps');
    const quant = resolveRunConfig(trials[0]!.config).quant;
    expect(quant.method).toEqual(['rtn', 'gptq']);
    expect(quant.rotate).toEqual(['none', 'ffn', 'quarot']);
    expect(quant.every).toBeGreaterThan(0);
  });

  it('the ablation preset runs its eight configurations on three seeds and measures 4-bit at the last step', () => {
    const trials = expandTrials(loadSweepSpec('configs/sweeps/osp-ablation.json'), 'configs/sweeps');
    expect(trials).toHaveLength(24);
    const configs = new Set(trials.map((t) => t.name.replace(/__seed=\d+$/, '')));
    expect(configs.size).toBe(8);
    for (const t of trials) {
      const c = resolveRunConfig(t.config);
      expect(c.steps % c.quant.every, t.name).toBe(0);
    }
    expect(new Set(trials.map((t) => t.config.seed))).toEqual(new Set([0, 1, 2]));
  });
});
