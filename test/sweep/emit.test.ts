import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OspError } from '../../src/errors.ts';
import { emitList, emitSlurm, shellQuote, writeTrialConfigs } from '../../src/sweep/emit.ts';
import type { Trial } from '../../src/sweep/spec.ts';
import { tempDir } from '../helpers/scratch.ts';

const TRIALS: Trial[] = [
  {
    name: 'osp__optimizer.muon.lr=0.01',
    config: { name: 'osp__optimizer.muon.lr=0.01', steps: 10, optimizer: { muon: { lr: 0.01 } } },
    variant: 'osp',
    point: { 'optimizer.muon.lr': 0.01 },
  },
  {
    name: 'osp__optimizer.muon.lr=0.02',
    config: { name: 'osp__optimizer.muon.lr=0.02', steps: 10, optimizer: { muon: { lr: 0.02 } } },
    variant: 'osp',
    point: { 'optimizer.muon.lr': 0.02 },
  },
  { name: 'adam', config: { name: 'adam', steps: 10 }, variant: 'adam', point: {} },
];

/** A directory holding a fake `npx` that prints each argument on its own line, so word splitting shows. */
let fakeBin: string;
beforeAll(() => {
  fakeBin = tempDir('osp-fake-npx-');
  writeFileSync(join(fakeBin, 'npx'), '#!/bin/sh\nfor a in "$@"; do printf \'ARG:%s\\n\' "$a"; done\n');
  chmodSync(join(fakeBin, 'npx'), 0o755);
});

function bash(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', args, { encoding: 'utf8', env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}`, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The arguments the fake npx received. */
const argsOf = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('ARG:'))
    .map((l) => l.slice(4));

/** Sweep directories with a space, a single quote, a double quote, '$' and '#' in them. */
function oddDir(): string {
  const d = join(tempDir('osp-emit-'), `my sweep's "dir" $HOME #1`);
  mkdirSync(d);
  return d;
}

describe('writeTrialConfigs', () => {
  it('writes trials/<name>.json with out = the absolute sweep directory and the name set', () => {
    const dir = tempDir('osp-emit-');
    const rel = relative(process.cwd(), join(dir, 'sweep'));
    const files = writeTrialConfigs(rel, TRIALS);
    expect(files).toEqual(TRIALS.map((t) => join(dir, 'sweep', 'trials', `${t.name}.json`)));
    expect(readdirSync(join(dir, 'sweep', 'trials')).sort()).toEqual(TRIALS.map((t) => `${t.name}.json`).sort());
    const c = JSON.parse(readFileSync(files[1]!, 'utf8'));
    expect(c).toEqual({ name: 'osp__optimizer.muon.lr=0.02', steps: 10, optimizer: { muon: { lr: 0.02 } }, out: join(dir, 'sweep') });
    // The trials themselves are not modified.
    expect(TRIALS[1]!.config.out).toBeUndefined();
  });

  it('replaces earlier files (a re-emitted sweep)', () => {
    const dir = tempDir('osp-emit-');
    writeTrialConfigs(dir, TRIALS);
    writeTrialConfigs(dir, [{ ...TRIALS[2]!, config: { steps: 99 } }]);
    expect(JSON.parse(readFileSync(join(dir, 'trials', 'adam.json'), 'utf8'))).toEqual({ steps: 99, name: 'adam', out: dir });
  });
});

