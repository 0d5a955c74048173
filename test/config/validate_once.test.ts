/**
 * "Validation happens once, at the boundary": a fresh `train()` validates the run config once (the
 * whole config, in resolveRunConfig) and builds the model, optimizer, schedule, data and callbacks
 * from the validated sections without parsing any of them again. parseConfig is the one function
 * that validates (utils/parse_config.ts); this test counts its calls during a run.
 */
import { describe, expect, it, vi } from 'vitest';
import { tempDir, tinyRun } from '../helpers/run.ts';

const calls: string[] = [];
vi.mock('../../src/utils/parse_config.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/utils/parse_config.ts')>();
  return {
    ...real,
    parseConfig: (schema: unknown, input: unknown, prefix = '') => {
      calls.push(prefix || '(root)');
      return real.parseConfig(schema as never, input, prefix);
    },
  };
});

const { train } = await import('../../src/train/run.ts');
const { resolveRunConfig } = await import('../../src/train/config.ts');

describe('validation once', () => {
  it('resolveRunConfig parses the whole config in one call', () => {
    calls.length = 0;
    resolveRunConfig(tinyRun(tempDir('osp-validate-once-')));
    expect(calls).toEqual(['(root)']);
  });

  it('a fresh train() parses the run config once and nothing else', async () => {
    calls.length = 0;
    const out = tempDir('osp-validate-once-');
    await train({
      config: tinyRun(out, { steps: 3, monitor: { every: 2, batchSize: 2 }, quant: { every: 3, batches: 1 } }),
      log: () => {},
    });
    expect(calls).toEqual(['(root)']);
  });
});
