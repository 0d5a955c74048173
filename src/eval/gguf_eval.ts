/**
 * A model's GGUF export (an osp-lab checkpoint, or a Hugging Face directory) as llama.cpp runs it: export to a temporary file (optionally with QuaRot's
 * residual rotation), evaluate with llama.cpp (llama_cpp.ts), delete the file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaCppPerplexity, type LlamaCppResult } from './llama_cpp.ts';
import { exportCheckpoint } from '../export/index.ts';
import type { ModelSource } from './source.ts';

/**
 * @param checkpoint a path openModelSource reads, or a source already opened
 * @param type a GGUF tensor type (f32, f16, q8_0, q4_0)
 * @param rotate export with the residual-stream rotation (`osp export --rotate`)
 * @example await ggufPerplexity('runs/adam', 'q4_0', false, 0, readTextTokens('val.txt'), 128)
 */
export async function ggufPerplexity(
  checkpoint: string | ModelSource,
  type: string,
  rotate: boolean,
  rotateSeed: number,
  tokens: Uint16Array,
  maxSeqLen: number,
  bos?: number,
): Promise<LlamaCppResult> {
  const dir = mkdtempSync(join(tmpdir(), 'osp-gguf-'));
  try {
    const out = join(dir, `model-${type}.gguf`);
    await exportCheckpoint({ checkpoint, format: 'gguf', out, type, ...(rotate ? { rotate, rotateSeed } : {}) });
    return await llamaCppPerplexity(out, tokens, maxSeqLen, { bos });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
