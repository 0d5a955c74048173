/**
 * `osp export`: a model (an osp-lab checkpoint or run directory, or a Hugging Face Llama directory:
 * openModelSource), folded into a plain Llama, as a Hugging Face directory or a GGUF file carrying the
 * model's tokenizer (the run's; sourceTokenizer); with `rotate`, QuaRot's residual-stream rotation
 * applied first (no online op is needed, so any Llama runtime, llama.cpp's Q4_0 included, runs the
 * rotated model unchanged).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkChoice, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import type { ModelConfig } from '../model/config.ts';
import { foldedCheckpoint, modelSource, sourceLabel, sourceTokenizer, type ModelSource } from './checkpoint.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import type { Weights } from '../model/fold.ts';
import { GGUF_TYPES, llamaGguf } from './gguf.ts';
import { writeHfCheckpoint } from './hf.ts';
import { quarotRotate } from '../quant/quarot.ts';

export const EXPORT_FORMATS = ['hf', 'gguf'] as const;
const HF_DTYPES = ['f32', 'f16', 'bf16'] as const;

export interface ExportOptions {
  /** An osp-lab checkpoint or run directory, a Hugging Face Llama directory, or a source already opened. */
  checkpoint: string | ModelSource;
  format: string;
  out: string;
  /** hf: f32 | f16 | bf16 */
  dtype?: string;
  /** gguf: f32 | f16 | q8_0 | q4_0 */
  type?: string;
  /** Rotate the residual stream by QuaRot's random Hadamard (norms folded into the linears); default false. */
  rotate?: boolean;
  /** Seed of the rotation's random signs (default 0). */
  rotateSeed?: number;
}

/**
 * The model as a plain Llama, residual-rotated when asked, its tokenizer (an OspError when the source has
 * none: a GGUF vocabulary or Hugging Face tokenizer files cannot be written without it), and a label of
 * where it came from.
 */
function exportedModel(o: ExportOptions): { label: string; config: ModelConfig; weights: Weights; tokenizer: Tokenizer } {
  if (!o.rotate) {
    if (o.rotateSeed !== undefined) throw new OspError('--rotate-seed applies only with --rotate');
    const f = foldedCheckpoint(o.checkpoint);
    return { label: sourceLabel(f), config: f.config, weights: f.weights, tokenizer: sourceTokenizer(f) };
  }
  const seed = o.rotateSeed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new OspError(`--rotate-seed: expected an integer >= 0, got ${String(o.rotateSeed)}`);
  const c = modelSource(o.checkpoint);
  const tokenizer = sourceTokenizer(c);
  const r = quarotRotate(c.config, c.weights, { seed });
  return { label: sourceLabel(c), config: r.config, weights: r.weights, tokenizer };
}

/** Writes the export and returns the paths written. Options are validated before anything is read. */
export async function exportCheckpoint(o: ExportOptions): Promise<string[]> {
  const format = checkChoice('--format', o.format, EXPORT_FORMATS);
  if (format === 'hf') {
    if (o.type !== undefined) throw new OspError('--type applies to --format gguf; for hf use --dtype f32|f16|bf16');
    const dtype = checkChoice('--dtype', o.dtype ?? 'f32', HF_DTYPES);
    const f = exportedModel(o);
    return writeHfCheckpoint(o.out, f.config, f.weights, dtype, f.tokenizer);
  }
  if (o.dtype !== undefined) throw new OspError('--dtype applies to --format hf; for gguf use --type f32|f16|q8_0|q4_0');
  const type = checkChoice('--type', o.type ?? 'f32', GGUF_TYPES);
  if (existsSync(o.out)) throw new OspError(`--out ${o.out} already exists; choose a new file name (nothing was written)`);
  const f = exportedModel(o);
  const bytes = llamaGguf(f.config, f.weights, type, `osp-lab ${f.label}${o.rotate ? ', QuaRot residual rotation' : ''}`, f.tokenizer);
  // Like the hf directory, the file's folder is created when missing.
  mkdirSync(dirname(resolve(o.out)), { recursive: true });
  writeFileAtomicSync(o.out, bytes);
  return [o.out];
}
