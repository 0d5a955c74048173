/**
 * `osp export`: a checkpoint, folded into a plain Llama, as a Hugging Face directory or a GGUF file.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkChoice, OspError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { foldedCheckpoint } from './checkpoint.ts';
import { GGUF_TYPES, llamaGguf } from './gguf.ts';
import { writeHfCheckpoint } from './hf.ts';

export const EXPORT_FORMATS = ['hf', 'gguf'] as const;
const HF_DTYPES = ['f32', 'f16', 'bf16'] as const;

export interface ExportOptions {
  checkpoint: string;
  format: string;
  out: string;
  /** hf: f32 | f16 | bf16 */
  dtype?: string;
  /** gguf: f32 | f16 | q8_0 | q4_0 */
  type?: string;
}

/** Writes the export and returns the paths written. Options are validated before anything is read. */
export async function exportCheckpoint(o: ExportOptions): Promise<string[]> {
  const format = checkChoice('--format', o.format, EXPORT_FORMATS);
  if (format === 'hf') {
    if (o.type !== undefined) throw new OspError("--type applies to --format gguf; for hf use --dtype f32|f16|bf16");
    const dtype = checkChoice('--dtype', o.dtype ?? 'f32', HF_DTYPES);
    const f = foldedCheckpoint(o.checkpoint);
    return writeHfCheckpoint(o.out, f.config, f.weights, dtype);
  }
  if (o.dtype !== undefined) throw new OspError('--dtype applies to --format hf; for gguf use --type f32|f16|q8_0|q4_0');
  const type = checkChoice('--type', o.type ?? 'f32', GGUF_TYPES);
  if (existsSync(o.out)) throw new OspError(`--out ${o.out} already exists; choose a new file name (nothing was written)`);
  const f = foldedCheckpoint(o.checkpoint);
  // Like the hf directory, the file's folder is created when missing.
  mkdirSync(dirname(resolve(o.out)), { recursive: true });
  writeFileAtomicSync(o.out, llamaGguf(f.config, f.weights, type, `osp-lab step ${f.step}`));
  return [o.out];
}
