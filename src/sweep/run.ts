/**
 * `osp sweep`: run every trial of a sweep spec in worker threads (N at a time), each an ordinary run
 * directory under the sweep directory, then write the report. Resumable: finished trials are skipped
 * and interrupted ones resume from their last checkpoint. A lock refuses a second sweep on the same
 * directory while one is running.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as Comlink from 'comlink';
import { ConfigError, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import type { RunSummary } from '../train/run.ts';
import { spawnWorker } from '../utils/worker.ts';
import { emitList, emitSlurm, writeTrialConfigs } from './emit.ts';
import { acquireLock } from '../io/lock.ts';
import { writeReport } from './report.ts';
import { expandTrials, loadSweepSpec, type Trial } from './spec.ts';
import { configurationOf } from './labels.ts';
import type { TrendSpec } from './trend.ts';
import type { TrialRequest } from './trial.ts';

type TrialApi = { runTrial(req: TrialRequest, log: (line: string) => void): Promise<RunSummary> };

export interface SweepOptions {
  spec: string;
  /** Sweep directory (default runs/<spec name>). */
  out?: string;
  /** Trials at once (default: the spec's `parallel`, else the number of cores). */
  parallel?: number;
  log?: (line: string) => void;
}

export interface SweepResult {
  sweepDir: string;
  finished: string[];
  skipped: string[];
  failed: { name: string; error: string }[];
  report: string[];
}

/** What to do with each trial given what its directory holds. */
export function trialPlan(sweepDir: string, trials: Trial[]): { trial: Trial; action: 'skip' | 'resume' | 'start' }[] {
  return trials.map((trial) => {
    const dir = join(sweepDir, trial.name);
    if (existsSync(join(dir, 'summary.json'))) return { trial, action: 'skip' };
    if (existsSync(join(dir, 'checkpoints'))) return { trial, action: 'resume' };
    return { trial, action: 'start' };
  });
}

/** The spec's trials and where they go; shared by the local runner, --emit and the Slurm executor. */
export function prepareSweep(o: SweepOptions): {
  sweepDir: string;
  trials: Trial[];
  parallel: number;
  metrics: string[];
  name: string;
  trend: TrendSpec | undefined;
} {
  const spec = loadSweepSpec(o.spec);
  const trials = expandTrials(spec, dirname(resolve(o.spec)));
  checkTrendPairs(
    spec.trend,
    trials.map((t) => t.name),
  );
  const sweepDir = resolve(o.out ?? join('runs', spec.name));
  const parallel = o.parallel ?? spec.parallel ?? availableParallelism();
  if (!Number.isInteger(parallel) || parallel < 1) throw new OspError(`--parallel must be a positive integer, got ${parallel}`);
  return { sweepDir, trials, parallel, metrics: spec.metrics, name: spec.name, trend: spec.trend };
}

/** Every configuration a `trend` pair names must be one of the sweep's (before anything trains). */
function checkTrendPairs(trend: TrendSpec | undefined, names: readonly string[]): void {
  if (trend === undefined) return;
  const known = [...new Set(names.map((n) => configurationOf(n).configuration))];
  trend.pairs.forEach((pair, i) =>
    pair.forEach((c, j) => {
      if (!known.includes(c))
        throw new ConfigError(
          `sweep.trend.pairs.${i}.${j}`,
          `'${c}' is not a configuration of this sweep; its configurations are ${known.join(', ')}`,
        );
    }),
  );
}

/**
 * What every way of running a sweep writes first: each trial's config (trials/) and sweep.json, the spec's
 * path, the trials in order and the trend pairs (read again by `osp sweep report`, also after a cluster ran).
 */
export function writeSweepFiles(sweepDir: string, spec: string, trials: readonly Trial[], trend: TrendSpec | undefined): void {
  writeTrialConfigs(sweepDir, trials);
  const record = { spec: resolve(spec), trials: trials.map((t) => t.name), ...(trend ? { trend } : {}) };
  writeFileAtomicSync(join(sweepDir, 'sweep.json'), JSON.stringify(record, null, 2) + '\n');
}

/** Runs the sweep to completion (or until every remaining trial has failed) and writes the report. */
export async function runSweep(o: SweepOptions): Promise<SweepResult> {
  const log = o.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const { sweepDir, trials, parallel, metrics, name, trend } = prepareSweep(o);
  mkdirSync(sweepDir, { recursive: true });
  const lock = acquireLock(sweepDir, `osp sweep ${name}`, (msg) => log(`warning: ${msg}`));
  const result: SweepResult = { sweepDir, finished: [], skipped: [], failed: [], report: [] };
  try {
    writeSweepFiles(sweepDir, o.spec, trials, trend);
    const plan = trialPlan(sweepDir, trials);
    const queue = plan.filter((p) => {
      if (p.action === 'skip') result.skipped.push(p.trial.name);
      return p.action !== 'skip';
    });
    log(
      `sweep ${name}: ${trials.length} trials (${result.skipped.length} finished already, ` +
        `${queue.filter((p) => p.action === 'resume').length} to resume), ${Math.min(parallel, queue.length)} at a time, in ${sweepDir}`,
    );
    const worker = async (): Promise<void> => {
      const handle = spawnWorker<TrialApi>(new URL('./trial_worker.mjs', import.meta.url));
      try {
        for (let p = queue.shift(); p; p = queue.shift()) {
          const { trial, action } = p;
          const dir = join(sweepDir, trial.name);
          // A directory without a checkpoint holds nothing a resume could use (a crash before the
          // first save): start that trial again from scratch.
          if (action === 'start' && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
          log(`[${trial.name}] ${action === 'resume' ? 'resuming' : 'starting'}`);
          const say = Comlink.proxy((line: string) => log(`[${trial.name}] ${line}`));
          const config = { ...trial.config, out: sweepDir, logging: { ...(trial.config.logging as object), console: 'quiet' } };
          try {
            const s = await handle.remote.runTrial(action === 'resume' ? { resume: dir } : { config }, say);
            result.finished.push(trial.name);
            const ev = s.eval ? `val loss ${s.eval.loss.toFixed(4)}` : '';
            log(`[${trial.name}] done in ${s.wallSeconds.toFixed(0)} s ${ev}`);
          } catch (e) {
            result.failed.push({ name: trial.name, error: (e as Error).message });
            log(`[${trial.name}] FAILED: ${(e as Error).message}`);
          }
        }
      } finally {
        await handle.close();
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, worker));
    result.report = writeReport(sweepDir, { title: name, metrics, print: log }).files;
    log(`report: ${join(sweepDir, 'report.md')}`);
  } finally {
    lock.release();
  }
  return result;
}

/** `--emit slurm|list`: trial configs for a cluster scheduler, nothing trained here. */
export function emitSweep(o: SweepOptions & { emit: 'slurm' | 'list' }): string[] {
  const { sweepDir, trials, trend } = prepareSweep(o);
  mkdirSync(sweepDir, { recursive: true });
  // sweep.json too, so that `osp sweep report DIR` after the cluster ran knows the trial order, the
  // trials still to come and the trend pairs.
  writeSweepFiles(sweepDir, o.spec, trials, trend);
  if (o.emit === 'list') return emitList(sweepDir, trials);
  const path = join(sweepDir, 'sweep.slurm');
  writeFileAtomicSync(path, emitSlurm(sweepDir, trials));
  return [path];
}
