/**
 * The `osp` command. Thin: parse arguments, validate, call the library, print. Errors that osp-lab
 * raises on purpose (OspError) print as one line and exit with status 2; anything else is a bug and
 * prints its stack.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { tensor as tfTensor } from '@tensorflow/tfjs';
import { startBackend, stopBackend, BACKEND_NAMES } from '../backend/index.ts';
import { readConfigFile } from '../config/run.ts';
import { prepareShards } from '../data/sources.ts';
import { checkChoice, OspError } from '../errors.ts';
import { evaluateTokens, readTextTokens, textWindows } from '../eval/text.ts';
import { quantEval, resolveQuantConfig } from '../export/quant/eval.ts';
import { calibrationFromRunData, calibrationFromTokens, runSplitTokens } from '../export/quant/calibration.ts';
import { GGUF_TYPES } from '../export/gguf.ts';
import { ggufPerplexity } from '../export/gguf_eval.ts';
import { checkpointWeights } from '../export/checkpoint.ts';
import { analyzeCheckpoint } from '../eval/analyze.ts';
import { rowBos } from '../data/batcher.ts';
import { EXPORT_FORMATS, exportCheckpoint } from '../export/index.ts';
import { emitSweep, runSweep } from '../sweep/run.ts';
import { writeReport } from '../sweep/report.ts';
import { resolveModelConfig } from '../model/config.ts';
import { Transformer } from '../model/transformer.ts';
import { Rng } from '../utils/rng.ts';
import { loadModelWeights, openCheckpoint } from '../train/checkpoint.ts';
import { train, type RunSummary } from '../train/run.ts';
import { formatSignal, signalOfSummary } from '../train/signal_line.ts';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  help: Record<string, string>;
  /** Runs the command; a number is the exit status (default 0). */
  run(values: Record<string, unknown>, positionals: string[]): Promise<void | number>;
}

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
    ? `val loss ${ev.loss.toFixed(4)} (bpb ${ev.bitsPerByte.toFixed(3)}) vs byte-unigram ${s.unigramBaseline.loss.toFixed(4)}`
    : `train loss ${s.finalTrainLoss.toFixed(4)}`;
  console.log(`done: ${time}; ${loss}`);
  const signal = formatSignal(signalOfSummary(s.monitors));
  if (signal) console.log(`monitors (last): ${signal}`);
  console.log(`run directory: ${s.runDir}   (tensorboard --logdir ${s.runDir}/..)`);
}

