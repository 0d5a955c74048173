/** `osp eval`: a model's mean next-token loss on a text file (evaluateCheckpoint); osp-lab checkpoints or HF Llama dirs. */
import { BACKEND_NAMES } from '../../backend/index.ts';
import { OspError } from '../../errors.ts';
import { evaluateCheckpoint } from '../../eval/evaluate_run.ts';
import { MODEL_SOURCE_HELP } from '../../eval/source.ts';
import type { Command } from '../command.ts';

export const evalCommand: Command = {
  summary: 'mean next-token loss of a checkpoint (or a Hugging Face Llama directory) on a text file, in its own tokenizer',
  usage: 'osp eval CHECKPOINT --text FILE [--json] [--backend NAME]',
  options: { text: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' } },
  help: {
    CHECKPOINT: MODEL_SOURCE_HELP,
    '--text FILE': "UTF-8 text, tokenized with the model's tokenizer; every token is predicted once (windows of maxSeqLen, BOS first)",
    '--json': 'print {"loss", "tokens", "bytes", "bpb", "tokenizer"} as JSON',
    '--backend NAME': `backend to run on (default: the run's, auto for a Hugging Face directory; ${BACKEND_NAMES.join(', ')})`,
  },
  async run(v, pos) {
    if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp eval --help)');
    if (!v.text) throw new OspError('--text FILE is required');
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
