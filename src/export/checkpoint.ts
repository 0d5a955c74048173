/**
 * A model source, the one place every command that reads a model opens it (`osp eval`, `osp analyze`,
 * `osp quant-eval`, `osp export`): an osp-lab checkpoint directory, an osp-lab run directory (its newest
 * good checkpoint), or a Hugging Face Llama directory (config.json + model.safetensors, or
 * model.safetensors.index.json and its shards), told apart by the files present. Weights are read on the
 * host (no backend needed) as float32, every one checked finite and of the shape the config implies.
 * Folding OSP's modules into a plain Llama (for export) is foldedCheckpoint.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FormatError, OspError } from '../errors.ts';
import { toFloat32 } from '../io/safetensors.ts';
import { resolveModelConfig, type ModelConfig } from '../model/config.ts';
import { HF_INDEX_FILE, HF_WEIGHTS_FILE, isHfDir, readHfCheckpoint } from '../model/hf.ts';
import { paramSpecs } from '../model/transformer.ts';
import { rowBos } from '../data/batcher.ts';
import { byteTokenizer, loadTokenizer, TOKENIZER_NAMES, type Tokenizer } from '../data/tokenizer.ts';
import { openCheckpoint } from '../train/checkpoint.ts';
import { foldToLlama, type Weights } from '../model/fold.ts';

/** What a model path may be, for messages. */
export const MODEL_SOURCE_HELP =
  'an osp-lab checkpoint directory (runs/NAME/checkpoints/step_...), a run directory (its newest checkpoint), ' +
  `or a Hugging Face Llama directory (config.json + ${HF_WEIGHTS_FILE} or ${HF_INDEX_FILE} and its shards)`;

/** A model read from disk: its config and float32 weights, and what an osp-lab run recorded with it. */
export interface ModelSource {
  /** 'osp': an osp-lab checkpoint; 'hf': a Hugging Face Llama directory. */
  kind: 'osp' | 'hf';
  /** The checkpoint directory (a run directory resolves to its newest good checkpoint) or the HF directory. */
  dir: string;
  /** The model as stored (osp: the run's modules, e.g. SSNorm and EmbProj; hf: a plain Llama). */
  config: ModelConfig;
  weights: Weights;
  /**
   * The model's tokenizer: an osp-lab run's (`tokenizer` in its config; a tokenizer.json from the run's
   * own copy in <run>/tokenizer/), a Hugging Face directory's tokenizer.json; absent for a Hugging Face
   * directory without one whose vocabulary is not the byte tokenizer's 258 (sourceTokenizer says so).
   */
  tokenizer?: Tokenizer;
  /** osp only: the training step of the checkpoint. */
  step?: number;
  /** osp only: the run's backend (commands default to it). */
  backend?: string;
  /** osp only: the BOS token every row started with (the run's `batch.bos`); absent = rows are plain slices. */
  bos?: number;
  /** osp only: the run's seed. */
  seed?: number;
  /** osp only: the whole run config the checkpoint was trained with (data, optimizer, ...). */
  runConfig?: Record<string, unknown>;
}

/**
 * The tokenizer of the run a checkpoint belongs to (checkpoint dir = <run>/checkpoints/step_...): a
 * built-in by name; a tokenizer.json from the copy the run keeps in <run>/tokenizer/ (the original path
 * may be gone), else from the path the config names. Runs from before tokenizers: bytes.
 */
function runTokenizer(checkpointDir: string, spec: unknown, vocabSize: number): Tokenizer | undefined {
  // A run from before tokenizers were recorded: bytes, unless its vocabulary says otherwise (e.g. llm.c's
  // GPT-2 shards at 50304): then unknown, and what needs a tokenizer says so (sourceTokenizer).
  if (spec === undefined) return vocabSize === byteTokenizer.vocabSize ? byteTokenizer : undefined;
  if (spec === 'bytes') return byteTokenizer;
  if (typeof spec !== 'string')
    throw new FormatError(join(checkpointDir, 'state.json'), `config.tokenizer: expected a string, found ${JSON.stringify(spec)}`);
  if (TOKENIZER_NAMES.includes(spec)) return loadTokenizer(spec);
  const copy = join(dirname(dirname(resolve(checkpointDir))), 'tokenizer');
  return loadTokenizer(existsSync(join(copy, 'tokenizer.json')) ? copy : spec);
}

/**
 * A Hugging Face directory's tokenizer: its tokenizer.json; without one, the byte tokenizer when the
 * vocabulary is the byte tokenizer's 258 ids (an osp-lab export, or a test model), else none.
 */
function hfTokenizer(dir: string, vocabSize: number): Tokenizer | undefined {
  if (existsSync(join(dir, 'tokenizer.json'))) return loadTokenizer(dir);
  return vocabSize === byteTokenizer.vocabSize ? byteTokenizer : undefined;
}

