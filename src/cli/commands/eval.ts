/**
 * `osp eval`: a model's mean next-token loss on a text file (evaluateCheckpoint): osp-lab checkpoints and
 * HF Llama dirs in osp-lab, GGUF files in llama.cpp (its own tokenizer: the check that an export tokenizes
 * and predicts as the run does).
 */
import { BACKEND_NAMES } from '../../backend/index.ts';
import { OspError } from '../../errors.ts';
import { evaluateCheckpoint } from '../../eval/evaluate_run.ts';
import { llamaCppEvalText } from '../../eval/llama_cpp.ts';
import { readTextFile } from '../../data/text.ts';
import { MODEL_SOURCE_HELP } from '../../eval/source.ts';
import type { Command } from '../command.ts';

export const evalCommand: Command = {
  summary: 'mean next-token loss of a checkpoint, a Hugging Face Llama directory or a GGUF file (in llama.cpp) on a text file',
  usage: 'osp eval CHECKPOINT|FILE.gguf --text FILE [--json] [--backend NAME]',
  options: { text: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' } },
  help: {
    CHECKPOINT: MODEL_SOURCE_HELP,
    'FILE.gguf':
      "a GGUF file, run in llama.cpp (node-llama-cpp's CPU build) with llama.cpp's own tokenizer and windows of the file's context length",
    '--text FILE': "UTF-8 text, tokenized with the model's tokenizer; every token is predicted once (windows of maxSeqLen, BOS first)",
    '--json': 'print {"loss", "tokens", "bytes", "bpb", "tokenizer"} as JSON',
    '--backend NAME': `backend to run on (default: the run's, auto for a Hugging Face directory; ${BACKEND_NAMES.join(', ')})`,
  },
  async run(v, pos) {
    if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp eval --help)');
    if (!v.text) throw new OspError('--text FILE is required');
    if (pos[0]!.toLowerCase().endsWith('.gguf')) {
      // A GGUF file: llama.cpp's own tokenizer and forward pass (node-llama-cpp).
      const file = readTextFile(v.text as string);
      const g = await llamaCppEvalText(pos[0]!, file.text);
      if (v.json) console.log(JSON.stringify({ loss: g.loss, tokens: g.tokens, bytes: g.bytes, bpb: g.bpb, tokenizer: 'llama.cpp' }));
      else {
        console.log(
          `${pos[0]} (llama.cpp): loss ${g.loss.toFixed(4)} nats/token, bpb ${g.bpb.toFixed(4)} over ${g.tokens} tokens ` +
            `(${g.bytes} bytes; llama.cpp's tokenizer, windows of ${g.contextLength})`,
        );
      }
      return;
    }
    const r = await evaluateCheckpoint({ checkpoint: pos[0]!, text: v.text as string, backend: v.backend as string | undefined });
    if (v.json) console.log(JSON.stringify({ loss: r.loss, tokens: r.tokens, bytes: r.bytes, bpb: r.bpb, tokenizer: r.tokenizer }));
    else if (r.tokenizer === 'bytes')
      console.log(`${r.checkpoint}: loss ${r.loss.toFixed(4)} nats/byte, bpb ${r.bpb.toFixed(4)} over ${r.tokens} bytes`);
    else {
      console.log(
        `${r.checkpoint}: loss ${r.loss.toFixed(4)} nats/token, bpb ${r.bpb.toFixed(4)} over ${r.tokens} tokens ` +
          `(${r.bytes} bytes; tokenizer ${r.tokenizer})`,
      );
    }
  },
};
