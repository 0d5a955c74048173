import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { expandTrials, loadSweepSpec, MAX_TRIALS, SweepSpecSchema, type SweepSpec, type SweepSpecInput } from '../../src/sweep/spec.ts';
import { tempDir } from '../helpers/scratch.ts';

/** A small valid run config: every trial must pass the run schema. */
const BASE = { steps: 10, model: { hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 16 }, batch: { seqLen: 16 } };

const spec = (input: Omit<SweepSpecInput, 'base'> & { base?: SweepSpecInput['base'] }): SweepSpec =>
  SweepSpecSchema.parse({ base: BASE, ...input });

/** Runs `fn`, expecting a ConfigError; returns it for field and message checks. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('expandTrials', () => {
  it('grid only: the cartesian product in key order, first key slowest, named key=value', () => {
    const trials = expandTrials(
      spec({ grid: { 'optimizer.muon.lr': [0.01, 0.02], 'model.norm': ['rmsnorm', 'ssnorm'], seed: [1, 2, 3] } }),
      '.',
    );
    expect(trials).toHaveLength(12);
    expect(trials[0]!.name).toBe('optimizer.muon.lr=0.01__model.norm=rmsnorm__seed=1');
    expect(trials[1]!.name).toBe('optimizer.muon.lr=0.01__model.norm=rmsnorm__seed=2');
    expect(trials[3]!.name).toBe('optimizer.muon.lr=0.01__model.norm=ssnorm__seed=1');
    expect(trials[11]!.name).toBe('optimizer.muon.lr=0.02__model.norm=ssnorm__seed=3');
    expect(new Set(trials.map((t) => t.name)).size).toBe(12);
    expect(trials[11]!.point).toEqual({ 'optimizer.muon.lr': 0.02, 'model.norm': 'ssnorm', seed: 3 });
    expect(trials[11]!.variant).toBeUndefined();
  });

  it('variants only: one trial per variant, named after it', () => {
    const trials = expandTrials(
      spec({
        variants: [
          { name: 'osp', set: { 'model.norm': 'ssnorm' } },
          { name: 'adam', set: { 'model.norm': 'rmsnorm' } },
          { name: 'baseline' },
        ],
      }),
      '.',
    );
    expect(trials.map((t) => t.name)).toEqual(['osp', 'adam', 'baseline']);
    expect(trials.map((t) => (t.config.model as Record<string, unknown>).norm)).toEqual(['ssnorm', 'rmsnorm', undefined]);
    expect(trials.map((t) => t.variant)).toEqual(['osp', 'adam', 'baseline']);
    expect(trials[0]!.point).toEqual({});
  });

  it('variants x grid: variant outermost, named <variant>__<key>=<value>', () => {
    const trials = expandTrials(
      spec({
        variants: [
          { name: 'osp', set: { 'model.norm': 'ssnorm' } },
          { name: 'adam', set: { 'model.embedding': 'plain' } },
        ],
        grid: { 'optimizer.muon.lr': [0.01, 0.001, 3e-4] },
      }),
      '.',
    );
    expect(trials.map((t) => t.name)).toEqual([
      'osp__optimizer.muon.lr=0.01',
      'osp__optimizer.muon.lr=0.001',
      'osp__optimizer.muon.lr=0.0003',
      'adam__optimizer.muon.lr=0.01',
      'adam__optimizer.muon.lr=0.001',
      'adam__optimizer.muon.lr=0.0003',
    ]);
    const t = trials[4]!;
    expect(t.config.name).toBe('adam__optimizer.muon.lr=0.001');
    expect((t.config.optimizer as { muon: { lr: number } }).muon.lr).toBe(0.001);
    expect((t.config.model as Record<string, unknown>).embedding).toBe('plain');
    // The variant's change does not leak into other variants' trials.
    expect((t.config.model as Record<string, unknown>).norm).toBeUndefined();
  });

  it('applies values at dotted paths: nested objects created, JSON values kept as values, the rest of the base untouched', () => {
    const [t] = expandTrials(
      spec({
        base: { ...BASE, optimizer: { adamw: { lr: 0.003 } } },
        variants: [
          {
            name: 'v',
            set: { 'optimizer.adamw.betas': [0.9, 0.99], 'guard.clipGradNorm': 0, 'logging.tensorboard': false, 'data.source': 'brown' },
          },
        ],
        grid: { 'optimizer.muon.lr': [0.02] },
      }),
      '.',
    );
    expect(t!.config).toEqual({
      name: 'v__optimizer.muon.lr=0.02',
      steps: 10,
      model: BASE.model,
      batch: BASE.batch,
      optimizer: { adamw: { lr: 0.003, betas: [0.9, 0.99] }, muon: { lr: 0.02 } },
      guard: { clipGradNorm: 0 },
      logging: { tensorboard: false },
      data: { source: 'brown' },
    });
    expect(t!.config.out).toBeUndefined();
  });

  it('a grid value overrides the same path set by a variant (base, then variant, then grid)', () => {
    const trials = expandTrials(spec({ variants: [{ name: 'v', set: { seed: 7, steps: 20 } }], grid: { seed: [1, 2] } }), '.');
    expect(trials.map((t) => [t.config.seed, t.config.steps])).toEqual([
      [1, 20],
      [2, 20],
    ]);
  });

  it('sanitises grid values in names to [A-Za-z0-9._=-]', () => {
    const trials = expandTrials(spec({ grid: { 'optimizer.adamw.betas': [[0.9, 0.95]], 'data.source': ['brown'] } }), '.');
    expect(trials[0]!.name).toBe('optimizer.adamw.betas=_0.9_0.95___data.source=brown');
    expect(trials[0]!.name).toMatch(/^[A-Za-z0-9._=-]+$/);
    expect((trials[0]!.config.optimizer as { adamw: { betas: number[] } }).adamw.betas).toEqual([0.9, 0.95]);
  });

  it('does not share nested objects between trials or with the spec', () => {
    const s = spec({ variants: [{ name: 'a' }, { name: 'b' }] });
    const [a, b] = expandTrials(s, '.');
    (a!.config.model as Record<string, unknown>).hiddenSize = 999;
    expect((b!.config.model as Record<string, unknown>).hiddenSize).toBe(32);
    expect((s.base as typeof BASE).model.hiddenSize).toBe(32);
  });

  it('reads a base given as a path relative to the spec file', () => {
    const dir = tempDir('osp-sweep-spec-');
    mkdirSync(join(dir, 'sweeps', 'configs'), { recursive: true });
    writeFileSync(join(dir, 'sweeps', 'configs', 'base.json'), JSON.stringify({ ...BASE, seed: 42 }));
    const specPath = join(dir, 'sweeps', 'lr.json');
    writeFileSync(
      specPath,
      JSON.stringify({
        name: 'lr',
        base: 'configs/base.json',
        grid: { 'optimizer.muon.lr': [0.01, 0.02] },
        metrics: ['outliers/osp_kurtosis'],
        parallel: 2,
      }),
    );
    const s = loadSweepSpec(specPath);
    expect(s).toMatchObject({ name: 'lr', metrics: ['outliers/osp_kurtosis'], parallel: 2 });
    const trials = expandTrials(s, join(dir, 'sweeps'));
    expect(trials).toHaveLength(2);
    expect(trials[1]!.config).toMatchObject({ name: 'optimizer.muon.lr=0.02', seed: 42, steps: 10, optimizer: { muon: { lr: 0.02 } } });
    // Relative to the spec's directory, not the working directory.
    const e = configError(() => expandTrials(s, dir));
    expect(e.field).toBe('sweep.base');
    expect(e.message).toContain(join(dir, 'configs', 'base.json'));
  });

  it('spec defaults: name "sweep", no metrics', () => {
    expect(spec({ grid: { seed: [1] } })).toMatchObject({ name: 'sweep', metrics: [] });
  });
});

describe('loadSweepSpec errors name the file and the field', () => {
  it('a missing file', () => {
    const e = configError(() => loadSweepSpec('/nonexistent/sweep.json'));
    expect(e.message).toContain('/nonexistent/sweep.json');
    expect(e.message).toContain('ENOENT');
  });

  it('invalid JSON', () => {
    const p = join(tempDir('osp-sweep-spec-'), 'bad.json');
    writeFileSync(p, '{ "grid": ');
    expect(configError(() => loadSweepSpec(p)).message).toContain(`${p} is not valid JSON`);
  });

  it('an unknown key lists the valid ones', () => {
    const p = join(tempDir('osp-sweep-spec-'), 's.json');
    writeFileSync(p, JSON.stringify({ base: {}, grids: {} }));
    const e = configError(() => loadSweepSpec(p));
    expect(e.field).toBe('sweep.grids');
    expect(e.message).toContain('valid keys here: name, base, grid, variants, metrics, parallel');
    expect(e.message).toContain(p);
  });

  it('a grid whose values are not a list', () => {
    const p = join(tempDir('osp-sweep-spec-'), 's.json');
    writeFileSync(p, JSON.stringify({ base: {}, grid: { seed: 3 } }));
    const e = configError(() => loadSweepSpec(p));
    expect(e.field).toBe('sweep.grid.seed');
    expect(e.message).toContain(p);
  });

  it('parallel 0 and an unsafe sweep name', () => {
    const p = join(tempDir('osp-sweep-spec-'), 's.json');
    writeFileSync(p, JSON.stringify({ base: {}, grid: { seed: [1] }, parallel: 0 }));
    expect(configError(() => loadSweepSpec(p)).field).toBe('sweep.parallel');
    writeFileSync(p, JSON.stringify({ name: '../x', base: {}, grid: { seed: [1] } }));
    expect(configError(() => loadSweepSpec(p)).field).toBe('sweep.name');
  });
});

describe('expandTrials validation', () => {
  it('no grid and no variants', () => {
    for (const s of [spec({}), spec({ grid: {} }), spec({ variants: [] }), spec({ grid: {}, variants: [] })]) {
      const e = configError(() => expandTrials(s, '.'));
      expect(e.field).toBe('sweep');
      expect(e.message).toContain('nothing to sweep: give a "grid"');
      expect(e.message).toContain('"variants"');
    }
  });

  it('a grid key with an empty value list', () => {
    const e = configError(() => expandTrials(spec({ grid: { seed: [1, 2], 'optimizer.muon.lr': [] } }), '.'));
    expect(e.field).toBe('sweep.grid.optimizer.muon.lr');
    expect(e.message).toContain('has no values');
  });

  it('an unknown config path names the trial, the field and the valid keys', () => {
    const e = configError(() => expandTrials(spec({ variants: [{ name: 'osp' }], grid: { 'model.widht': [64, 128] } }), '.'));
    expect(e.field).toBe('model.widht');
    expect(e.message).toContain("in trial 'osp__model.widht=64'");
    expect(e.message).toContain("grid key 'model.widht'");
    expect(e.message).toContain('unknown key; valid keys here: vocabSize, hiddenSize, numLayers');
  });

  it('an unknown path in a variant, and a bad value, say where they came from', () => {
    let e = configError(() => expandTrials(spec({ variants: [{ name: 'ok' }, { name: 'bad', set: { 'optimizer.muon.lrr': 1 } }] }), '.'));
    expect(e.field).toBe('optimizer.muon.lrr');
    expect(e.message).toContain("in trial 'bad' (set by variant 'bad' at 'optimizer.muon.lrr')");
    expect(e.message).toContain('valid keys here:');
    e = configError(() => expandTrials(spec({ grid: { 'model.norm': ['rmsnorm', 'batchnorm'] } }), '.'));
    expect(e.field).toBe('model.norm');
    expect(e.message).toContain("in trial 'model.norm=batchnorm'");
    expect(e.message).toContain("valid choices: 'rmsnorm', 'ssnorm'");
  });

  it('an invalid base is reported as coming from the base config', () => {
    const e = configError(() => expandTrials(spec({ base: { ...BASE, steps: 0 }, grid: { seed: [1] } }), '.'));
    expect(e.field).toBe('steps');
    expect(e.message).toContain("in trial 'seed=1' (from the base config)");
  });

  it('a path through a non-object', () => {
    const e = configError(() => expandTrials(spec({ grid: { 'steps.x': [1] } }), '.'));
    expect(e.field).toBe('steps.x');
    expect(e.message).toContain("in trial 'steps.x=1' (from grid)");
    expect(e.message).toContain("'steps' is not an object");
  });

  it('grid or variants setting name or out, and malformed paths', () => {
    expect(configError(() => expandTrials(spec({ grid: { name: ['a', 'b'] } }), '.')).message).toContain('set by the sweep itself');
    expect(configError(() => expandTrials(spec({ variants: [{ name: 'v', set: { out: '/tmp' } }] }), '.')).field).toBe(
      'sweep.variants.0.set.out',
    );
    expect(configError(() => expandTrials(spec({ grid: { 'model..norm': ['ssnorm'] } }), '.')).message).toContain(
      'not a dotted config path',
    );
    expect(configError(() => expandTrials(spec({ grid: { 'a=b': [1] } }), '.')).message).toContain('not a dotted config path');
    const e = configError(() => expandTrials(spec({ grid: { '__proto__.x': [1] } }), '.'));
    expect(e.field).toBe('sweep.grid.__proto__.x');
    expect(e.message).toContain('not a dotted config path');
  });

  it('duplicate trial names name both sources', () => {
    let e = configError(() =>
      expandTrials(
        spec({
          variants: [
            { name: 'osp', set: { seed: 1 } },
            { name: 'osp', set: { seed: 2 } },
          ],
        }),
        '.',
      ),
    );
    expect(e.message).toContain("two trials would both be named 'osp'");
    expect(e.message).toContain("variant 'osp' (sweep.variants.0) and variant 'osp' (sweep.variants.1)");
    // 1 and "1" differ as values but not as names; "a b" and "a_b" collide after sanitising.
    e = configError(() => expandTrials(spec({ grid: { seed: [1, '1'] } }), '.'));
    expect(e.message).toContain("two trials would both be named 'seed=1'");
    expect(e.message).toContain('grid point {"seed":1} and grid point {"seed":"1"}');
    e = configError(() => expandTrials(spec({ grid: { 'data.source': ['a b', 'a_b'] } }), '.'));
    expect(e.message).toContain("'data.source=a_b'");
  });

  it.each([
    ['', 'is empty'],
    ['.', 'would escape the sweep directory'],
    ['..', 'would escape the sweep directory'],
    ['../x', 'contains a path separator'],
    ['a/b', 'contains a path separator'],
    ['a\\b', 'contains a path separator'],
    ['.hidden', 'starts with "."'],
    ['my variant', 'may only contain letters'],
    ['trials', 'is used by the sweep itself'],
    ['x'.repeat(129), 'is longer than 128'],
  ])('rejects the variant name %j', (name, why) => {
    const e = configError(() => expandTrials(spec({ variants: [{ name: 'fine' }, { name }] }), '.'));
    expect(e.field).toBe('sweep.variants.1.name');
    expect(e.message).toContain(`variant name ${JSON.stringify(name)} ${why}`);
  });

  it('rejects a resulting trial name that is too long', () => {
    const e = configError(() => expandTrials(spec({ grid: { 'data.source': ['y'.repeat(130)] } }), '.'));
    expect(e.message).toContain('longer than 128');
  });

  it(`more than ${MAX_TRIALS} trials is refused before expanding`, () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => i);
    const e = configError(() =>
      expandTrials(spec({ variants: [{ name: 'a' }, { name: 'b' }], grid: { seed: values(30), steps: values(20) } }), '.'),
    );
    expect(e.field).toBe('sweep.grid');
    expect(e.message).toContain('1200 trials (2 variants x 30 seed x 20 steps) is more than the limit of 1000');
    // Exactly the limit is fine (and every trial is validated).
    const ok = expandTrials(spec({ grid: { seed: values(50), 'optimizer.muon.lr': values(20).map((i) => (i + 1) / 1000) } }), '.');
    expect(ok).toHaveLength(1000);
  });
});

describe('seeds', () => {
  it('every variant x grid point once per seed, seeds innermost, named __seed=N, config.seed set', () => {
    const trials = expandTrials(
      spec({
        variants: [
          { name: 'adam', set: { 'model.norm': 'rmsnorm' } },
          { name: 'osp', set: { 'model.norm': 'ssnorm' } },
        ],
        grid: { 'optimizer.muon.lr': [0.01, 0.02] },
        seeds: [0, 1, 2],
      }),
      '.',
    );
    expect(trials.map((t) => t.name)).toEqual([
      'adam__optimizer.muon.lr=0.01__seed=0',
      'adam__optimizer.muon.lr=0.01__seed=1',
      'adam__optimizer.muon.lr=0.01__seed=2',
      'adam__optimizer.muon.lr=0.02__seed=0',
      'adam__optimizer.muon.lr=0.02__seed=1',
      'adam__optimizer.muon.lr=0.02__seed=2',
      'osp__optimizer.muon.lr=0.01__seed=0',
      'osp__optimizer.muon.lr=0.01__seed=1',
      'osp__optimizer.muon.lr=0.01__seed=2',
      'osp__optimizer.muon.lr=0.02__seed=0',
      'osp__optimizer.muon.lr=0.02__seed=1',
      'osp__optimizer.muon.lr=0.02__seed=2',
    ]);
    const t = trials[10]!;
    expect(t.config).toMatchObject({
      name: 'osp__optimizer.muon.lr=0.02__seed=1',
      seed: 1,
      model: { norm: 'ssnorm' },
      optimizer: { muon: { lr: 0.02 } },
    });
    expect(t.point).toEqual({ 'optimizer.muon.lr': 0.02, seed: 1 });
    expect(t.seed).toBe(1);
    expect(t.variant).toBe('osp');
    expect(trials.map((x) => x.config.seed)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  it('variants only, and seeds alone (a valid sweep): names end in seed=N', () => {
    const v = expandTrials(spec({ variants: [{ name: 'adam' }, { name: 'osp' }], seeds: [7, 3] }), '.');
    expect(v.map((t) => t.name)).toEqual(['adam__seed=7', 'adam__seed=3', 'osp__seed=7', 'osp__seed=3']);
    expect(v.map((t) => t.config.seed)).toEqual([7, 3, 7, 3]);
    const s = expandTrials(spec({ base: { ...BASE, seed: 42 }, seeds: [0, 1, 2] }), '.');
    expect(s.map((t) => t.name)).toEqual(['seed=0', 'seed=1', 'seed=2']);
    // The seed overrides the base config's.
    expect(s.map((t) => t.config.seed)).toEqual([0, 1, 2]);
    expect(s.map((t) => t.point)).toEqual([{ seed: 0 }, { seed: 1 }, { seed: 2 }]);
    expect(s[0]!.config).toMatchObject({ name: 'seed=0', steps: 10 });
    // data.seed stays free to sweep: weight init and data order vary independently.
    const d = expandTrials(spec({ grid: { 'data.seed': [5] }, seeds: [0] }), '.');
    expect(d[0]!.name).toBe('data.seed=5__seed=0');
    expect(d[0]!.config).toMatchObject({ seed: 0, data: { seed: 5 } });
  });

  it('seed in the grid or in a variant together with seeds is an error naming the field', () => {
    let e = configError(() => expandTrials(spec({ grid: { seed: [1, 2] }, seeds: [0, 1] }), '.'));
    expect(e.field).toBe('sweep.grid.seed');
    expect(e.message).toContain('"seed" is set by "seeds"');
    e = configError(() => expandTrials(spec({ variants: [{ name: 'a' }, { name: 'b', set: { seed: 3 } }], seeds: [0] }), '.'));
    expect(e.field).toBe('sweep.variants.1.set.seed');
    expect(e.message).toContain("remove it from variant 'b'");
  });

  it('seeds must be a non-empty list of distinct non-negative integers', () => {
    const e = configError(() => expandTrials(spec({ variants: [{ name: 'a' }], seeds: [0, 1, 0] }), '.'));
    expect(e.field).toBe('sweep.seeds.2');
    expect(e.message).toContain('seed 0 is listed twice');
    const p = join(tempDir('osp-sweep-spec-'), 's.json');
    for (const [seeds, field] of [
      [[], 'sweep.seeds'],
      [[-1], 'sweep.seeds.0'],
      [[0, 1.5], 'sweep.seeds.1'],
      [['1'], 'sweep.seeds.0'],
      [3, 'sweep.seeds'],
    ] as const) {
      writeFileSync(p, JSON.stringify({ base: BASE, seeds }));
      const err = configError(() => loadSweepSpec(p));
      expect(err.field, JSON.stringify(seeds)).toBe(field);
      expect(err.message).toContain(p);
    }
    writeFileSync(p, JSON.stringify({ base: BASE, seeds: [0, 1] }));
    expect(expandTrials(loadSweepSpec(p), '.').map((t) => t.name)).toEqual(['seed=0', 'seed=1']);
  });

  it('the trial limit counts the seeds', () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => i);
    const e = configError(() =>
      expandTrials(
        spec({ variants: [{ name: 'a' }, { name: 'b' }], grid: { steps: values(30).map((i) => i + 1) }, seeds: values(20) }),
        '.',
      ),
    );
    expect(e.field).toBe('sweep.grid');
    expect(e.message).toContain('1200 trials (2 variants x 30 steps x 20 seeds) is more than the limit of 1000');
    expect(configError(() => expandTrials(spec({ seeds: values(1001) }), '.')).message).toContain('1001 trials (1001 seeds)');
  });
});