const COMMANDS: Record<string, Command> = {
  train: {
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
      '--config FILE': 'JSON run config (see README: config fields); defaults fill what it omits',
      '--set key=value': 'override one field, e.g. --set optimizer.muon.lr=3e-4 (repeatable; JSON values)',
      '--resume RUN_DIR': 'continue RUN_DIR from its newest good checkpoint, on the exact same trajectory',
      '--extend-schedule': 'with --resume and more steps: accept that a decaying lr schedule is stretched (the lr jumps)',
      '--init-from HF_DIR': 'start from the weights of a Hugging Face Llama directory (sizes must match the model config)',
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
        const s = await train({
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
  },
  eval: {
    summary: "mean next-token loss of a checkpoint on a text file's bytes",
    usage: 'osp eval CHECKPOINT --text FILE [--json] [--backend NAME]',
    options: { text: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' } },
    help: {
      CHECKPOINT: 'a checkpoint directory (runs/NAME/checkpoints/step_...) or a run directory (its newest checkpoint)',
      '--text FILE': 'UTF-8 text; every byte is predicted once (windows of maxSeqLen, BOS first)',
      '--json': 'print {"loss", "tokens", "bpb"} as JSON',
      '--backend NAME': `backend to run on (default: the run's; ${BACKEND_NAMES.join(', ')})`,
    },
    async run(v, pos) {
      if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp eval --help)');
      if (!v.text) throw new OspError('--text FILE is required');
      const tokens = readTextTokens(v.text as string);
      const { dir, checkpoint } = openCheckpoint(pos[0]!);
      const runConfig = checkpoint.state.config as { model: unknown; backend: string; batch?: { bos?: boolean } };
      await startBackend((v.backend as string | undefined) ?? runConfig.backend);
      const model = new Transformer(resolveModelConfig(runConfig.model), new Rng(0));
      try {
        loadModelWeights(model, checkpoint.model, `${dir}/model.safetensors`);
        const r = await evaluateTokens(model, tokens, rowBos(runConfig));
        if (v.json) console.log(JSON.stringify(r));
        else console.log(`${dir}: loss ${r.loss.toFixed(4)} nats/byte, bpb ${r.bpb.toFixed(4)} over ${r.tokens} bytes`);
      } finally {
        model.dispose();
        await stopBackend();
      }
    },
  },
  sweep: {
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
      SPEC: 'sweep spec JSON: base config, grid and/or variants and/or seeds, metrics (see README: Sweeps)',
      '--out DIR': 'sweep directory (default runs/<spec name>); one sub-directory per trial',
      '--parallel N': 'trials at once in worker threads (default: the spec\'s parallel, else the number of cores)',
      '--emit slurm': 'write trials/*.json and a job-array script sweep.slurm instead of training',
      '--emit list': 'print one standalone command per trial (any scheduler) instead of training',
      '--executor slurm': 'submit the trials as a Slurm job array (sbatch), wait with a table of trial states, then write the report',
      '--partition P': 'with --executor slurm: the partition (default: the cluster\'s)',
      '--time T': 'with --executor slurm: wall-clock limit per task, e.g. 04:00:00',
      '--cpus N, --gpus N': 'with --executor slurm: per task (default 2 CPUs, no GPU)',
      '--mem M, --account A': 'with --executor slurm: memory per task (e.g. 16G), the account to charge',
      '--detach': 'with --executor slurm: return after submitting',
      '--retry-failed': 'with --executor slurm: submit only the trials that failed',
      '--poll S': 'with --executor slurm: seconds between status checks (default 10)',
      'status DIR': 'the state of every trial of a sweep submitted to Slurm (pending, running, finished, failed)',
      'report DIR': 'aggregate the trial directories under DIR into report.md, report.json and SVG plots (with seeds: mean and 95% interval per configuration)',
      '--compare A,B': 'with report: print B - A for every column of configurations A and B (names without seed=N) with Welch\'s 95% interval; writes nothing',
    },
    async run(v, pos) {
      if (pos[0] === 'report') {
        if (pos.length !== 2) throw new OspError('expected one DIR argument');
        if (v.compare !== undefined) {
          const { compareConfigurations, formatComparison, parseComparePair } = await import('../sweep/compare.ts');
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
        const { sweepStatus } = await import('../sweep/slurm.ts');
        for (const line of sweepStatus(pos[1]!)) console.log(line);
        return;
      }
      if (pos.length !== 1) throw new OspError('expected one SPEC argument (see osp sweep --help)');
      if (v.compare !== undefined) throw new OspError('--compare goes with osp sweep report DIR');
      const slurmOnly = ['partition', 'time', 'cpus', 'gpus', 'mem', 'account', 'detach', 'retry-failed', 'poll'].filter((k) => v[k] !== undefined);
      if (v.executor === undefined && slurmOnly.length > 0) throw new OspError(`--${slurmOnly[0]} goes with --executor slurm`);
      if (v.executor !== undefined && v.executor !== 'slurm') throw new OspError(`--executor must be slurm (local threads are the default), got '${v.executor}'`);
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
        const { runSweepSlurm } = await import('../sweep/slurm.ts');
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
  },
  export: {
    summary: 'write a checkpoint as a Hugging Face Llama directory or a GGUF file for llama.cpp',
    usage: 'osp export CHECKPOINT --format hf|gguf --out PATH [--dtype f32|f16|bf16] [--type f32|f16|q8_0|q4_0] [--rotate [--rotate-seed S]]',
    options: {
      format: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string' },
      type: { type: 'string' },
      rotate: { type: 'boolean' },
      'rotate-seed': { type: 'string' },
    },
    help: {
      CHECKPOINT: 'a checkpoint directory or a run directory (its newest checkpoint)',
      '--format NAME': 'hf (config.json, model.safetensors, tokenizer files) or gguf (one file)',
      '--out PATH': 'hf: a new (or empty) directory; gguf: the file to write',
      '--dtype NAME': 'hf only: f32 (default), f16 or bf16',
      '--type NAME': 'gguf only: f32 (default), f16, q8_0 or q4_0 (q4_0 keeps embedding and output at q8_0)',
      '--rotate': "QuaRot's residual-stream rotation (norms folded, random Hadamard; same function, no online op)",
      '--rotate-seed S': 'seed of the rotation\'s random signs (default 0)',
    },
    async run(v, pos) {
      if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp export --help)');
      if (!v.out) throw new OspError('--out PATH is required');
      if (v.format === undefined) throw new OspError(`--format is required: ${EXPORT_FORMATS.join(' or ')} (see osp export --help)`);
      const files = await exportCheckpoint({
        checkpoint: pos[0]!,
        format: (v.format as string | undefined) ?? '',
        out: v.out as string,
        dtype: v.dtype as string | undefined,
        type: v.type as string | undefined,
        rotate: Boolean(v.rotate),
        ...(v['rotate-seed'] !== undefined ? { rotateSeed: Number(v['rotate-seed']) } : {}),
      });
      for (const f of files) console.log(f);
    },
  },
  'quant-eval': {
    summary: 'full-precision vs 4-bit (W4A4KV4) perplexity of a checkpoint: RTN, GPTQ, FFN Had, QuaRot, llama.cpp',
    usage: 'osp quant-eval CHECKPOINT (--text FILE | --val) [--all | --method LIST --rotate LIST --gguf LIST] [--w 4 --a 4 --kv 4] [--json]',
    options: {
      text: { type: 'string' },
      val: { type: 'boolean' },
      windows: { type: 'string' },
      method: { type: 'string' },
      rotate: { type: 'string' },
      all: { type: 'boolean' },
      gguf: { type: 'string' },
      w: { type: 'string' },
      a: { type: 'string' },
      kv: { type: 'string' },
      had: { type: 'boolean' },
      'no-qk-rotate': { type: 'boolean' },
      'minmax-range': { type: 'boolean' },
      'group-size': { type: 'string' },
      'no-clip': { type: 'boolean' },
      'act-order': { type: 'boolean' },
      calib: { type: 'string' },
      'calib-windows': { type: 'string' },
      'quarot-seed': { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean' },
    },
    help: {
      CHECKPOINT: 'a checkpoint directory or a run directory (its newest checkpoint)',
      '--text FILE': 'UTF-8 text, windows of maxSeqLen as in osp eval',
      '--val': "instead of --text: the validation split of the checkpoint's run (its data config)",
      '--windows N': 'evaluate only the first N windows',
      '--method LIST': 'weight quantizer(s), comma-separated: rtn (default), gptq',
      '--rotate LIST': 'rotation(s): none (default), ffn (exact full-width FFN Hadamard), quarot, ffn-block (block-diagonal, osp-lab < 0.2)',
      '--all': 'the OSP paper\'s table: --method rtn,gptq --rotate none,ffn,quarot --gguf q4_0',
      '--gguf LIST': 'also export to GGUF (f32, f16, q8_0, q4_0) and report llama.cpp\'s own perplexity; with quarot, also the residual-rotated export',
      '--w BITS': 'weights: symmetric per output channel, 4, 8 or 16 (= off); default 4',
      '--a BITS': 'activations at the inputs of q/k/v/o/gate/up/down: per-token asymmetric; default 4',
      '--kv BITS': 'KV cache (V, and K after RoPE and the Q/K rotation): asymmetric per head vector; default 4',
      '--no-qk-rotate': 'quantize raw post-RoPE keys (no Q/K Hadamard; osp-lab < 0.2)',
      '--minmax-range': 'activation/KV ranges are plain min/max (default: widened to include 0, as QuaRot)',
      '--group-size G': 'weight quantization groups of G input channels (default: one scale per output channel)',
      '--no-clip': 'weight scales without the MSE clip search',
      '--act-order': 'GPTQ: quantize columns by decreasing Hessian diagonal',
      '--calib FILE': 'GPTQ calibration text (default: the run\'s training data, 128 windows)',
      '--calib-windows N': 'GPTQ calibration windows of maxSeqLen tokens (default 128)',
      '--quarot-seed S': 'seed of QuaRot\'s random Hadamard signs (default 0)',
      '--had': 'osp-lab < 0.2: the same as adding --rotate ffn-block',
      '--backend NAME': `backend to run on (default auto; ${BACKEND_NAMES.join(', ')})`,
      '--json': 'print {"checkpoint", "step", "text", "fp", "variants", "gguf", "config"} as JSON',
    },
    async run(v, pos) {
      if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp quant-eval --help)');
      if (!v.text === !v.val) throw new OspError('give the evaluation text: --text FILE, or --val for the run\'s validation split (not both)');
      const maxWindows = v.windows === undefined ? Infinity : Number(v.windows);
      if (!(Number.isSafeInteger(maxWindows) && maxWindows >= 1) && maxWindows !== Infinity) {
        throw new OspError(`--windows: expected a positive integer, got '${String(v.windows)}'`);
      }
      const list = (name: string, fallback: string) => String(v[name] ?? fallback).split(',').map((x) => x.trim()).filter((x) => x !== '');
      const all = Boolean(v.all);
      if (all && (v.method !== undefined || v.rotate !== undefined || v.gguf !== undefined)) {
        throw new OspError('--all sets --method, --rotate and --gguf; give either --all or those options');
      }
      const bits = (name: string) => (v[name] === undefined ? 4 : Number(v[name]));
      const int = (name: string) => (v[name] === undefined ? undefined : Number(v[name]));
      const quant = resolveQuantConfig(
        {
          w: bits('w'),
          a: bits('a'),
          kv: bits('kv'),
          method: list('method', all ? 'rtn,gptq' : 'rtn'),
          rotate: list('rotate', all ? 'none,ffn,quarot' : 'none'),
          ...(v.had ? { had: true } : {}),
          qkRotate: !v['no-qk-rotate'],
          zeroInRange: !v['minmax-range'],
          clipSearch: !v['no-clip'],
          ...(v['group-size'] !== undefined ? { groupSize: int('group-size') } : {}),
          gptq: { actOrder: Boolean(v['act-order']), ...(v['calib-windows'] !== undefined ? { calibrationWindows: int('calib-windows') } : {}) },
          ...(v['quarot-seed'] !== undefined ? { quarotSeed: int('quarot-seed') } : {}),
        },
        'quant',
      ); // bad values fail here (named as the config section's fields), before anything is loaded
      const ggufTypes = list('gguf', all ? 'q4_0' : '').map((t) => checkChoice('--gguf', t, GGUF_TYPES));
      const c = checkpointWeights(pos[0]!);
      const seqLen = c.config.maxSeqLen;
      const bos = rowBos(c.runConfig as { batch?: { bos?: boolean } });
      const source = v.val ? `the run's validation split` : (v.text as string);
      let tokens = v.val ? runSplitTokens(c.runConfig.data, c.config.vocabSize, 'val') : readTextTokens(v.text as string);
      // The first N windows: N * seqLen predicted tokens (windows overlap by one).
      if (maxWindows !== Infinity) tokens = tokens.subarray(0, Math.min(tokens.length, maxWindows * seqLen + 1));
      const needsCalibration = quant.w !== 16 && quant.method.includes('gptq');
      const calibration = !needsCalibration
        ? undefined
        : v.calib !== undefined
          ? calibrationFromTokens(readTextTokens(v.calib as string), seqLen, quant.gptq.calibrationWindows, v.calib as string, bos)
          : calibrationFromRunData(c.runConfig.data, c.config.vocabSize, seqLen, quant.gptq.calibrationWindows, bos);
      const progress = (line: string) => {
        if (!v.json) process.stderr.write(`${line}\n`);
      };
      await startBackend((v.backend as string | undefined) ?? 'auto');
      const model = new Transformer(c.config, new Rng(0));
      let r;
      try {
        for (const [name, p] of model.params) p.assign(tfTensor(c.weights.get(name)!.data, p.shape));
        r = await quantEval(model, textWindows(tokens, seqLen, bos), quant, { calibration, log: progress });
      } finally {
        model.dispose();
        await stopBackend();
      }
      const gguf = [];
      for (const type of ggufTypes) {
        for (const rotate of quant.rotate.includes('quarot') ? [false, true] : [false]) {
          progress(`llama.cpp: ${type}${rotate ? ' with the QuaRot residual rotation' : ''}...`);
          gguf.push({ type, rotate, ...(await ggufPerplexity(pos[0]!, type, rotate, quant.quarotSeed, tokens, seqLen, bos)) });
        }
      }
      if (v.json) {
        console.log(JSON.stringify({ checkpoint: c.dir, step: c.step, text: source, tokens: tokens.length - 1, ...r, gguf }));
        return;
      }
      console.log(`checkpoint ${c.dir} (step ${c.step})`);
      console.log(`text       ${source}, ${tokens.length - 1} tokens`);
      // The interval is the evaluation's sampling error (paired over windows), not seed-to-seed variation.
      const rows: [string, number, number, number, string][] = [['full precision', r.fp.loss, r.fp.perplexity, 1, '']];
      for (const q of r.variants) {
        const se = q.gap.lossStderr;
        const half = se === null ? '' : `+- ${(q.gap.perplexityRatio * (Math.exp(1.96 * se) - 1)).toFixed(4)}`;
        rows.push([q.name, q.quant.loss, q.quant.perplexity, q.gap.perplexityRatio, half]);
      }
      for (const g of gguf) {
        rows.push([`llama.cpp ${g.type.toUpperCase()}${g.rotate ? ', residual-rotated' : ''}`, g.loss, g.perplexity, g.perplexity / r.fp.perplexity, '']);
      }
      const width = Math.max(...rows.map((x) => x[0].length));
      console.log(`  ${'setting'.padEnd(width)}     loss      ppl  ppl ratio  95% (eval)`);
      for (const [name, loss, ppl, ratio, half] of rows) {
        console.log(`  ${name.padEnd(width)}  ${loss.toFixed(4)}  ${ppl.toFixed(3).padStart(7)}  ${ratio.toFixed(4).padStart(9)}  ${half}`.trimEnd());
      }
      if (gguf.length) {
        console.log("  llama.cpp: its own Q4_0/Q8_0 (weights in blocks of 32, one scale each), its");
        console.log('  CPU kernels, f16 KV cache; residual-rotated = osp export --rotate');
      }
      console.log('  95% (eval): interval over the evaluation windows, not over training seeds');
    },
  },
  analyze: {
    summary: 'outlier statistics and the Hessian spectrum of a checkpoint',
    usage:
      'osp analyze CHECKPOINT --text FILE --batch B --seq T [--kurtosis] [--hessian --topk K --lanczos M ' +
      '[--trace-probes N] [--params GLOB] [--method auto|exact|fd]] [--backend NAME] [--json]',
    options: {
      text: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      kurtosis: { type: 'boolean' },
      hessian: { type: 'boolean' },
      topk: { type: 'string' },
      lanczos: { type: 'string' },
      'trace-probes': { type: 'string' },
      'outlier-window': { type: 'string' },
      params: { type: 'string' },
      method: { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean' },
    },
    help: {
      CHECKPOINT: 'a checkpoint directory or a run directory (its newest checkpoint)',
      '--text FILE': 'the batch is the first B*(T+1) bytes of FILE laid out as B rows',
      '--batch B': 'rows of the batch',
      '--seq T': 'tokens per row (<= the model\'s maxSeqLen)',
      '--kurtosis': 'outlier statistics per tap and the aggregate OSP kurtosis (the default when --hessian is absent)',
      '--hessian': 'the Hessian spectrum of the loss on the batch',
      '--topk K': 'eigenvalues reported (default 5)',
      '--lanczos M': 'Lanczos steps (default 30; K <= M)',
      '--trace-probes N': 'Hutchinson probes for the trace (default 0: no trace)',
      '--outlier-window K': 'top Ritz values the outlier rule looks at, the most it can count (default min(M/2, max(2K, 10)))',
      '--params GLOB': "restrict the Hessian to matching parameters (default '*'), e.g. 'model.layers.0.*'",
      '--method NAME': 'Hessian-vector products: auto (default), exact (double backprop), fd (finite differences)',
      '--backend NAME': `backend to run on (default: the run's; ${BACKEND_NAMES.join(', ')})`,
      '--json': 'print the result as JSON',
    },
    async run(v, pos) {
      if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp analyze --help)');
      if (!v.text) throw new OspError('--text FILE is required');
      const int = (name: string, fallback?: number) => {
        const raw = v[name] as string | undefined;
        if (raw === undefined) {
          if (fallback === undefined) throw new OspError(`--${name} is required`);
          return fallback;
        }
        const n = Number(raw);
        if (!Number.isInteger(n) || n < 1) throw new OspError(`--${name} must be a positive integer, got '${raw}'`);
        return n;
      };
      const method = (v.method as string | undefined) ?? 'auto';
      if (!['auto', 'exact', 'fd'].includes(method)) {
        throw new OspError(`--method must be one of auto, exact, fd, got '${method}'`);
      }
      const r = await analyzeCheckpoint({
        checkpoint: pos[0]!,
        text: v.text as string,
        batch: int('batch'),
        seq: int('seq'),
        kurtosis: Boolean(v.kurtosis) || !v.hessian,
        hessian: v.hessian
          ? {
              topk: int('topk', 5),
              lanczos: int('lanczos', 30),
              traceProbes: v['trace-probes'] === undefined ? 0 : int('trace-probes'),
              outlierWindow: v['outlier-window'] === undefined ? undefined : int('outlier-window'),
              params: (v.params as string | undefined) ?? '*',
              method: method as 'auto' | 'exact' | 'fd',
            }
          : undefined,
        backend: v.backend as string | undefined,
      });
      if (v.json) {
        console.log(JSON.stringify(r));
        return;
      }
      console.log(`${r.checkpoint} (step ${r.step}), ${r.tokens} tokens`);
      if (r.kurtosis) {
        const k = r.kurtosis;
        const below = k.ospKurtosis < k.gaussianFloor ? '; below it: lighter-tailed than Gaussian noise' : '';
        console.log(
          `OSP excess kurtosis ${k.ospKurtosis.toFixed(3)} (Gaussian floor at this width ` +
            `${k.gaussianFloor.toFixed(4)} +- ${k.gaussianFloorStderr.toFixed(4)}${below})`,
        );
        console.log('tap                 osp_kurt  chan_kurt  max/median  max|x|');
        for (const [tap, s] of Object.entries(k.perTap)) {
          console.log(
            `${tap.padEnd(18)} ${s.ospKurtosis.toFixed(3).padStart(9)} ${s.channelKurtosis.toFixed(3).padStart(10)} ` +
              `${s.maxMedianRatio.toFixed(2).padStart(11)} ${(s.topK[0] ?? 0).toFixed(3).padStart(8)}`,
          );
        }
      }
      if (r.hessian) {
        const h = r.hessian;
        console.log(`Hessian over ${h.dim} parameters (${h.method} HVP, ${h.seconds.toFixed(1)} s)`);
        console.log(`top eigenvalues: ${h.topk.map((x) => x.toPrecision(5)).join(', ')}`);
        const count = h.outliersCapped
          ? `${h.outlierCount} or more (every value in the rule's window of ${h.outlierWindow} is one: raise --outlier-window)`
          : `${h.outlierCount} (of a window of ${h.outlierWindow})`;
        console.log(
          `outliers: ${count}; gap ratio ${h.gapRatio.toFixed(3)}, bulk edge ${h.bulkEdge.toPrecision(5)} ` +
            '(a lower bound from a short Lanczos run)',
        );
        if (h.trace) console.log(`trace: ${h.trace.value.toPrecision(5)} +- ${h.trace.stderr.toPrecision(3)}`);
      }
    },
  },
  data: {
    summary: 'data tools: `osp data prepare` tokenizes text into .bin shards',
    usage:
      'osp data prepare INPUT... --out DIR [--val FILE ...] [--shard-tokens N] [--val-fraction F] [--seed S] ' +
      '[--prefix NAME] [--overwrite]',
    options: {
      out: { type: 'string' },
      val: { type: 'string', multiple: true },
      overwrite: { type: 'boolean' },
      'shard-tokens': { type: 'string' },
      'val-fraction': { type: 'string' },
      seed: { type: 'string' },
      prefix: { type: 'string' },
    },
    help: {
      'INPUT...': '.txt files (one document each) or .jsonl files (one document per line, field "text")',
      '--out DIR': 'output directory for PREFIX_val_000000.bin, PREFIX_train_000000.bin, ...',
      '--val FILE': 'validation documents (repeatable); without it val is split from INPUT by document, or by position for one document',
      '--shard-tokens N': 'tokens per shard (default 100000000)',
      '--val-fraction F': 'fraction of documents held out for validation (default 0.05)',
      '--seed S': 'seed of the document split (default 0)',
      '--prefix NAME': 'shard file prefix (default data)',
      '--overwrite': "replace this prefix's shards already in DIR (otherwise they are an error)",
    },
    async run(v, pos) {
      if (pos[0] !== 'prepare') throw new OspError(`unknown subcommand '${pos[0] ?? ''}'; valid: prepare`);
      const inputs = pos.slice(1);
      if (inputs.length === 0) throw new OspError('give at least one INPUT file');
      if (!v.out) throw new OspError('--out DIR is required');
      const num = (name: string) => {
        const raw = v[name] as string | undefined;
        if (raw === undefined) return undefined;
        const n = Number(raw);
        if (!Number.isFinite(n)) throw new OspError(`--${name} must be a number, got '${raw}'`);
        return n;
      };
      const written = prepareShards(inputs, v.out as string, {
        shardTokens: num('shard-tokens'),
        valFraction: num('val-fraction'),
        seed: num('seed'),
        prefix: v.prefix as string | undefined,
        overwrite: Boolean(v.overwrite),
        val: v.val as string[] | undefined,
        log: (line) => console.log(line),
      });
      for (const f of written) console.log(`${f.path}\t${f.tokens} tokens`);
    },
  },
};

function usage(): string {
  const lines = ['usage: osp <command> [options]', '', 'commands:'];
  const cols = Math.max(40, process.stdout.columns || 80);
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  for (const [name, c] of Object.entries(COMMANDS)) {
    wrap(c.summary, cols - width - 4).forEach((l, i) => lines.push(i === 0 ? `  ${name.padEnd(width)}  ${l}` : `${' '.repeat(width + 4)}${l}`));
  }
  lines.push('', "'osp <command> --help': a command's options; 'osp --version': the version");
  return lines.join('\n');
}

/**
 * A command's usage and option list, word-wrapped to the terminal (80 columns when not a terminal):
 * usage lines continue under the command, option descriptions under their own column.
 */
export function commandHelp(c: Command, columns = process.stdout.columns || 80): string {
  const cols = Math.max(40, columns);
  // Keys longer than the column stand on their own line, their description below.
  const width = Math.min(20, Math.max(...Object.keys(c.help).map((k) => k.length)));
  const indent = width + 4;
  const lines = wrap(c.usage, cols - 9).map((l, i) => (i === 0 ? `usage: ${l}` : `         ${l}`));
  lines.push('');
  for (const [k, d] of Object.entries(c.help)) {
    const text = wrap(d, cols - indent).map((l) => `${' '.repeat(indent)}${l}`);
    if (k.length <= width) text[0] = `  ${k.padEnd(width)}  ${text[0]!.trimStart()}`;
    else lines.push(`  ${k}`);
    lines.push(...text);
  }
  return lines.join('\n');
}

/** Greedy word wrap to at most `width` characters per line (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  out.push(line);
  return out;
}

/** osp-lab's version, from its package.json. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** node:util's parse errors, reworded: an unknown option lists the valid ones. */
function parseErrorMessage(err: Error & { code?: string }, c: Command): string {
  const unknown = /Unknown option '([^']+)'/.exec(err.message);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const valid = Object.entries(c.options).map(([k, o]) => `--${k}${o.type === 'string' ? ' VALUE' : ''}`);
    return `unknown option '${unknown[1]}'; valid options: ${valid.join(', ')}`;
  }
  return err.message;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  if (name === '--version' || name === '-V') {
    console.log(`osp-lab ${version()}`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`osp: unknown command '${name}'; valid commands: ${Object.keys(COMMANDS).join(', ')}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(commandHelp(command));
    return 0;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    return (await command.run(values as Record<string, unknown>, positionals)) ?? 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof OspError) {
      console.error(`osp ${name}: ${err.message}`);
      return 2;
    }
    if (err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`osp ${name}: ${parseErrorMessage(err, command)}`);
      return 2;
    }
    throw e;
  }
}
