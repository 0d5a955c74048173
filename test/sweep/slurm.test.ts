/**
 * `osp sweep --executor slurm` against a real Slurm (scripts/slurm-up.sh starts a single-node cluster;
 * CI runs it): a 4-trial sweep finishes and its report equals the local runner's (same trial names,
 * same final losses bit for bit on the same backend); a requeued task resumes its trial instead of
 * restarting it (one continuous step sequence); failed trials are reported with their logs and
 * `--retry-failed` resubmits only them. Without Slurm these skip (see the end of `npm test`).
 * The parts that need no cluster (the array syntax, the script's options) always run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emitSlurm } from '../../src/sweep/emit.ts';
import { compactRanges } from '../../src/sweep/slurm.ts';
import { has } from '../helpers/capabilities.ts';
import { readMetrics, tempDir } from '../helpers/run.ts';

const osp = (...args: string[]) => spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 600_000 });

function spec(dir: string, extra: Record<string, unknown> = {}, base: Record<string, unknown> = {}): string {
  const path = join(dir, 'spec.json');
  writeFileSync(
    path,
    JSON.stringify({
      name: 'slurm-test',
      base: {
        seed: 3,
        backend: 'cpu',
        steps: 12,
        model: { hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, maxSeqLen: 32 },
        batch: { size: 4, seqLen: 32 },
        eval: { every: 6, batches: 1 },
        checkpoint: { every: 4, keep: 3 },
        monitor: { every: 0 },
        logging: { every: 1, histogramsEvery: 0, console: 'quiet' },
        ...base,
      },
      ...extra,
    }),
  );
  return path;
}

/** Each trial's last training loss, by trial name. */
function finalLosses(sweepDir: string, names: string[]): Map<string, number> {
  return new Map(
    names.map((n) => [
      n,
      readMetrics(join(sweepDir, n))
        .filter((r) => 'train/loss' in r)
        .at(-1)!['train/loss']!,
    ]),
  );
}

