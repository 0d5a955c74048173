/**
 * The run directory's life cycle around training: `planRun` validates everything that needs neither
 * data nor a backend (config, overrides, resume checkpoint, --init-from weights) and writes nothing;
 * `commitRun` creates the directory, takes its lock and writes config.json, called only once data,
 * backend, model and checkpoint have all loaded, so a refused or failed start writes nothing.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { acquireLock, type DirLock } from '../io/lock.ts';
import { checkInitFrom, readHfCheckpoint } from '../model/hf.ts';
import { checkQuantSetting } from '../quant/eval.ts';
import { describeTokenizer, loadTokenizer, type Tokenizer } from '../data/tokenizer.ts';
import { findLatestCheckpoint, removeCheckpointLeftovers, type CheckpointState } from './checkpoint.ts';
import { applyOverrides, resolveRunConfig, type RunConfig } from './config.ts';
import { checkResume } from './resume_check.ts';
import type { RunSummary } from './summary.ts';

/** What planRun needs of train()'s options. */
export interface PlanOptions {
  config?: unknown;
  overrides?: string[];
  resume?: string;
  initFrom?: string;
  extendSchedule?: boolean;
}

/**
 * A validated run, before anything is written: the config, where it goes, and what it starts from.
 * A resume already holds the run directory's lock (it reads the checkpoints); a fresh run takes it
 * when it creates the directory, after data and backend have been checked.
 */
export interface PlannedRun {
  config: RunConfig;
  runDir: string;
  /** The raw config written to config.json (`input`), and config.json's other fields on resume. */
  input: Record<string, unknown>;
  saved?: Record<string, unknown>;
  lock?: DirLock;
  resumeFrom?: { dir: string; state: CheckpointState; checkpoint: NonNullable<ReturnType<typeof findLatestCheckpoint>['found']> };
  /** Lines to print once the run is resumed (an accepted schedule change). */
  notices: string[];
  /** A plain resume of a finished run: its summary, and nothing to do. */
  complete?: RunSummary;
  initWeights?: ReturnType<typeof readHfCheckpoint>;
}

/**
 * Refuses a run directory that already holds a run. A directory left without any complete checkpoint
 * (a run that stopped before its first one) is named as such: there is nothing to resume in it.
 */
function checkRunDirFree(runDir: string): void {
  if (!existsSync(join(runDir, 'config.json')) && !existsSync(join(runDir, 'checkpoints'))) return;
  if (!findLatestCheckpoint(runDir).found) {
    throw new ConfigError(
      'name',
      `run directory ${runDir} holds a run that stopped before its first checkpoint, so there is nothing to resume; ` +
        `remove it (rm -r ${runDir}) to train under this name again, or choose another name (--set name=...)`,
    );
  }
  throw new ConfigError(
    'name',
    `run directory ${runDir} already holds a run; continue it with 'osp train --resume ${runDir}' ` +
      `or choose another name (--set name=...)`,
  );
}

/** Creates the run directory (checked free again: another run may have taken the name meanwhile). */
function createRunDir(runDir: string): void {
  checkRunDirFree(runDir);
  try {
    mkdirSync(runDir, { recursive: true });
    accessSync(runDir, constants.W_OK);
  } catch (e) {
    throw new OspError(`cannot create or write the run directory ${runDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A `quant` section the model cannot be measured with fails before training, not at its first measurement. */
function checkQuantSection(config: RunConfig): void {
  const { every, batches: _batches, ...quant } = config.quant;
  if (every > 0) checkQuantSetting(config.model, quant);
}

/**
 * A checkpoint that brings its tokenizer (a tokenizer.json next to its weights) was trained on that
 * tokenizer's ids: a run that starts from it must tokenize the same way.
 */
function checkInitTokenizer(config: RunConfig, dir: string): void {
  if (!existsSync(join(dir, 'tokenizer.json'))) return;
  const theirs = loadTokenizer(dir);
  const ours = loadTokenizer(config.tokenizer);
  if (theirs.fingerprint !== ours.fingerprint) {
    throw new ConfigError(
      '--init-from',
      `${dir} was trained with tokenizer ${describeTokenizer(theirs)}; the run's is ${describeTokenizer(ours)} ` +
        `(set it with --set tokenizer=${join(dir, 'tokenizer.json')})`,
    );
  }
}

/**
 * Validates everything that can be validated without data or a backend. On resume it takes the run
 * directory's lock (so a second `osp train` on it is refused) and checks the overrides against the
 * checkpoint; nothing is written until the run is committed.
 */
