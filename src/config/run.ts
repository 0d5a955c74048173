/**
 * The configuration of one training run: every component's schema in one strict object, each field
 * with a documented default. A JSON config file holds any subset; `--set a.b=value` overrides apply on
 * top; validation happens once, here, and errors name the field and the valid keys or choices.
 */
import { readFileOr } from '../io/read.ts';
import { z } from 'zod';
import { BACKEND_NAMES } from '../backend/index.ts';
import { DataConfigSchema } from '../data/dataset.ts';
import { ConfigError } from '../errors.ts';
import { ModelConfigSchema, resolveModelConfig, type ModelConfig } from '../model/config.ts';
import { OptimizerConfigSchema } from '../optim/routing.ts';
import { createSchedule, ScheduleConfigSchema } from '../optim/schedule.ts';
import { QuantConfigSchema } from '../quant/eval.ts';
import { parseConfig } from '../utils/parse_config.ts';

const int = (min: number) => z.number().int().min(min);

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
  model: ModelConfigSchema.prefault({}).describe('The transformer: sizes and the norm and embedding modules (docs/model.md).'),
  optimizer: OptimizerConfigSchema.prefault({}).describe(
    'One section per registered optimizer, and the routing rules that say which parameter each one trains.',
  ),
  schedule: ScheduleConfigSchema.prefault({}).describe('LR schedule; totalSteps defaults to `steps`.'),
  data: DataConfigSchema.prefault({}).describe('The training and validation text.'),
  batch: z
    .strictObject({
      size: int(1).default(16).describe('Sequences per micro-batch.'),
      seqLen: int(1).default(128).describe('Tokens per sequence (<= model.maxSeqLen).'),
      accum: int(1).default(1).describe('Micro-batches per optimizer step (gradient accumulation).'),
      bos: z
        .boolean()
        .default(false)
        .describe(
          "Begin every sequence with the BOS token (the byte tokenizer's 256), as pre-training does when each sequence starts a document; evaluation, the monitors and the quantization windows follow. Off: rows are plain slices of the token stream. Attention sinks and massive activations form on that token.",
        ),
    })
    .prefault({})
    .describe('The shape of a training batch.'),
  guard: z
    .strictObject({
      clipGradNorm: z.number().min(0).default(1.0).describe('Clip the global gradient norm to this value; 0 disables clipping.'),
      skipZScore: z
        .number()
        .min(0)
        .default(0)
        .describe('Skip an update whose loss or grad-norm z-score over the recent window exceeds this; 0 = off.'),
      window: int(2).default(50).describe('Steps in the z-score window.'),
      minHistory: int(2).default(20).describe('Steps observed before the z-score rule may skip anything.'),
    })
    .prefault({})
    .describe('Guards against instability.'),
  eval: z
    .strictObject({
      every: int(0).default(100).describe('Evaluate every N steps (and at the end); 0 = only at the end.'),
      batches: int(1).default(16).describe('Validation batches per evaluation (fixed, unshuffled windows: comparable across evals).'),
    })
    .prefault({})
    .describe('Validation loss during training.'),
  checkpoint: z
    .strictObject({
      every: int(0).default(250).describe('Save every N steps (and at the end); 0 = only at the end.'),
      keep: int(1).default(3).describe('Checkpoints kept; older ones are deleted after a newer one is complete.'),
    })
    .prefault({})
    .describe('Checkpoints (atomic, checksummed) in <run>/checkpoints/.'),
  logging: z
    .strictObject({
      every: int(1).default(10).describe('Log training metrics every N steps.'),
      tensorboard: z.boolean().default(true).describe('Write TensorBoard event files into the run directory.'),
      histogramsEvery: int(0).default(100).describe('Weight histograms every N steps; 0 = off.'),
      console: z
        .enum(['auto', 'bar', 'lines', 'quiet'])
        .default('auto')
        .describe("Console output: a progress bar on a TTY, plain lines otherwise ('auto'), or force one."),
    })
    .prefault({})
    .describe('Console, metrics.jsonl and TensorBoard logging.'),
  monitor: z
    .strictObject({
      every: int(0).default(50).describe('Measure every N steps, at step 0 and at the end; 0 = off.'),
      batchSize: int(1).default(4).describe('Sequences in the fixed held-out batch (the first validation windows).'),
      topK: int(1).default(8).describe('Largest |activations| reported per tap.'),
      images: z.boolean().default(true).describe('Per-channel RMS histograms and the layer x channel heatmap image in TensorBoard.'),
    })
    .prefault({})
    .describe('Outlier statistics of the hidden states on a fixed held-out batch (docs/monitoring.md).'),
  hessian: z
    .strictObject({
      every: int(0).default(0).describe('Probe every N steps (and at the end); 0 = off.'),
      topk: int(1).default(5).describe('Top eigenvalues reported (<= lanczosSteps).'),
      lanczosSteps: int(2).default(30).describe('Lanczos steps (full reorthogonalisation).'),
      outlierWindow: int(1)
        .optional()
        .describe(
          "The outlier rule's window: how many top Ritz values it looks at (<= lanczosSteps), so the most outliers it can count; default min(lanczosSteps / 2, max(2 topk, 10)). hessian/outliers_capped is 1 when the count filled it.",
        ),
      traceProbes: int(0).default(0).describe('Hutchinson probes for the trace; 0 = no trace.'),
      density: z.boolean().default(true).describe('Spectral density by stochastic Lanczos quadrature, logged as an image.'),
      batchSize: int(1).default(4).describe('Sequences of the fixed batch the Hessian is taken on.'),
      params: z
        .string()
        .min(1)
        .default('*')
        .describe("Restrict to parameters whose name matches this glob or /regex/ (e.g. 'model.layers.0.*')."),
      method: z
        .enum(['auto', 'exact', 'fd'])
        .default('auto')
        .describe("Hessian-vector products: 'exact' (double backprop), 'fd' (finite differences) or 'auto'."),
      backend: z
        .enum(['cpu', 'native', 'wasm', 'webgpu', 'tensorflow'])
        .default('wasm')
        .describe("Backend of the worker thread (not 'auto': a probe must not take the training GPU by surprise)."),
    })
    .prefault({})
    .describe('The Hessian probe: outlier eigenvalues of the loss Hessian, in a worker thread (off by default).'),
  quant: z
    .strictObject({
      ...QuantConfigSchema.shape,
      every: int(0).default(0).describe('Measure every N steps and at the end; 0 = off.'),
      batches: int(1).default(4).describe('Validation batches measured (the first eval batches).'),
    })
    .prefault({})
    .describe('W4A4KV4-style quantization robustness measured during training (off by default).'),
  out: z.string().min(1).default('runs').describe('Parent directory of run directories.'),
});

