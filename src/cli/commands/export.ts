/** `osp export`: a checkpoint (or a Hugging Face Llama directory) as a Hugging Face Llama directory or a GGUF file. */
import { OspError } from '../../errors.ts';
import { MODEL_SOURCE_HELP } from '../../export/checkpoint.ts';
import { EXPORT_FORMATS, exportCheckpoint } from '../../export/index.ts';
import type { Command } from '../command.ts';

export const exportCommand: Command = {
  summary: 'write a checkpoint (or a Hugging Face Llama directory) as a Hugging Face Llama directory or a GGUF file for llama.cpp',
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
    CHECKPOINT: MODEL_SOURCE_HELP,
    '--format NAME': 'hf (config.json, model.safetensors, tokenizer files) or gguf (one file)',
    '--out PATH': 'hf: a new (or empty) directory; gguf: the file to write',
    '--dtype NAME': 'hf only: f32 (default), f16 or bf16',
    '--type NAME': 'gguf only: f32 (default), f16, q8_0 or q4_0 (q4_0 keeps embedding and output at q8_0)',
    '--rotate': "QuaRot's residual-stream rotation (norms folded, random Hadamard; same function, no online op)",
    '--rotate-seed S': "seed of the rotation's random signs (default 0)",
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
};