describe('emitSlurm', () => {
  it('a job array over the trials with the #SBATCH options', () => {
    const dir = tempDir('osp-emit-');
    const text = emitSlurm(dir, TRIALS, { partition: 'gpu', time: '04:00:00', mem: '16G' });
    const sbatch = text.split('\n').filter((l) => l.startsWith('#SBATCH'));
    expect(sbatch).toEqual([
      `#SBATCH --job-name=${dir.split('/').pop()}`,
      '#SBATCH --array=0-2',
      `#SBATCH --output=${dir}/slurm-%A_%a.out`,
      '#SBATCH --open-mode=append',
      '#SBATCH --cpus-per-task=2',
      '#SBATCH --partition=gpu',
      '#SBATCH --time=04:00:00',
      '#SBATCH --mem=16G',
    ]);
    expect(text.startsWith('#!/bin/bash\n')).toBe(true);
    expect(text).toContain('NAMES=(\n  osp__optimizer.muon.lr=0.01\n  osp__optimizer.muon.lr=0.02\n  adam\n)');
    expect(emitSlurm(dir, TRIALS.slice(0, 1), { cpus: 8, jobName: 'lr sweep' })).toContain('#SBATCH --array=0-0\n');
    expect(emitSlurm(dir, TRIALS, { cpus: 8, jobName: 'lr sweep' })).toContain('#SBATCH --job-name="lr sweep"\n');
    expect(emitSlurm(dir, TRIALS, { cpus: 8 })).toContain('#SBATCH --cpus-per-task=8\n');
  });

  it('quotes #SBATCH values the way sbatch reads them, and doubles % in the output path', () => {
    const dir = join(tempDir('osp-emit-'), `50% "done" #2`);
    const text = emitSlurm(dir, TRIALS);
    expect(text).toContain(`#SBATCH --output="${dir.replace('50% "done" #2', '50%% \\"done\\" \\#2')}/slurm-%A_%a.out"\n`);
    expect(text).toContain(`#SBATCH --job-name="50% \\"done\\" \\#2"\n`);
  });

  it('refuses what it cannot express', () => {
    expect(() => emitSlurm(tempDir('osp-emit-'), [])).toThrow(OspError);
    expect(() => emitSlurm(tempDir('osp-emit-'), TRIALS, { cpus: 0 })).toThrow('cpus must be a positive integer');
    expect(() => emitSlurm(join(tempDir('osp-emit-'), 'a\\b'), TRIALS)).toThrow('backslash or line break');
    expect(() => emitSlurm(tempDir('osp-emit-'), TRIALS, { time: '1:00\n#SBATCH --x' })).toThrow('line break');
  });

  it('is valid bash (bash -n)', () => {
    for (const dir of [tempDir('osp-emit-'), oddDir()]) {
      const script = join(dir, 'sweep.slurm');
      writeFileSync(script, emitSlurm(dir, TRIALS, { partition: 'gpu' }));
      const r = bash(['-n', script]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it.each([
    ['a plain sweep directory', () => tempDir('osp-emit-')],
    ['a sweep directory with spaces, quotes, $ and #', oddDir],
  ])('each task trains its trial, or resumes it once it has checkpoints (%s)', (_what, makeDir) => {
    const dir = makeDir();
    const script = join(dir, 'sweep.slurm');
    writeFileSync(script, emitSlurm(dir, TRIALS));
    const task = (id: number) => bash([script], { SLURM_ARRAY_TASK_ID: String(id) });

    for (const id of [0, 1]) {
      const r = task(id);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(argsOf(r.stdout)).toEqual(['osp', 'train', '--config', join(dir, 'trials', `${TRIALS[id]!.name}.json`)]);
    }

    // Task 1 was preempted after a checkpoint: the requeued task resumes.
    mkdirSync(join(dir, TRIALS[1]!.name, 'checkpoints', 'step_00000100'), { recursive: true });
    expect(argsOf(task(1).stdout)).toEqual(['osp', 'train', '--resume', join(dir, TRIALS[1]!.name)]);
    expect(existsSync(join(dir, TRIALS[1]!.name, 'checkpoints'))).toBe(true);

    // Task 0 stopped before its first checkpoint: its leftover directory is cleared and it starts over.
    mkdirSync(join(dir, TRIALS[0]!.name));
    writeFileSync(join(dir, TRIALS[0]!.name, 'config.json'), '{}');
    expect(argsOf(task(0).stdout)).toEqual(['osp', 'train', '--config', join(dir, 'trials', `${TRIALS[0]!.name}.json`)]);
    expect(existsSync(join(dir, TRIALS[0]!.name))).toBe(false);
    // Nothing else in the sweep directory was touched.
    expect(readdirSync(dir).sort()).toEqual([TRIALS[1]!.name, 'sweep.slurm'].sort());
  });

  it('fails clearly outside an array job or for a task without a trial', () => {
    const dir = tempDir('osp-emit-');
    const script = join(dir, 'sweep.slurm');
    writeFileSync(script, emitSlurm(dir, TRIALS));
    const r = bash([script], { SLURM_ARRAY_TASK_ID: '3' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no trial for array task 3 (the sweep has 3)');
    expect(argsOf(r.stdout)).toEqual([]);
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${fakeBin}:${process.env.PATH}` };
    delete env.SLURM_ARRAY_TASK_ID;
    const r2 = spawnSync('bash', [script], { encoding: 'utf8', env });
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toContain('submit this script with sbatch');
    expect(argsOf(r2.stdout)).toEqual([]);
  });
});

describe('emitList', () => {
  it.each([
    ['a plain sweep directory', () => tempDir('osp-emit-')],
    ['a sweep directory with spaces, quotes, $ and #', oddDir],
  ])('one standalone command per trial, resuming when checkpoints exist (%s)', (_what, makeDir) => {
    const dir = makeDir();
    const commands = emitList(dir, TRIALS);
    expect(commands).toHaveLength(3);
    commands.forEach((cmd, i) => {
      expect(cmd).not.toContain('\n');
      const r = bash(['-c', cmd]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(argsOf(r.stdout)).toEqual(['osp', 'train', '--config', join(dir, 'trials', `${TRIALS[i]!.name}.json`)]);
    });
    mkdirSync(join(dir, 'adam', 'checkpoints'), { recursive: true });
    expect(argsOf(bash(['-c', commands[2]!]).stdout)).toEqual(['osp', 'train', '--resume', join(dir, 'adam')]);
    expect(existsSync(join(dir, 'adam', 'checkpoints'))).toBe(true);
    // A leftover directory without checkpoints is cleared before a fresh start.
    mkdirSync(join(dir, 'osp__optimizer.muon.lr=0.01'));
    expect(argsOf(bash(['-c', commands[0]!]).stdout)[2]).toBe('--config');
    expect(existsSync(join(dir, 'osp__optimizer.muon.lr=0.01'))).toBe(false);
  });

  it('a failed resume does not fall through to a fresh start', () => {
    const dir = tempDir('osp-emit-');
    const bin = join(tempDir('osp-emit-'), 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'npx'), '#!/bin/sh\necho "ran: $*"\nexit 3\n');
    chmodSync(join(bin, 'npx'), 0o755);
    mkdirSync(join(dir, 'adam', 'checkpoints'), { recursive: true });
    const r = spawnSync('bash', ['-c', emitList(dir, TRIALS)[2]!], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    });
    expect(r.status).toBe(3);
    expect(r.stdout.trim().split('\n')).toEqual([`ran: osp train --resume ${join(dir, 'adam')}`]);
    expect(existsSync(join(dir, 'adam', 'checkpoints'))).toBe(true);
  });
});

describe('shellQuote', () => {
  it.each(['plain', 'a b', "it's", '"q"', '$HOME', '`id`', 'a\\b', '*', '', 'x=1', '-n', 'new\nline'])(
    '%j survives bash as one word',
    (s) => {
      const r = spawnSync('bash', ['-c', `printf '%s' ${shellQuote(s)}`], { encoding: 'utf8' });
      expect(r.stdout).toBe(s);
    },
  );
});
