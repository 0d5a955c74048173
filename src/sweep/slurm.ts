/**
 * `osp sweep SPEC --executor slurm`: submit the sweep as a Slurm job array (sweep.slurm, emit.ts), record
 * the job in `<sweepDir>/slurm.json`, wait with a table of trial states, and write the report when the
 * array has ended. Like submitit for PyTorch users, but the state lives in files on the shared file system:
 *
 *   finished  the trial's run directory has summary.json (the run reached its last step)
 *   running   its array task is RUNNING (or COMPLETING) in squeue
 *   pending   its array task is PENDING, REQUEUED, CONFIGURING, ... in squeue
 *   failed    submitted, no longer in squeue, and no summary.json (the task died, was cancelled, or
 *             the run failed; its log `slurm-<job>_<task>.out` says why)
 *
 * No accounting database is needed (squeue and the trial directories are enough). A requeued task
 * (preemption, `scontrol requeue`) resumes its trial from the last checkpoint: sweep.slurm does that.
 * `--retry-failed` submits only the failed trials again, as a new array over their task indices.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { emitSlurm, shellQuote, type SlurmOptions } from './emit.ts';
import { acquireLock } from '../io/lock.ts';
import { writeReport } from './report.ts';
import { prepareSweep, writeSweepFiles, type SweepOptions } from './run.ts';

export type TrialState = 'pending' | 'running' | 'finished' | 'failed' | 'not submitted';

/** What `<sweepDir>/slurm.json` records. */
export interface SlurmRecord {
  /** Trial names in array-task order (task i trains trials[i]). */
  trials: string[];
  /** Every submission, oldest first: its job id and the task indices it covers. */
  jobs: { jobId: string; tasks: number[]; submitted: string }[];
}

export interface SlurmSweepOptions extends SweepOptions {
  slurm?: SlurmOptions;
  /** Return after submitting (`osp sweep status DIR` and `osp sweep report DIR` work later). */
  detach?: boolean;
  /** Submit only the trials that failed (or were never submitted) in an earlier submission. */
  retryFailed?: boolean;
  /** Seconds between polls while waiting (default 10). */
  pollSeconds?: number;
}

export interface SlurmSweepResult {
  sweepDir: string;
  jobId: string;
  states: Map<string, TrialState>;
  report: string[];
}

const RECORD = 'slurm.json';
const OSP_BIN = fileURLToPath(new URL('../../bin/osp.mjs', import.meta.url));