export type RunConfigInput = z.input<typeof RunConfigSchema>;
/** A validated run config; `model` carries its derived sizes, `schedule.totalSteps` is set. */
export type RunConfig = Omit<z.output<typeof RunConfigSchema>, 'model'> & { model: ModelConfig };

/** Validates a whole run config and derives what depends on several fields. */
export function resolveRunConfig(input: unknown): RunConfig {
  const c = parseConfig(RunConfigSchema, input);
  const model = resolveModelConfig(c.model, 'model');
  if (c.batch.seqLen > model.maxSeqLen) {
    throw new ConfigError(
      'batch.seqLen',
      `${c.batch.seqLen} exceeds model.maxSeqLen ${model.maxSeqLen}; raise model.maxSeqLen or shorten batch.seqLen`,
    );
  }
  if (c.batch.bos && c.data.source === 'shards') {
    throw new ConfigError(
      'batch.bos',
      "needs the BOS token of the data's tokenizer; llm.c shards carry no tokenizer (use brown, text or jsonl data)",
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
  createSchedule({ ...c.schedule, totalSteps }); // the schedule's own rules (e.g. a wsd warmup into the decay)
  if (c.hessian.outlierWindow !== undefined && c.hessian.outlierWindow > c.hessian.lanczosSteps) {
    throw new ConfigError(
      'hessian.outlierWindow',
      `${c.hessian.outlierWindow} exceeds hessian.lanczosSteps (${c.hessian.lanczosSteps}): the rule can only look at computed Ritz values`,
    );
  }
  if (c.hessian.topk > c.hessian.lanczosSteps) {
    throw new ConfigError(
      'hessian.topk',
      `${c.hessian.topk} eigenvalues need at least as many Lanczos steps; hessian.lanczosSteps is ${c.hessian.lanczosSteps}`,
    );
  }
  return { ...c, model, schedule: { ...c.schedule, totalSteps } };
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
