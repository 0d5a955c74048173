/**
 * A sweep for a cluster: the trials' configs as files, plus either a Slurm job-array script or one
 * shell command per trial. Every emitted command resumes its trial when the trial already has
 * checkpoints, so a preempted and requeued task continues where it stopped instead of failing on
 * "run directory already holds a run".
 */
import { mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import type { Trial } from './spec.ts';

/** Options of the Slurm script; each one omitted leaves the cluster's default. */
export interface SlurmOptions {
  /** `--partition`. */
  partition?: string;
  /** `--time` wall-clock limit per task, e.g. `04:00:00`. */
  time?: string;
  /** `--cpus-per-task` (default 2: the trainer's thread plus data loading). */
  cpus?: number;
  /** `--mem` per task, e.g. `16G`. */
  mem?: string;
  /** `--job-name` (default: the sweep directory's name). */
  jobName?: string;
  /** `--gpus-per-task`. */
  gpus?: number;
  /** `--account`. */
  account?: string;
  /**
   * How a task calls osp (a shell word or two): default `npx osp`, which needs the task to start in the
   * osp-lab checkout; the Slurm executor passes node and bin/osp.mjs by absolute path instead.
   */
  command?: string;
}

/**
 * Writes `<sweepDir>/trials/<name>.json` for every trial (atomically): the full config with `out` set
 * to the absolute sweep directory and `name` to the trial, so `osp train --config` on it writes the
 * run into `<sweepDir>/<name>` from any working directory.
 * @returns the files written, in trial order
 * @example writeTrialConfigs('runs/lr', trials) // ['/abs/runs/lr/trials/optimizer.muon.lr=0.01.json', ...]
 */
export function writeTrialConfigs(sweepDir: string, trials: readonly Trial[]): string[] {
  const dir = resolve(sweepDir);
  const trialsDir = join(dir, 'trials');
  try {
    mkdirSync(trialsDir, { recursive: true });
  } catch (e) {
    throw new OspError(`cannot create ${trialsDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return trials.map((t) => {
    const file = trialConfigPath(dir, t.name);
    writeFileAtomicSync(file, `${JSON.stringify({ ...t.config, name: t.name, out: dir }, null, 2)}\n`);
    return file;
  });
}

/**
 * The text of `sweep.slurm`: a job array with one task per trial. Each task trains its trial from
 * `trials/<name>.json`, or resumes `<sweepDir>/<name>` when that run already has checkpoints. Submit
 * it with `sbatch` from the osp-lab checkout (the tasks start there and `npx` finds `osp` there).
 * @example writeFileAtomicSync(join(dir, 'sweep.slurm'), emitSlurm(dir, trials, { time: '04:00:00' }));
 */
export function emitSlurm(sweepDir: string, trials: readonly Trial[], opts: SlurmOptions = {}): string {
  if (trials.length === 0) throw new OspError('emitSlurm: a job array needs at least one trial');
  const dir = resolve(sweepDir);
  const cpus = opts.cpus ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1) throw new OspError(`emitSlurm: cpus must be a positive integer, got ${cpus}`);
  if (opts.gpus !== undefined && !(Number.isInteger(opts.gpus) && opts.gpus >= 0)) {
    throw new OspError(`emitSlurm: gpus must be an integer >= 0, got ${opts.gpus}`);
  }
  const osp = opts.command ?? 'npx osp';
  // A backslash anywhere in --output makes Slurm ignore the %A/%a patterns (every task would then
  // write one file), and no quoting brings a newline through an #SBATCH line.
  if (/[\\\n\r]/.test(dir)) {
    throw new OspError(
      `emitSlurm: the sweep directory ${JSON.stringify(dir)} contains a backslash or line break, which Slurm's --output cannot express; use another directory`,
    );
  }
  const sbatch = (option: string, value: string | number): string => `#SBATCH --${option}=${sbatchQuote(String(value), option)}`;
  const lines = [
    '#!/bin/bash',
    sbatch('job-name', opts.jobName ?? basename(dir)),
    sbatch('array', `0-${trials.length - 1}`),
    // '%' starts Slurm's filename patterns (%A job id, %a task id), so a literal one is doubled.
    sbatch('output', `${dir.replaceAll('%', '%%')}/slurm-%A_%a.out`),
    // A requeued task appends to its log instead of truncating it: both attempts stay readable.
    sbatch('open-mode', 'append'),
    sbatch('cpus-per-task', cpus),
    ...(opts.partition !== undefined ? [sbatch('partition', opts.partition)] : []),
    ...(opts.time !== undefined ? [sbatch('time', opts.time)] : []),
    ...(opts.mem !== undefined ? [sbatch('mem', opts.mem)] : []),
    ...(opts.gpus !== undefined ? [sbatch('gpus-per-task', opts.gpus)] : []),
    ...(opts.account !== undefined ? [sbatch('account', opts.account)] : []),
    '#',
    `# osp sweep: ${trials.length} trials, one array task each. Submit from the osp-lab checkout: sbatch ${shellQuote(join(dir, 'sweep.slurm'))}`,
    '# A task whose trial already has checkpoints resumes it, so requeued (preempted) tasks continue.',
    'set -euo pipefail',
    '',
    `SWEEP_DIR=${shellQuote(dir)}`,
    'NAMES=(',
    ...trials.map((t) => `  ${shellQuote(t.name)}`),
    ')',
    '',
    ': "${SLURM_ARRAY_TASK_ID:?not set: submit this script with sbatch (it is a job array)}"',
    'if [ -z "${NAMES[$SLURM_ARRAY_TASK_ID]+set}" ]; then',
    `  echo "sweep.slurm: no trial for array task $SLURM_ARRAY_TASK_ID (the sweep has ${trials.length})" >&2`,
    '  exit 2',
    'fi',
    'NAME="${NAMES[$SLURM_ARRAY_TASK_ID]}"',
    'RUN_DIR="$SWEEP_DIR/$NAME"',
    'if [ -d "$RUN_DIR/checkpoints" ]; then',
    `  exec ${osp} train --resume "$RUN_DIR"`,
    'fi',
    '# No checkpoint yet: a task that stopped before its first save left nothing to resume, and',
    "# 'osp train --config' refuses a directory that holds a run, so start that trial over.",
    'rm -rf -- "$RUN_DIR"',
    `exec ${osp} train --config "$SWEEP_DIR/trials/$NAME.json"`,
    '',
  ];
  return lines.join('\n');
}

/**
 * One standalone bash command per trial, for any scheduler or a plain `parallel`/`xargs`: it resumes
 * the trial when it has checkpoints, else (after clearing a leftover directory without checkpoints)
 * trains it from its config file. `if/then/else` rather than `a && b || c`, so a failed resume does
 * not fall through into a fresh start.
 * @example emitList('/runs/lr', trials)[0]
 *   // "if [ -d '/runs/lr/osp/checkpoints' ]; then npx osp train --resume '/runs/lr/osp'; else ..."
 */
export function emitList(sweepDir: string, trials: readonly Trial[]): string[] {
  const dir = resolve(sweepDir);
  return trials.map((t) => {
    const run = shellQuote(join(dir, t.name));
    const ckpt = shellQuote(join(dir, t.name, 'checkpoints'));
    const config = shellQuote(trialConfigPath(dir, t.name));
    return `if [ -d ${ckpt} ]; then npx osp train --resume ${run}; else rm -rf -- ${run} && npx osp train --config ${config}; fi`;
  });
}

function trialConfigPath(sweepDir: string, name: string): string {
  return join(sweepDir, 'trials', `${name}.json`);
}

/**
 * Quotes a string as one bash word: single quotes keep everything literal except the single quote
 * itself, which is closed, escaped and reopened (`'it'\''s'`).
 */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9._/=:@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Quotes an #SBATCH value the way sbatch's own line parser reads it: double quotes keep spaces, a
 * backslash escapes the next character, and an unquoted (in older Slurm, any unescaped) '#' starts
 * a comment. Bash never reads these lines, they are comments to it.
 */
function sbatchQuote(s: string, option: string): string {
  if (/[\n\r]/.test(s)) throw new OspError(`emitSlurm: --${option} value ${JSON.stringify(s)} contains a line break`);
  return /^[A-Za-z0-9._/=:@%+-]+$/.test(s) ? s : `"${s.replace(/[\\"'#]/g, (c) => `\\${c}`)}"`;
}
