/** `osp sweep`: run a sweep of trials, emit it for a cluster, or report on one. */
import { OspError } from '../../errors.ts';
import { writeReport } from '../../sweep/report.ts';
import { emitSweep, runSweep } from '../../sweep/run.ts';
import type { Command } from '../command.ts';

export const sweep: Command = {
  summary: 'run a sweep of trials in parallel and write one report (or emit it for a cluster)',
  usage:
    'osp sweep SPEC [--out DIR] [--parallel N] [--emit slurm|list] [--executor slurm [--partition P] [--time T] ' +
    '[--cpus N] [--gpus N] [--mem M] [--account A] [--detach] [--retry-failed]]   |   osp sweep status DIR   |   ' +
    'osp sweep report DIR [--compare A,B]',
  options: {
    out: { type: 'string' },
    parallel: { type: 'string' },
    emit: { type: 'string' },
    compare: { type: 'string' },
    executor: { type: 'string' },
    partition: { type: 'string' },
    time: { type: 'string' },
    cpus: { type: 'string' },
    gpus: { type: 'string' },
    mem: { type: 'string' },
    account: { type: 'string' },
    detach: { type: 'boolean' },
    'retry-failed': { type: 'boolean' },
    poll: { type: 'string' },
  },
  help: {
    SPEC: 'sweep spec JSON: base config, grid and/or variants and/or seeds, metrics (see docs/sweeps.md)',
    '--out DIR': 'sweep directory (default runs/<spec name>); one sub-directory per trial',
    '--parallel N': "trials at once in worker threads (default: the spec's parallel, else the number of cores)",
    '--emit slurm': 'write trials/*.json and a job-array script sweep.slurm instead of training',
    '--emit list': 'print one standalone command per trial (any scheduler) instead of training',
    '--executor slurm': 'submit the trials as a Slurm job array (sbatch), wait with a table of trial states, then write the report',
    '--partition P': "with --executor slurm: the partition (default: the cluster's)",
    '--time T': 'with --executor slurm: wall-clock limit per task, e.g. 04:00:00',
    '--cpus N, --gpus N': 'with --executor slurm: per task (default 2 CPUs, no GPU)',
    '--mem M, --account A': 'with --executor slurm: memory per task (e.g. 16G), the account to charge',
    '--detach': 'with --executor slurm: return after submitting',
    '--retry-failed': 'with --executor slurm: submit only the trials that failed',
    '--poll S': 'with --executor slurm: seconds between status checks (default 10)',
    'status DIR': 'the state of every trial of a sweep submitted to Slurm (pending, running, finished, failed)',
    'report DIR':
      'aggregate the trial directories under DIR into report.md, report.json and SVG plots (with seeds: mean and 95% interval per configuration)',
    '--compare A,B':
      "with report: print B - A for every column of configurations A and B (names without seed=N) with Welch's 95% interval; writes nothing",
  },
  async run(v, pos) {
    if (pos[0] === 'report') {
      if (pos.length !== 2) throw new OspError('expected one DIR argument');
      if (v.compare !== undefined) {
        const { compareConfigurations, formatComparison, parseComparePair } = await import('../../sweep/compare.ts');
        const [a, b] = parseComparePair(v.compare as string);
        for (const line of formatComparison(compareConfigurations(pos[1]!, a, b))) console.log(line);
        return;
      }
      const { files } = writeReport(pos[1]!, { print: (line) => console.log(line) });
      for (const f of files) console.log(f);
      return;
    }
    if (pos[0] === 'status') {
      if (pos.length !== 2) throw new OspError('expected one DIR argument');
      const { sweepStatus } = await import('../../sweep/slurm.ts');
      for (const line of sweepStatus(pos[1]!)) console.log(line);
      return;
    }
    if (pos.length !== 1) throw new OspError('expected one SPEC argument (see osp sweep --help)');
    if (v.compare !== undefined) throw new OspError('--compare goes with osp sweep report DIR');
    const slurmOnly = ['partition', 'time', 'cpus', 'gpus', 'mem', 'account', 'detach', 'retry-failed', 'poll'].filter(
      (k) => v[k] !== undefined,
    );
    if (v.executor === undefined && slurmOnly.length > 0) throw new OspError(`--${slurmOnly[0]} goes with --executor slurm`);
    if (v.executor !== undefined && v.executor !== 'slurm')
      throw new OspError(`--executor must be slurm (local threads are the default), got '${v.executor}'`);
    if (v.executor !== undefined && v.emit !== undefined) throw new OspError('give either --emit or --executor, not both');
    let parallel: number | undefined;
    if (v.parallel !== undefined) {
      parallel = Number(v.parallel);
      if (!Number.isInteger(parallel) || parallel < 1) throw new OspError(`--parallel must be a positive integer, got '${v.parallel}'`);
    }
    const opts = { spec: pos[0]!, out: v.out as string | undefined, parallel };
    if (v.emit !== undefined) {
      if (v.emit !== 'slurm' && v.emit !== 'list') throw new OspError(`--emit must be slurm or list, got '${v.emit}'`);
      for (const line of emitSweep({ ...opts, emit: v.emit })) console.log(line);
      return;
    }
    if (v.executor === 'slurm') {
      const count = (name: string, min: number) => {
        if (v[name] === undefined) return undefined;
        const n = Number(v[name]);
        if (!Number.isInteger(n) || n < min) throw new OspError(`--${name} must be an integer >= ${min}, got '${v[name]}'`);
        return n;
      };
      const { runSweepSlurm } = await import('../../sweep/slurm.ts');
      await runSweepSlurm({
        ...opts,
        slurm: {
          partition: v.partition as string | undefined,
          time: v.time as string | undefined,
          cpus: count('cpus', 1),
          gpus: count('gpus', 0),
          mem: v.mem as string | undefined,
          account: v.account as string | undefined,
        },
        detach: Boolean(v.detach),
        retryFailed: Boolean(v['retry-failed']),
        pollSeconds: count('poll', 1),
        log: (line) => console.log(line),
      });
      return;
    }
    const r = await runSweep(opts);
    if (r.failed.length > 0) {
      throw new OspError(`${r.failed.length} trial(s) failed: ${r.failed.map((f) => `${f.name} (${f.error})`).join('; ')}`);
    }
  },
};