describe('slurm executor: no cluster needed', () => {
  it('compactRanges writes sbatch --array syntax', () => {
    expect(compactRanges([0, 1, 2, 3])).toBe('0-3');
    expect(compactRanges([5, 0, 2, 1, 7, 8])).toBe('0-2,5,7-8');
    expect(compactRanges([4])).toBe('4');
  });

  it('the job script: per-task options, appended logs, the osp command by absolute path', () => {
    const trials = [{ name: 'a', config: {}, point: {} }];
    const s = emitSlurm('/tmp/sw', trials, { gpus: 1, account: 'lab', cpus: 4, command: '/usr/bin/node /x/bin/osp.mjs' });
    for (const line of ['#SBATCH --gpus-per-task=1', '#SBATCH --account=lab', '#SBATCH --cpus-per-task=4', '#SBATCH --open-mode=append']) {
      expect(s).toContain(line);
    }
    expect(s).toContain('exec /usr/bin/node /x/bin/osp.mjs train --resume "$RUN_DIR"');
    expect(emitSlurm('/tmp/sw', trials)).toContain('exec npx osp train --config');
  });

  it('slurm-only flags without --executor slurm, and a bad executor, are refused', () => {
    const dir = tempDir();
    const path = spec(dir, { grid: { 'optimizer.muon.lr': [0.01] } });
    for (const [args, msg] of [
      [['--detach'], '--detach goes with --executor slurm'],
      [['--executor', 'pbs'], '--executor must be slurm'],
      [['--executor', 'slurm', '--emit', 'slurm'], 'either --emit or --executor'],
      [['--executor', 'slurm', '--cpus', '0'], '--cpus must be an integer >= 1'],
    ] as const) {
      const r = osp('sweep', path, '--out', join(dir, 'out'), ...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(msg);
    }
    const st = osp('sweep', 'status', join(dir, 'out'));
    expect(st.status).toBe(2);
    expect(st.stderr).toContain('was not submitted with osp sweep --executor slurm');
  });
});

describe.skipIf(!has.slurm)('slurm executor on a real cluster', () => {
  it('a 4-trial sweep finishes, and equals the local runner bit for bit', () => {
    const dir = tempDir();
    const path = spec(dir, { grid: { 'optimizer.muon.lr': [0.01, 0.02] }, seeds: [0, 1] });
    const r = osp('sweep', path, '--out', join(dir, 'slurm'), '--executor', 'slurm', '--cpus', '1', '--poll', '1');
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/submitted 4 of 4 trials as Slurm job array \d+/);
    expect(r.stdout).toContain('0 pending, 0 running, 4 finished, 0 failed');
    const names = JSON.parse(readFileSync(join(dir, 'slurm', 'sweep.json'), 'utf8')).trials as string[];
    expect(names).toHaveLength(4);
    for (const f of ['report.md', 'report.json', 'slurm.json']) expect(existsSync(join(dir, 'slurm', f)), f).toBe(true);
    const status = osp('sweep', 'status', join(dir, 'slurm'));
    expect(status.stdout).toContain('4 finished');
    expect(status.stdout.split('\n').filter((l) => / finished +12$/.test(l))).toHaveLength(4);

    const local = osp('sweep', path, '--out', join(dir, 'local'), '--parallel', '2');
    expect(local.status, local.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'local', 'sweep.json'), 'utf8')).trials).toEqual(names);
    expect(finalLosses(join(dir, 'slurm'), names)).toEqual(finalLosses(join(dir, 'local'), names));
    // The same report table (the sweep directories' names aside).
    const table = (d: string) =>
      readFileSync(join(dir, d, 'report.md'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('|'));
    expect(table('slurm')).toEqual(table('local'));
    // Submitting a finished sweep again submits nothing.
    const again = osp('sweep', path, '--out', join(dir, 'slurm'), '--executor', 'slurm', '--poll', '1');
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('all 4 trials finished already');
  }, 600_000);

  it('a requeued task resumes its trial from the last checkpoint: one continuous step sequence', async () => {
    const dir = tempDir();
    const path = spec(dir, { seeds: [0] }, { steps: 80, checkpoint: { every: 5, keep: 2 } });
    const out = join(dir, 'out');
    const r = osp('sweep', path, '--out', out, '--executor', 'slurm', '--cpus', '1', '--detach');
    expect(r.status, r.stderr).toBe(0);
    const jobId = /job array (\d+)/.exec(r.stdout)![1]!;
    const run = join(out, 'seed=0');
    const lastStep = () => (existsSync(join(run, 'metrics.jsonl')) ? (readMetrics(run).at(-1)?.step ?? 0) : 0);
    const waitFor = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 600 && !ok(); i++) await new Promise((res) => setTimeout(res, 250));
      expect(ok(), what).toBe(true);
    };
    await waitFor('training reached step 12', () => lastStep() >= 12);
    expect(spawnSync('scontrol', ['requeue', `${jobId}_0`]).status).toBe(0);
    // A requeued job waits for a begin time; let it start at once.
    await waitFor('the task is pending again', () =>
      /PENDING/.test(spawnSync('squeue', ['-h', '-r', '-j', jobId, '-o', '%T'], { encoding: 'utf8' }).stdout),
    );
    spawnSync('scontrol', ['update', `jobid=${jobId}_0`, 'StartTime=now']);
    await waitFor('the trial finished', () => existsSync(join(run, 'summary.json')));
    const steps = readMetrics(run)
      .filter((row) => 'train/loss' in row)
      .map((row) => row.step);
    expect(steps).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    const log = readFileSync(join(out, `slurm-${jobId}_0.out`), 'utf8');
    expect(log).toContain('SIGTERM: finishing this step and saving a checkpoint');
    expect(log).toMatch(/resumed .* at step \d+/);
    expect(osp('sweep', 'status', out).stdout).toContain('1 finished');
  }, 600_000);

  it('failed trials are reported with the end of their logs, and --retry-failed resubmits only them', () => {
    const dir = tempDir();
    const data = join(dir, 'corpus.txt');
    // The data file does not exist yet: the config is valid, the runs fail when they load it.
    const path = spec(dir, { grid: { 'optimizer.muon.lr': [0.01, 0.02] } }, { data: { source: 'text', train: [data] } });
    const out = join(dir, 'out');
    const r = osp('sweep', path, '--out', out, '--executor', 'slurm', '--cpus', '1', '--poll', '1');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('2 trial(s) failed');
    expect(r.stderr).toContain('--retry-failed');
    expect(r.stdout).toMatch(/FAILED; the end of its log:\n[^]*corpus\.txt/);
    expect(osp('sweep', 'status', out).stdout).toContain('0 finished, 2 failed');

    writeFileSync(data, 'The quick brown fox jumps over the lazy dog. '.repeat(400));
    const retry = osp('sweep', path, '--out', out, '--executor', 'slurm', '--cpus', '1', '--poll', '1', '--retry-failed');
    expect(retry.status, retry.stderr + retry.stdout).toBe(0);
    expect(retry.stdout).toMatch(/submitted 2 of 2 trials/);
    const record = JSON.parse(readFileSync(join(out, 'slurm.json'), 'utf8')) as { jobs: { tasks: number[] }[] };
    expect(record.jobs.map((j) => j.tasks)).toEqual([
      [0, 1],
      [0, 1],
    ]);
    // Nothing is left to retry.
    const none = osp('sweep', path, '--out', out, '--executor', 'slurm', '--retry-failed');
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('no failed trial');
  }, 600_000);
});
