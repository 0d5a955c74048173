/**
 * `osp sweep` end to end on a tiny spec: trials run in worker threads and land in their own run
 * directories, the report is written, a second run skips finished trials and resumes interrupted
 * ones, a concurrent sweep on the same directory is refused, and --emit writes cluster files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSweep } from '../../src/sweep/run.ts';
import { tempDir, tinyRun } from '../helpers/run.ts';

function writeSpec(dir: string): string {
  const base = tinyRun(dir, {
    steps: 4,
    schedule: { kind: 'constant' },
    monitor: { every: 2, batchSize: 2 },
    quant: { every: 4, batches: 1 },
  });
  delete base.name;
  delete base.out;
  const spec = {
    name: 'mini',
    base,
    variants: [
      {
        name: 'adam',
        set: { 'model.norm': 'rmsnorm', 'model.embedding': 'plain', 'optimizer.routing': [{ match: '*', optimizer: 'adamw' }] },
      },
      { name: 'osp', set: { 'model.norm': 'ssnorm', 'model.embedding': 'embproj' } },
    ],
    grid: { seed: [1, 2] },
  };
  const path = join(dir, 'spec.json');
  writeFileSync(path, JSON.stringify(spec));
  return path;
}

describe('osp sweep', () => {
  it('runs every trial in parallel workers, reports, then skips finished and resumes interrupted trials', async () => {
    const dir = tempDir();
    const spec = writeSpec(dir);
    const out = join(dir, 'sweep');
    const lines: string[] = [];
    const r = await runSweep({ spec, out, parallel: 2, log: (l) => lines.push(l) });
    expect(r.failed).toEqual([]);
    expect(r.finished.sort()).toEqual(['adam__seed=1', 'adam__seed=2', 'osp__seed=1', 'osp__seed=2']);
    for (const t of r.finished) expect(existsSync(join(out, t, 'summary.json')), t).toBe(true);
    for (const f of ['report.md', 'report.json', 'loss.svg', 'kurtosis.svg']) expect(existsSync(join(out, f)), f).toBe(true);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(JSON.stringify(report)).toContain('osp__seed=2');
    // Trials ran two at a time: both workers were busy before either finished.
    const firstDone = lines.findIndex((l) => l.includes('] done in'));
    expect(lines.slice(0, firstDone).filter((l) => l.includes('] starting')).length).toBe(2);

    // Interrupt one trial after its checkpoint (summary gone) and lose another before its first one.
    rmSync(join(out, 'osp__seed=1', 'summary.json'));
    rmSync(join(out, 'adam__seed=2'), { recursive: true });
    const again: string[] = [];
    const r2 = await runSweep({ spec, out, parallel: 2, log: (l) => again.push(l) });
    expect(r2.skipped.sort()).toEqual(['adam__seed=1', 'osp__seed=2']);
    expect(again).toContain('[osp__seed=1] resuming');
    expect(again).toContain('[adam__seed=2] starting');
    expect(r2.finished.sort()).toEqual(['adam__seed=2', 'osp__seed=1']);
    expect(existsSync(join(out, '.lock'))).toBe(false);
  });

  it('refuses a second sweep on a directory while one runs', async () => {
    const dir = tempDir();
    const spec = writeSpec(dir);
    const out = join(dir, 'sweep');
    const first = runSweep({ spec, out, parallel: 1, log: () => {} });
    await expect(runSweep({ spec, out, parallel: 1, log: () => {} })).rejects.toThrow(/already running/);
    await first;
  });

  it('--emit slurm and --emit list write cluster files instead of training', () => {
    const dir = tempDir();
    const spec = writeSpec(dir);
    const out = join(dir, 'sweep dir');
    const s = spawnSync(process.execPath, ['bin/osp.mjs', 'sweep', spec, '--out', out, '--emit', 'slurm'], { encoding: 'utf8' });
    expect(s.status, s.stderr).toBe(0);
    const script = readFileSync(join(out, 'sweep.slurm'), 'utf8');
    expect(script).toContain('--array=0-3');
    expect(existsSync(join(out, 'trials', 'osp__seed=2.json'))).toBe(true);
    expect(existsSync(join(out, 'osp__seed=2'))).toBe(false); // nothing trained
    // sweep.json, for `osp sweep report` once the cluster ran the trials: their order (all pending now).
    expect(JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')).trials).toHaveLength(4);
    const l = spawnSync(process.execPath, ['bin/osp.mjs', 'sweep', spec, '--out', out, '--emit', 'list'], { encoding: 'utf8' });
    expect(l.status, l.stderr).toBe(0);
    expect(l.stdout.trim().split('\n')).toHaveLength(4);
  });

  it('bad specs fail before any trial starts', () => {
    const dir = tempDir();
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ name: 'bad', base: {}, grid: { 'model.widht': [64] } }));
    const r = spawnSync(process.execPath, ['bin/osp.mjs', 'sweep', path, '--out', join(dir, 'out')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('model.widht');
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});

describe('osp sweep with seeds', () => {
  it('runs every trial once per seed with that seed, and reports the mean over seeds', async () => {
    const dir = tempDir();
    const base = tinyRun(dir, {
      steps: 2,
      schedule: { kind: 'constant' },
      eval: { every: 2, batches: 1 },
      checkpoint: { every: 0, keep: 1 },
    });
    delete base.name;
    delete base.out;
    const path = join(dir, 'spec.json');
    writeFileSync(path, JSON.stringify({ name: 'seeds', base, seeds: [0, 1] }));
    const out = join(dir, 'sweep');
    const lines: string[] = [];
    const r = await runSweep({ spec: path, out, parallel: 2, log: (l) => lines.push(l) });
    expect(r.failed).toEqual([]);
    expect(r.finished.sort()).toEqual(['seed=0', 'seed=1']);
    const config = (t: string) => JSON.parse(readFileSync(join(out, t, 'config.json'), 'utf8')).resolved;
    expect([config('seed=0').seed, config('seed=1').seed]).toEqual([0, 1]);
    // Another seed, another initialization: the first losses differ.
    const first = (t: string) => JSON.parse(readFileSync(join(out, t, 'metrics.jsonl'), 'utf8').split('\n')[0]!)['train/loss'];
    expect(first('seed=0')).not.toBe(first('seed=1'));
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.configurations).toHaveLength(1);
    expect(report.configurations[0]).toMatchObject({ name: 'base', seeds: [0, 1], finished: 2 });
    expect(report.configurations[0].stats['eval/loss'].n).toBe(2);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('## Mean over seeds');
    // The console table at the end is the aggregated one.
    expect(lines.some((l) => /^seeds: 1 configuration, 2 trials$/.test(l))).toBe(true);
  });
});
