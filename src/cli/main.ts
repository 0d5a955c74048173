/**
 * The `osp` command. Thin: parse arguments, validate, call the library, print. Errors that osp-lab
 * raises on purpose (OspError) print as one line and exit with status 2; anything else is a bug and
 * prints its stack.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { startBackend, stopBackend, BACKEND_NAMES } from '../backend/index.ts';
import { readConfigFile } from '../config/run.ts';
import { prepareShards } from '../data/sources.ts';
import { OspError } from '../errors.ts';
import { evaluateTokens, readTextTokens } from '../eval/text.ts';
import { resolveModelConfig } from '../model/config.ts';
import { Transformer } from '../model/transformer.ts';
import { Rng } from '../utils/rng.ts';
import { loadModelWeights, openCheckpoint } from '../train/checkpoint.ts';
import { train } from '../train/run.ts';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  help: Record<string, string>;
  run(values: Record<string, unknown>, positionals: string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  train: {
    summary: 'train a model (or resume a run)',
    usage: 'osp train [--config FILE] [--set key=value ...] [--resume RUN_DIR] [--backend NAME] [--out DIR]',
    options: {
      config: { type: 'string', short: 'c' },
      set: { type: 'string', multiple: true },
      resume: { type: 'string' },
      backend: { type: 'string' },
      out: { type: 'string' },
    },
    help: {
      '--config FILE': 'JSON run config (see README: config fields); defaults fill what it omits',
      '--set key=value': 'override one field, e.g. --set optimizer.muon.lr=3e-4 (repeatable; JSON values)',
      '--resume RUN_DIR': 'continue RUN_DIR from its newest good checkpoint, on the exact same trajectory',
      '--backend NAME': `shorthand for --set backend=NAME (${BACKEND_NAMES.join(', ')})`,
      '--out DIR': 'shorthand for --set out=DIR: parent directory of run directories (default runs)',
    },
    async run(v) {
      const overrides = [...((v.set as string[] | undefined) ?? [])];
      if (v.backend) overrides.push(`backend=${JSON.stringify(v.backend)}`);
      if (v.out) overrides.push(`out=${JSON.stringify(v.out)}`);
      const config = v.config ? readConfigFile(v.config as string) : {};
      const s = await train({ config, overrides, resume: v.resume as string | undefined });
      const ev = s.eval;
      console.log(
        `done: ${s.steps} steps in ${s.wallSeconds.toFixed(1)} s (${Math.round(s.tokensPerSecond)} tok/s); ` +
          (ev
            ? `val loss ${ev.loss.toFixed(4)} (bpb ${ev.bitsPerByte.toFixed(3)}) vs byte-unigram baseline ` +
              `${s.unigramBaseline.loss.toFixed(4)} (bpb ${s.unigramBaseline.bitsPerByte.toFixed(3)})`
            : `train loss ${s.finalTrainLoss.toFixed(4)}`),
      );
      console.log(`run directory: ${s.runDir}   (tensorboard --logdir ${s.runDir}/..)`);
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
      if (pos.length !== 1) throw new OspError('osp eval: expected one CHECKPOINT argument (see osp eval --help)');
      if (!v.text) throw new OspError('osp eval: --text FILE is required');
      const tokens = readTextTokens(v.text as string);
      const { dir, checkpoint } = openCheckpoint(pos[0]!);
      const runConfig = checkpoint.state.config as { model: unknown; backend: string };
      await startBackend((v.backend as string | undefined) ?? runConfig.backend);
      const model = new Transformer(resolveModelConfig(runConfig.model), new Rng(0));
      try {
        loadModelWeights(model, checkpoint.model, `${dir}/model.safetensors`);
        const r = await evaluateTokens(model, tokens);
        if (v.json) console.log(JSON.stringify(r));
        else console.log(`${dir}: loss ${r.loss.toFixed(4)} nats/byte, bpb ${r.bpb.toFixed(4)} over ${r.tokens} bytes`);
      } finally {
        model.dispose();
        await stopBackend();
      }
    },
  },
  data: {
    summary: 'data tools: `osp data prepare` tokenizes text into .bin shards',
    usage: 'osp data prepare INPUT... --out DIR [--shard-tokens N] [--val-fraction F] [--seed S] [--prefix NAME]',
    options: {
      out: { type: 'string' },
      'shard-tokens': { type: 'string' },
      'val-fraction': { type: 'string' },
      seed: { type: 'string' },
      prefix: { type: 'string' },
    },
    help: {
      'INPUT...': '.txt files (one document each) or .jsonl files (one document per line, field "text")',
      '--out DIR': 'output directory for PREFIX_val_000000.bin, PREFIX_train_000000.bin, ...',
      '--shard-tokens N': 'tokens per shard (default 100000000)',
      '--val-fraction F': 'fraction of documents held out for validation (default 0.05)',
      '--seed S': 'seed of the document split (default 0)',
      '--prefix NAME': 'shard file prefix (default data)',
    },
    async run(v, pos) {
      if (pos[0] !== 'prepare') throw new OspError(`osp data: unknown subcommand '${pos[0] ?? ''}'; valid: prepare`);
      const inputs = pos.slice(1);
      if (inputs.length === 0) throw new OspError('osp data prepare: give at least one INPUT file');
      if (!v.out) throw new OspError('osp data prepare: --out DIR is required');
      const num = (name: string) => {
        const raw = v[name] as string | undefined;
        if (raw === undefined) return undefined;
        const n = Number(raw);
        if (!Number.isFinite(n)) throw new OspError(`osp data prepare: --${name} must be a number, got '${raw}'`);
        return n;
      };
      const written = prepareShards(inputs, v.out as string, {
        shardTokens: num('shard-tokens'),
        valFraction: num('val-fraction'),
        seed: num('seed'),
        prefix: v.prefix as string | undefined,
      });
      for (const f of written) console.log(`${f.path}\t${f.tokens} tokens`);
    },
  },
};

function usage(): string {
  const lines = ['usage: osp <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('', "run 'osp <command> --help' for a command's options");
  return lines.join('\n');
}

function commandHelp(c: Command): string {
  const width = Math.max(...Object.keys(c.help).map((k) => k.length));
  return [`usage: ${c.usage}`, '', ...Object.entries(c.help).map(([k, d]) => `  ${k.padEnd(width)}  ${d}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
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
    await command.run(values as Record<string, unknown>, positionals);
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof OspError || err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`osp ${name}: ${err.message}`);
      return 2;
    }
    throw e;
  }
}
