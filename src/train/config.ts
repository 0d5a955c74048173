/**
 * The configuration of one training run: every component's schema in one strict object, each field
 * with a documented default. A JSON config file holds any subset; `--set a.b=value` overrides apply on
 * top; validation happens once, here, and errors name the field and the valid keys or choices.
 */
import { readFileOr } from '../io/read.ts';
import { z } from 'zod';
import { BACKEND_NAMES } from '../backend/index.ts';
import { DataConfigSchema } from '../data/dataset.ts';
import { describeTokenizer, loadTokenizer } from '../data/tokenizer.ts';
import { ConfigError } from '../errors.ts';
import { ModelConfigSchema } from '../model/config.ts';
import { OptimizerConfigSchema } from '../optim/routing.ts';
import { buildSchedule, ScheduleConfigSchema } from '../optim/schedule.ts';
import { parseConfig, zInt as int } from '../utils/parse_config.ts';
import { BatchConfigSchema } from '../data/batcher.ts';
import { CheckpointConfigSchema } from './callbacks/checkpoint.ts';
import { EvalConfigSchema } from './callbacks/eval.ts';
import { GuardConfigSchema } from './callbacks/guard.ts';
import { HessianConfigSchema } from './callbacks/hessian.ts';
import { LoggingConfigSchema } from './callbacks/logging.ts';
import { MonitorConfigSchema } from './callbacks/outliers.ts';
import { QuantSectionSchema } from './callbacks/quant.ts';

export const RunConfigSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._=-]*$/, 'letters, digits, ".", "_", "-" and "=" only, not starting with "." or "-"')
    .max(128)
    .default('run')
    .describe("Run name: the run directory is `<out>/<name>`. Letters, digits, '.', '_', '-', '=' (sweep trials: 'lr=0.01')."),
  seed: int(0).max(0xffffffff).default(0).describe('Seeds weight init and data order; recorded in every checkpoint.'),
  backend: z
    .enum(BACKEND_NAMES)
    .default('auto')
    .describe(
      "Where tensors live and kernels run; 'auto' picks tensorflow on a GPU, webgpu on a hardware adapter, native, wasm, then cpu, and says why (docs/model.md#backends).",
    ),
  steps: int(1).default(1000).describe('Optimizer steps to train.'),
  tokenizer: z
    .string()
    .min(1)
    .default('bytes')
    .describe(
      "The tokenizer of the run's text: 'bytes' (256 byte ids + BOS + EOS), 'gpt2' (GPT-2's BPE, 50257 ids) or the path of a Hugging Face tokenizer.json (ids < 65536). model.vocabSize follows it unless set; shards made with another tokenizer are refused; exports carry it.",
    ),
  model: ModelConfigSchema.prefault({}).describe('The transformer: sizes and the norm and embedding modules (docs/model.md).'),
  optimizer: OptimizerConfigSchema.prefault({}).describe(
    'One section per registered optimizer, and the routing rules that say which parameter each one trains.',
  ),
  schedule: ScheduleConfigSchema.prefault({}).describe('LR schedule; totalSteps defaults to `steps`.'),
  data: DataConfigSchema.prefault({}).describe('The training and validation text.'),
  batch: BatchConfigSchema,
  guard: GuardConfigSchema,
  eval: EvalConfigSchema,
  checkpoint: CheckpointConfigSchema,
  logging: LoggingConfigSchema,
  monitor: MonitorConfigSchema,
  hessian: HessianConfigSchema,
  quant: QuantSectionSchema,
  out: z.string().min(1).default('runs').describe('Parent directory of run directories.'),
});

export type RunConfigInput = z.input<typeof RunConfigSchema>;
/** A validated run config; `model` carries its derived sizes, `schedule.totalSteps` is set. */
export type RunConfig = z.output<typeof RunConfigSchema>;

/**
 * Validates a whole run config and derives what depends on several fields: the model's vocabulary
 * follows the tokenizer unless the config sets it (then it must hold the tokenizer's ids), and
 * `tokenizer` is resolved to its spec ('bytes', 'gpt2' or the tokenizer.json's absolute path).
 */
export function resolveRunConfig(input: unknown): RunConfig {
  const c = parseConfig(RunConfigSchema, input);
  const tokenizer = loadTokenizer(c.tokenizer);
  const vocabGiven = (input as { model?: { vocabSize?: unknown } } | undefined)?.model?.vocabSize !== undefined;
  const model = vocabGiven ? c.model : { ...c.model, vocabSize: tokenizer.vocabSize };
  if (model.vocabSize < tokenizer.vocabSize) {
    throw new ConfigError(
      'model.vocabSize',
      `${model.vocabSize} cannot hold the ids of tokenizer ${describeTokenizer(tokenizer)}; leave model.vocabSize out ` +
        `(it then follows the tokenizer) or set it to at least ${tokenizer.vocabSize}`,
    );
  }
  if (c.batch.seqLen > model.maxSeqLen) {
    throw new ConfigError(
      'batch.seqLen',
      `${c.batch.seqLen} exceeds model.maxSeqLen ${model.maxSeqLen}; raise model.maxSeqLen or shorten batch.seqLen`,
    );
  }
  if (c.batch.bos && c.batch.seqLen < 2) {
    throw new ConfigError('batch.bos', 'needs batch.seqLen >= 2 (BOS and at least one token of text)');
  }
  const totalSteps = c.schedule.totalSteps ?? c.steps;
  if (c.schedule.warmupSteps > totalSteps) {
    throw new ConfigError(
      'schedule.warmupSteps',
      `${c.schedule.warmupSteps} exceeds the run's ${totalSteps} steps; for a short run shorten the warmup too, ` +
        `e.g. --set schedule.warmupSteps=${Math.floor(totalSteps / 10)}`,
    );
  }
  buildSchedule({ ...c.schedule, totalSteps }); // the schedule's own rules (e.g. a wsd warmup into the decay)
  return { ...c, tokenizer: tokenizer.spec, model, schedule: { ...c.schedule, totalSteps } };
}

/** Reads a JSON config file; errors name the file. */
export function readConfigFile(path: string): unknown {
  const text = readFileOr(path, (msg) => new ConfigError('--config', `${path}: ${msg}`)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError('--config', `${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Applies `--set path=value` overrides to a raw config object (a copy is returned). The value is
 * parsed as JSON when it parses (numbers, booleans, arrays, objects, quoted strings), else taken as
 * a plain string, so `--set model.norm=ssnorm` and `--set optimizer.muon.lr=3e-4` both work.
 */
export function applyOverrides(config: unknown, overrides: readonly string[]): Record<string, unknown> {
  const root = structuredClone((config ?? {}) as Record<string, unknown>);
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new ConfigError('--set', `expected key=value (e.g. optimizer.muon.lr=3e-4), got '${o}'`);
    const path = o.slice(0, eq).split('.');
    const raw = o.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    if (path.some((k) => k === '' || k === '__proto__' || k === 'constructor' || k === 'prototype')) {
      throw new ConfigError('--set', `invalid key path '${o.slice(0, eq)}'`);
    }
    let node: Record<string, unknown> = root;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined) node[key] = {};
      else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        throw new ConfigError('--set', `'${path.join('.')}': '${key}' is not an object in the config`);
      }
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
  }
  return root;
}