/** The source's tokenizer, or an OspError saying that this command needs one and where it goes. */
export function sourceTokenizer(s: ModelSource): Tokenizer {
  if (s.tokenizer) return s.tokenizer;
  if (s.kind === 'osp') {
    throw new OspError(
      `${s.dir}: the run records no tokenizer (it predates osp-lab's tokenizers) and its ${s.config.vocabSize}-token ` +
        `vocabulary is not the byte tokenizer's; this command needs the tokenizer its data was made with`,
    );
  }
  throw new OspError(
    `${s.dir}: no tokenizer.json, and its ${s.config.vocabSize}-token vocabulary is not osp-lab's byte tokenizer; ` +
      `put the model's tokenizer.json in the directory (text cannot be tokenized, nor a GGUF vocabulary written, without it)`,
  );
}

/** The osp-lab checkpoint (or run directory's newest checkpoint) at `path`. */
function ospSource(path: string): ModelSource {
  const { dir, checkpoint } = openCheckpoint(path);
  const runConfig = checkpoint.state.config as Record<string, unknown> & {
    model: unknown;
    backend?: string;
    seed?: number;
    tokenizer?: unknown;
  };
  const config = resolveModelConfig(runConfig.model);
  const file = join(dir, 'model.safetensors');
  const tokenizer = runTokenizer(dir, runConfig.tokenizer, config.vocabSize);
  const weights: Weights = new Map();
  for (const spec of paramSpecs(config)) {
    const t = checkpoint.model.get(spec.name);
    if (!t || t.shape.join(',') !== spec.shape.join(',')) {
      throw new FormatError(file, `parameter '${spec.name}' is missing or has the wrong shape for the checkpoint's config`);
    }
    const data = toFloat32(t);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new FormatError(file, `parameter '${spec.name}' holds a non-finite value (${data[bad]}) at index ${bad}`);
    weights.set(spec.name, { shape: spec.shape, data });
  }
  for (const name of checkpoint.model.keys()) {
    if (!weights.has(name)) throw new FormatError(file, `unexpected parameter '${name}' (not in the checkpoint's model config)`);
  }
  return {
    kind: 'osp',
    dir,
    config,
    weights,
    step: checkpoint.state.step,
    backend: runConfig.backend,
    tokenizer,
    bos: rowBos(runConfig as { batch?: { bos?: boolean } }, tokenizer),
    seed: runConfig.seed,
    runConfig,
  };
}

/**
 * Opens a model given a path: an osp-lab checkpoint directory (state.json), a Hugging Face Llama directory
 * (model.safetensors or model.safetensors.index.json; config.json is then required), or an osp-lab run
 * directory (checkpoints/: its newest checkpoint that verifies). Anything else is an OspError naming the
 * path and what was expected; a bad file is a FormatError naming the file and the field.
 *
 * @example
 *   const s = openModelSource('hf/my-llama');           // { kind: 'hf', config, weights, ... }
 *   const r = openModelSource('runs/tiny');             // { kind: 'osp', step: 400, bos, ... }
 */
export function openModelSource(path: string): ModelSource {
  if (!existsSync(path)) throw new OspError(`${path}: no such directory; expected ${MODEL_SOURCE_HELP}`);
  if (!statSync(path).isDirectory()) throw new OspError(`${path}: is a file; expected ${MODEL_SOURCE_HELP}`);
  if (existsSync(join(path, 'state.json'))) return ospSource(path);
  if (isHfDir(path)) {
    const { config, weights } = readHfCheckpoint(path);
    return { kind: 'hf', dir: path, config, weights, tokenizer: hfTokenizer(path, config.vocabSize) };
  }
  if (existsSync(join(path, 'checkpoints'))) return ospSource(path);
  if (existsSync(join(path, 'config.json'))) {
    // A config.json alone: a Hugging Face directory without its weights, or a run with no checkpoint yet.
    throw new OspError(
      `${path}: has config.json but neither ${HF_WEIGHTS_FILE} nor ${HF_INDEX_FILE} (Hugging Face weights are read from ` +
        `safetensors only, not pytorch_model.bin) and no checkpoints/ (an osp-lab run that saved none); expected ${MODEL_SOURCE_HELP}`,
    );
  }
  throw new OspError(`${path}: not a model; expected ${MODEL_SOURCE_HELP}`);
}

/** `openModelSource` of a path; a source already open is returned as it is. */
export function modelSource(source: string | ModelSource): ModelSource {
  return typeof source === 'string' ? openModelSource(source) : source;
}

/** A short description of a source for printed lines and file metadata: "step 400" or "Hugging Face". */
export function sourceLabel(s: ModelSource): string {
  return s.kind === 'osp' ? `step ${s.step}` : 'Hugging Face';
}

/**
 * A checkpoint's model config and float32 weights (any model source), and for an osp-lab checkpoint its
 * step and the whole run config it was trained with. Kept for callers of the osp-only API.
 */
export function checkpointWeights(path: string): {
  dir: string;
  step: number;
  config: ModelConfig;
  weights: Weights;
  runConfig: Record<string, unknown>;
} {
  const s = openModelSource(path);
  return { dir: s.dir, step: s.step ?? 0, config: s.config, weights: s.weights, runConfig: s.runConfig ?? {} };
}

/** The model folded into a plain Llama (see fold.ts); a Hugging Face model already is one. */
export function foldedCheckpoint(path: string | ModelSource): ModelSource {
  const s = modelSource(path);
  return { ...s, ...foldToLlama(s.config, s.weights) };
}