/** Runs a Slurm client command; a missing command or a refusal is an OspError with its message. */
function slurmCommand(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new OspError(
      missing
        ? `${cmd} not found: --executor slurm needs the Slurm client commands (sbatch, squeue) on this machine; ` +
            'scripts/slurm-up.sh starts a single-node cluster for trying it'
        : `${cmd} failed: ${r.error.message}`,
    );
  }
  if (r.status !== 0) throw new OspError(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

export function readSlurmRecord(sweepDir: string): SlurmRecord {
  const path = join(sweepDir, RECORD);
  if (!existsSync(path)) {
    throw new OspError(`${path} not found: ${sweepDir} was not submitted with osp sweep --executor slurm`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as SlurmRecord;
}

/** Array tasks still known to squeue, by trial index: their Slurm state (PENDING, RUNNING, ...). */
function queuedTasks(record: SlurmRecord): Map<number, string> {
  const out = new Map<number, string>();
  if (record.jobs.length === 0) return out;
  const ids = record.jobs.map((j) => j.jobId);
  // -r: one line per array task (pending tasks too), `<job>_<task>|<state>`.
  const text = slurmCommand('squeue', ['-h', '-r', '-j', ids.join(','), '-o', '%i|%T']);
  for (const line of text.split('\n')) {
    const m = /^(\d+)_(\d+)\|(\S+)$/.exec(line.trim());
    if (m && ids.includes(m[1]!)) out.set(Number(m[2]), m[3]!);
  }
  return out;
}

/** Every trial's state (see the module comment), in array-task order. */
export function trialStates(sweepDir: string, record: SlurmRecord = readSlurmRecord(sweepDir)): Map<string, TrialState> {
  const queued = queuedTasks(record);
  const submitted = new Set(record.jobs.flatMap((j) => j.tasks));
  const states = new Map<string, TrialState>();
  record.trials.forEach((name, i) => {
    const q = queued.get(i);
    if (existsSync(join(sweepDir, name, 'summary.json'))) states.set(name, 'finished');
    else if (q === 'RUNNING' || q === 'COMPLETING') states.set(name, 'running');
    else if (q !== undefined) states.set(name, 'pending');
    else states.set(name, submitted.has(i) ? 'failed' : 'not submitted');
  });
  return states;
}

/** `2 pending, 1 running, 1 finished, 0 failed` */
export function stateCounts(states: ReadonlyMap<string, TrialState>): string {
  const count = (s: TrialState) => [...states.values()].filter((v) => v === s).length;
  const parts = (['pending', 'running', 'finished', 'failed'] as const).map((s) => `${count(s)} ${s}`);
  const never = count('not submitted');
  return parts.join(', ') + (never > 0 ? `, ${never} not submitted` : '');
}

/** The last lines of a failed trial's newest Slurm log, for the failure report. */
export function failedLogTail(sweepDir: string, record: SlurmRecord, name: string, lines = 8): string {
  const task = record.trials.indexOf(name);
  for (const job of [...record.jobs].reverse()) {
    if (!job.tasks.includes(task)) continue;
    const log = join(sweepDir, `slurm-${job.jobId}_${task}.out`);
    if (!existsSync(log)) return `(no log: ${log} does not exist)`;
    const text = readFileSync(log, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  }
  return '(never submitted)';
}

/**
 * `osp sweep status DIR`: one line per trial (state, last logged step) and the counts.
 * @example for (const line of sweepStatus('runs/lr')) console.log(line);
 */
export function sweepStatus(sweepDir: string): string[] {
  const dir = resolve(sweepDir);
  const record = readSlurmRecord(dir);
  const states = trialStates(dir, record);
  const width = Math.max(5, ...record.trials.map((t) => t.length));
  const lines = [
    `slurm job ${record.jobs.map((j) => j.jobId).join(', ')}: ${stateCounts(states)}`,
    `  ${'trial'.padEnd(width)}  state      step`,
  ];
  for (const [name, state] of states) lines.push(`  ${name.padEnd(width)}  ${state.padEnd(9)}  ${lastStep(join(dir, name)) ?? '-'}`);
  return lines;
}

/** The last step in a run's metrics.jsonl, or undefined. */
function lastStep(runDir: string): number | undefined {
  const path = join(runDir, 'metrics.jsonl');
  if (!existsSync(path)) return undefined;
  const rows = readFileSync(path, 'utf8').trimEnd().split('\n');
  for (let i = rows.length - 1; i >= 0; i--) {
    try {
      const step = (JSON.parse(rows[i]!) as { step?: number }).step;
      if (typeof step === 'number') return step;
    } catch {
      // a partial last line of a running trial
    }
  }
  return undefined;
}

/**
 * Submits the sweep (or its failed trials) as a job array and, unless `detach`, waits for it and writes
 * the report. Throws an OspError naming the failed trials (with their logs' last lines) when some failed.
 */
export async function runSweepSlurm(o: SlurmSweepOptions): Promise<SlurmSweepResult> {
  const log = o.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const prepared = prepareSweep(o);
  const { sweepDir, trials, metrics, name } = prepared;
  mkdirSync(sweepDir, { recursive: true });
  const names = trials.map((t) => t.name);
  const recordPath = join(sweepDir, RECORD);
  const previous = existsSync(recordPath) ? readSlurmRecord(sweepDir) : undefined;
  if (previous && previous.trials.join('\n') !== names.join('\n')) {
    throw new OspError(`${recordPath} records other trials than this spec expands to; use another --out, or remove the directory`);
  }

  // Submitting is the only step that writes the sweep's files; the lock keeps two submissions apart.
  const lock = acquireLock(sweepDir, `osp sweep ${name} --executor slurm`, (msg) => log(`warning: ${msg}`));
  let jobId: string;
  try {
    let tasks: number[];
    if (o.retryFailed) {
      if (!previous) throw new OspError(`--retry-failed: ${recordPath} not found; submit the sweep first`);
      const states = trialStates(sweepDir, previous);
      tasks = names.flatMap((n, i) => (states.get(n) === 'failed' || states.get(n) === 'not submitted' ? [i] : []));
      if (tasks.length === 0) throw new OspError(`--retry-failed: no failed trial in ${sweepDir} (${stateCounts(states)})`);
    } else {
      if (previous) {
        const states = trialStates(sweepDir, previous);
        const active = [...states.values()].filter((s) => s === 'pending' || s === 'running').length;
        if (active > 0) {
          throw new OspError(
            `${sweepDir} already has ${active} trial(s) queued or running (job ${previous.jobs.map((j) => j.jobId).join(', ')}); ` +
              'wait for them (osp sweep status DIR), or use --retry-failed for the failed ones',
          );
        }
      }
      // Finished trials are not submitted again.
      tasks = names.flatMap((n, i) => (existsSync(join(sweepDir, n, 'summary.json')) ? [] : [i]));
    }
    writeSweepFiles(sweepDir, o.spec, trials, prepared.trend);
    const command = `${shellQuote(process.execPath)} ${shellQuote(OSP_BIN)}`;
    const script = join(sweepDir, 'sweep.slurm');
    writeFileAtomicSync(script, emitSlurm(sweepDir, trials, { ...o.slurm, command }));
    if (tasks.length === 0) {
      log(`sweep ${name}: all ${names.length} trials finished already`);
      jobId = previous?.jobs.at(-1)?.jobId ?? '';
    } else {
      jobId = slurmCommand('sbatch', ['--parsable', `--array=${compactRanges(tasks)}`, script])
        .trim()
        .split(';')[0]!;
      if (!/^\d+$/.test(jobId)) throw new OspError(`sbatch answered '${jobId}', not a job id`);
      const record: SlurmRecord = {
        trials: names,
        jobs: [...(previous?.jobs ?? []), { jobId, tasks, submitted: new Date().toISOString() }],
      };
      writeFileAtomicSync(recordPath, JSON.stringify(record, null, 2) + '\n');
      log(`sweep ${name}: submitted ${tasks.length} of ${names.length} trials as Slurm job array ${jobId} (${sweepDir})`);
    }
  } finally {
    lock.release();
  }

  const record = readSlurmRecord(sweepDir);
  if (o.detach) {
    log(`detached: follow it with 'osp sweep status ${sweepDir}', then 'osp sweep report ${sweepDir}'`);
    return { sweepDir, jobId, states: trialStates(sweepDir, record), report: [] };
  }
  const poll = (o.pollSeconds ?? 10) * 1000;
  let states = trialStates(sweepDir, record);
  let last = '';
  for (;;) {
    const line = stateCounts(states);
    if (line !== last) log(`slurm job ${jobId}: ${line}`);
    last = line;
    if (![...states.values()].some((s) => s === 'pending' || s === 'running')) break;
    await new Promise((r) => setTimeout(r, poll));
    // A controller restart or a slow answer must not end the wait: give up after 5 failed polls in a row.
    for (let attempt = 1; ; attempt++) {
      try {
        states = trialStates(sweepDir, record);
        break;
      } catch (e) {
        if (attempt >= 5) throw e;
        log(`warning: ${(e as Error).message}; trying again`);
        await new Promise((r) => setTimeout(r, poll));
      }
    }
  }
  const report = writeReport(sweepDir, { title: name, metrics, print: log }).files;
  log(`report: ${join(sweepDir, 'report.md')}`);
  const failed = [...states].filter(([, s]) => s === 'failed').map(([n]) => n);
  if (failed.length > 0) {
    for (const n of failed) log(`[${n}] FAILED; the end of its log:\n${failedLogTail(sweepDir, record, n)}`);
    throw new OspError(
      `${failed.length} trial(s) failed: ${failed.join(', ')}; resubmit them with osp sweep SPEC --executor slurm --retry-failed`,
    );
  }
  return { sweepDir, jobId, states, report };
}

/** `0-3,5,7-8` for [0, 1, 2, 3, 5, 7, 8] (sbatch --array syntax). */
export function compactRanges(values: readonly number[]): string {
  const v = [...new Set(values)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < v.length;) {
    let j = i;
    while (j + 1 < v.length && v[j + 1] === v[j]! + 1) j++;
    parts.push(i === j ? `${v[i]}` : `${v[i]}-${v[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
