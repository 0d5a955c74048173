/**
 * `osp eval` as a library call: a checkpoint's mean next-token loss over a text file's bytes
 * (windows as textWindows in data/text.ts, BOS as the run was trained). Starts the backend, loads the
 * weights, evaluates, and stops the backend again.
 */
import { startBackend, stopBackend } from '../backend/index.ts';
import { rowBos } from '../data/batcher.ts';
import { resolveModelConfig } from '../model/config.ts';
import { Transformer } from '../model/transformer.ts';
import { loadModelWeights, openCheckpoint } from '../train/checkpoint.ts';
import { Rng } from '../utils/rng.ts';
import { readTextTokens } from '../data/text.ts';
import { evaluateTokens, type TextEvalResult } from './text.ts';

export interface EvaluateCheckpointOptions {
  /** A checkpoint directory (runs/NAME/checkpoints/step_...) or a run directory (its newest checkpoint). */
  checkpoint: string;
  /** A UTF-8 text file; every byte is predicted once. */
  text: string;
  /** Backend to run on (default: the run's). */
  backend?: string;
}

export interface EvaluateCheckpointResult extends TextEvalResult {
  /** The checkpoint directory that was evaluated (a run directory resolves to its newest checkpoint). */
  checkpoint: string;
  /** Its training step. */
  step: number;
}

/**
 * Mean next-token loss (nats per byte), bits per byte and the number of predicted bytes of a
 * checkpoint on a text file: what `osp eval` prints.
 *
 * @example
 *   const r = await evaluateCheckpoint({ checkpoint: 'runs/tiny', text: 'README.md', backend: 'cpu' });
 *   console.log(`${r.checkpoint}: loss ${r.loss.toFixed(4)}, bpb ${r.bpb.toFixed(4)} over ${r.tokens} bytes`);
 */
export async function evaluateCheckpoint(o: EvaluateCheckpointOptions): Promise<EvaluateCheckpointResult> {
  const tokens = readTextTokens(o.text);
  const { dir, checkpoint } = openCheckpoint(o.checkpoint);
  const runConfig = checkpoint.state.config as { model: unknown; backend: string; batch?: { bos?: boolean } };
  await startBackend(o.backend ?? runConfig.backend);
  const model = new Transformer(resolveModelConfig(runConfig.model), new Rng(0));
  try {
    loadModelWeights(model, checkpoint.model, `${dir}/model.safetensors`);
    const r = await evaluateTokens(model, tokens, rowBos(runConfig));
    return { checkpoint: dir, step: checkpoint.state.step, ...r };
  } finally {
    model.dispose();
    await stopBackend();
  }
}