export function planRun(opts: PlanOptions, log: (line: string) => void): PlannedRun {
  if (opts.resume && opts.initFrom)
    throw new ConfigError('--init-from', 'cannot be combined with --resume (a resumed run continues from its own checkpoint)');
  if (!opts.resume) {
    const input = applyOverrides(opts.config ?? {}, opts.overrides ?? []);
    const config = resolveRunConfig(input);
    checkQuantSection(config);
    let initWeights: PlannedRun['initWeights'];
    if (opts.initFrom) {
      initWeights = readHfCheckpoint(opts.initFrom);
      checkInitTokenizer(config, opts.initFrom); // first: a different tokenizer explains differing sizes
      checkInitFrom(config.model, initWeights.config, opts.initFrom);
    }
    const runDir = resolve(config.out, config.name);
    checkRunDirFree(runDir);
    return { config, runDir, input, notices: [], initWeights };
  }
  const runDir = resolve(opts.resume);
  const configPath = join(runDir, 'config.json');
  if (!existsSync(configPath)) throw new ConfigError('--resume', `${runDir} is not a run directory (no config.json)`);
  const lock = acquireLock(runDir, `osp train --resume ${runDir}`, (msg) => log(`warning: ${msg}`));
  try {
    // Holding the lock, any half-written checkpoint directory is a killed writer's leftover.
    removeCheckpointLeftovers(runDir, log);
    const saved = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown> & { input: unknown };
    const input = withRunTokenizer(applyOverrides(saved.input, opts.overrides ?? []), runDir, opts.overrides ?? []);
    const config = resolveRunConfig(input);
    checkQuantSection(config);
    const { found, skipped } = findLatestCheckpoint(runDir);
    for (const s of skipped) log(`warning: skipping checkpoint ${s.dir}: ${s.reason}`);
    if (!found) {
      throw new OspError(
        `--resume ${runDir}: no complete checkpoint to resume from (the run stopped before its first one); ` +
          `remove it (rm -r ${runDir}) and train again`,
      );
    }
    if (skipped.length > 0) log(`resuming from the previous good checkpoint ${found.dir}`);
    const state = found.checkpoint.state;
    const summaryPath = join(runDir, 'summary.json');
    if (state.step >= config.steps && !opts.overrides?.length && existsSync(summaryPath)) {
      // A finished run resumed as it is (a requeued scheduler task): nothing to train, nothing written.
      const complete = JSON.parse(readFileSync(summaryPath, 'utf8')) as RunSummary;
      return { config, runDir, input, saved, lock, notices: [], complete };
    }
    checkResumeTokenizer(saved, config, runDir);
    const notices = checkResume(state.config as RunConfig, config, state.step, opts.extendSchedule ?? false, !opts.overrides?.length);
    return { config, runDir, input, saved, lock, resumeFrom: { dir: found.dir, state, checkpoint: found }, notices };
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** What config.json records of the run's tokenizer: a resume must tokenize the same way. */
interface TokenizerRecord {
  spec: string;
  fingerprint: number;
  vocabSize: number;
}

/**
 * A resume must tokenize as the run did: the tokenizer its config names now must have the fingerprint
 * config.json recorded. Runs saved before tokenizers were recorded carry no record: whatever tokenizer
 * the resume names is taken (their data's ids are still checked against it).
 */
function checkResumeTokenizer(saved: Record<string, unknown>, config: RunConfig, runDir: string): void {
  const before = saved.tokenizer as TokenizerRecord | undefined;
  if (!before) return;
  const now = loadTokenizer(config.tokenizer);
  if (now.fingerprint !== before.fingerprint) {
    throw new ConfigError(
      'tokenizer',
      `${runDir} was trained with tokenizer ${describeTokenizer(before)}; the config now gives ${describeTokenizer(now)}. ` +
        `A resumed run must tokenize its data the same way`,
    );
  }
}

/**
 * The resume's input with `tokenizer` pointing at the run's own copy of its tokenizer.json (<run>/tokenizer/),
 * unless the overrides name one: the original path may be relative to another directory, moved or edited.
 */
function withRunTokenizer(input: Record<string, unknown>, runDir: string, overrides: readonly string[]): Record<string, unknown> {
  const copy = join(runDir, 'tokenizer');
  if (!existsSync(join(copy, 'tokenizer.json')) || overrides.some((o) => o.startsWith('tokenizer='))) return input;
  return { ...input, tokenizer: copy };
}

/**
 * Writes the run's config: a fresh run creates its directory and takes its lock first, and keeps a copy
 * of a tokenizer.json it was given (tokenizer/, the files an export carries); a resume records its
 * overrides (e.g. more steps) for readers and later resumes.
 */
export function commitRun(plan: PlannedRun, opts: PlanOptions, tokenizer: Tokenizer, log: (line: string) => void): void {
  const configPath = join(plan.runDir, 'config.json');
  if (!plan.resumeFrom) {
    createRunDir(plan.runDir);
    plan.lock = acquireLock(plan.runDir, `osp train ${plan.config.name}`, (msg) => log(`warning: ${msg}`));
    const initFrom = opts.initFrom ? resolve(opts.initFrom) : undefined;
    if (tokenizer.kind === 'tokenizer.json') {
      mkdirSync(join(plan.runDir, 'tokenizer'), { recursive: true });
      for (const [name, text] of tokenizer.hfFiles()) writeFileAtomicSync(join(plan.runDir, 'tokenizer', name), text);
    }
    const record: TokenizerRecord = { spec: tokenizer.spec, fingerprint: tokenizer.fingerprint, vocabSize: tokenizer.vocabSize };
    writeFileAtomicSync(
      configPath,
      JSON.stringify({ input: plan.input, resolved: plan.config, initFrom, tokenizer: record }, null, 2) + '\n',
    );
  } else if (opts.overrides?.length) {
    writeFileAtomicSync(configPath, JSON.stringify({ ...plan.saved, input: plan.input, resolved: plan.config }, null, 2) + '\n');
  }
}
