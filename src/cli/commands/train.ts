/** `osp train`: train a model, or resume a run. */
import { BACKEND_NAMES } from '../../backend/index.ts';
import { readConfigFile } from '../../train/config.ts';
import { OspError } from '../../errors.ts';
import { train as trainRun, type RunSummary } from '../../train/run.ts';
import { formatSignal, signalOfSummary } from '../../train/signal_line.ts';
import type { Command } from '../command.ts';

/**
 * Ctrl-C (SIGINT) and SIGTERM become a stop request: training finishes its step, saves a checkpoint
 * and returns. A second signal exits at once (status 130; the run's lock is released on exit).
 */
function stopOnSignals(): { signal: AbortSignal; reason: string; dispose(): void } {
  const controller = new AbortController();
  const state = { signal: controller.signal, reason: '', dispose };
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${name} again: exiting now, without a checkpoint of this step\n`);
      process.exit(130);
    }
    state.reason = name;
    process.stderr.write(`\n${name}: finishing this step and saving a checkpoint (press Ctrl-C again to exit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  function dispose() {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return state;
}

/** The final line of `osp train`: steps, time, training throughput, validation loss and the monitors' signal. */
function printDone(s: RunSummary): void {
  const ev = s.eval;
  const time =
    `${s.steps} steps in ${s.wallSeconds.toFixed(1)} s ` +
    `(training ${(s.trainSeconds ?? s.wallSeconds).toFixed(1)} s at ${Math.round(s.tokensPerSecond)} tok/s)`;
  const loss = ev
    ? `val loss ${ev.loss.toFixed(4)} (bpb ${ev.bitsPerByte.toFixed(3)}) vs unigram ${s.unigramBaseline.loss.toFixed(4)}`
    : `train loss ${s.finalTrainLoss.toFixed(4)}`;
  console.log(`done: ${time}; ${loss}`);
  const signal = formatSignal(signalOfSummary(s.monitors));
  if (signal) console.log(`monitors (last): ${signal}`);
  console.log(`run directory: ${s.runDir}   (tensorboard --logdir ${s.runDir}/..)`);
}

export const train: Command = {
  summary: 'train a model (or resume a run)',
  usage:
    'osp train [--config FILE] [--set key=value ...] [--resume RUN_DIR [--extend-schedule]] [--init-from HF_DIR] ' +
    '[--backend NAME] [--out DIR]',
  options: {
    config: { type: 'string', short: 'c' },
    set: { type: 'string', multiple: true },
    resume: { type: 'string' },
    'extend-schedule': { type: 'boolean' },
    'init-from': { type: 'string' },
    backend: { type: 'string' },
    out: { type: 'string' },
  },
  help: {
    '--config FILE': 'JSON run config (every field: docs/config.md); defaults fill what it omits',
    '--set key=value': 'override one field, e.g. --set optimizer.muon.lr=3e-4 (repeatable; JSON values)',
    '--resume RUN_DIR': 'continue RUN_DIR from its newest good checkpoint, on the exact same trajectory',
    '--extend-schedule': 'with --resume and more steps: accept that a decaying lr schedule is stretched (the lr jumps)',
    '--init-from HF_DIR':
      'start from the weights of a Hugging Face Llama directory (config.json + model.safetensors, or sharded with ' +
      'model.safetensors.index.json; f32/f16/bf16); the model config must match it: every size that differs is listed ' +
      'with the --set that fixes it',
    '--backend NAME': `shorthand for --set backend=NAME (${BACKEND_NAMES.join(', ')})`,
    '--out DIR': 'shorthand for --set out=DIR: parent directory of run directories (default runs)',
  },
  async run(v) {
    const overrides = [...((v.set as string[] | undefined) ?? [])];
    if (v.backend) overrides.push(`backend=${JSON.stringify(v.backend)}`);
    if (v.out) overrides.push(`out=${JSON.stringify(v.out)}`);
    if (v['extend-schedule'] && !v.resume) throw new OspError('--extend-schedule applies to --resume only');
    const config = v.config ? readConfigFile(v.config as string) : {};
    const stop = stopOnSignals();
    try {
      const s = await trainRun({
        config,
        overrides,
        resume: v.resume as string | undefined,
        extendSchedule: Boolean(v['extend-schedule']),
        initFrom: v['init-from'] as string | undefined,
        stop: stop.signal,
      });
      printDone(s);
      if (s.stopped) {
        console.log(`stopped by ${stop.reason} at step ${s.steps}; checkpoint saved: ${s.lastCheckpoint}`);
        console.log(`continue with: osp train --resume ${s.runDir}`);
        return 130;
      }
    } finally {
      stop.dispose();
    }
  },
};
