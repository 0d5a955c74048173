/**
 * `osp eval` as a library call: a model's mean next-token loss over a text file's tokens (windows as
 * textWindows in data/text.ts, BOS as the run was trained). The model is any source openModelSource
 * reads: an osp-lab checkpoint or run directory, or a Hugging Face Llama directory. Starts the backend,
 * loads the weights, evaluates, and stops the backend again.
 */
import { startBackend, stopBackend } from '../backend/index.ts';
import { readTextFile, textTokens } from '../data/text.ts';
import { checkTokensFit, openModelSource, sourceTokenizer, sourceBackend, sourceModel } from './source.ts';
import { evaluateTokens, type TextEvalResult } from './text.ts';

export interface EvaluateCheckpointOptions {
  /**
   * A checkpoint directory (runs/NAME/checkpoints/step_...), a run directory (its newest checkpoint), or a
   * Hugging Face Llama directory (config.json + model.safetensors or model.safetensors.index.json).
   */
  checkpoint: string;
  /** A UTF-8 text file; every token (the model's tokenizer) is predicted once. */
  text: string;
  /** Backend to run on (default: the run's; 'auto' for a Hugging Face directory). */
  backend?: string;
}

export interface EvaluateCheckpointResult extends TextEvalResult {
  /** The directory that was evaluated (a run directory resolves to its newest checkpoint). */
  checkpoint: string;
  /** 'osp' (an osp-lab checkpoint) or 'hf' (a Hugging Face directory). */
  kind: 'osp' | 'hf';
  /** The tokenizer the text was read with ('bytes', 'gpt2' or a tokenizer.json path). */
  tokenizer: string;
  /** The checkpoint's training step (osp-lab checkpoints only). */
  step?: number;
}

/**
 * Mean next-token loss (nats per token; per byte with the byte tokenizer), bits per byte and the number
 * of predicted tokens of a model on a text file: what `osp eval` prints. The text is tokenized with the
 * model's tokenizer (the run's; a Hugging Face directory's tokenizer.json), BOS first; a Hugging Face
 * model's windows have no BOS per row (osp-lab's default).
 *
 * @example
 *   const r = await evaluateCheckpoint({ checkpoint: 'runs/tiny', text: 'README.md', backend: 'cpu' });
 *   console.log(`${r.checkpoint}: loss ${r.loss.toFixed(4)}, bpb ${r.bpb.toFixed(4)} over ${r.tokens} tokens`);
 */
export async function evaluateCheckpoint(o: EvaluateCheckpointOptions): Promise<EvaluateCheckpointResult> {
  const text = readTextFile(o.text); // a bad text file fails before any model is read
  const source = openModelSource(o.checkpoint);
  const tokenizer = sourceTokenizer(source);
  const tokens = textTokens(text, tokenizer);
  checkTokensFit(source, tokens);
  await startBackend(sourceBackend(source, o.backend));
  try {
    const model = sourceModel(source);
    try {
      const r = await evaluateTokens(model, tokens, source.bos, tokenizer);
      return {
        checkpoint: source.dir,
        kind: source.kind,
        tokenizer: tokenizer.spec,
        ...(source.step !== undefined ? { step: source.step } : {}),
        ...r,
      };
    } finally {
      model.dispose();
    }
  } finally {
    await stopBackend();
  }
}
