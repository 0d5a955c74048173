/**
 * The downstream quantizer's own number: a GGUF file's mean next-token loss and perplexity on a token
 * stream, computed by llama.cpp itself (node-llama-cpp's CPU build), over exactly the windows `osp eval`
 * uses (textWindows: at most maxSeqLen + 1 tokens, overlapping by one, each window a fresh context), so
 * the f32 export's number equals `osp eval`'s and a Q4_0 export's number is llama.cpp's Q4_0 kernels' loss.
 *
 * node-llama-cpp is an optional dependency (it ships llama.cpp prebuilt for common platforms); without
 * it this module throws an OspError saying how to install it.
 */
import { availableParallelism } from 'node:os';
import type { ControlledEvaluateInputItem, Token } from 'node-llama-cpp';
import { OspError } from '../errors.ts';
import { textWindows } from '../data/text.ts';

export interface LlamaCppResult {
  /** Mean next-token cross-entropy (nats) over all predicted tokens. */
  loss: number;
  perplexity: number;
  /** Tokens predicted. */
  tokens: number;
}

export interface LlamaCppOptions {
  /** llama.cpp threads (default: all cores). */
  threads?: number;
  /** Start every window with this token, as a run trained with `batch.bos` (textWindows). */
  bos?: number;
}

/**
 * Evaluates `tokens` (BOS first, as readTextTokens returns them) with the GGUF model at `path`.
 * @example const r = await llamaCppPerplexity('model-q4_0.gguf', readTextTokens('val.txt'), 128);
 */
export async function llamaCppPerplexity(
  path: string,
  tokens: Uint16Array,
  maxSeqLen: number,
  opts: LlamaCppOptions = {},
): Promise<LlamaCppResult> {
  let lib: typeof import('node-llama-cpp');
  try {
    lib = await import('node-llama-cpp');
  } catch (e) {
    throw new OspError(
      `llama.cpp evaluation needs the node-llama-cpp package (npm install node-llama-cpp), which could not be loaded: ${(e as Error).message}`,
    );
  }
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
  try {
    const model = await llama.loadModel({ modelPath: path });
    try {
      const threads = opts.threads ?? Math.max(1, availableParallelism());
      // One slot more than a window: a context exactly as long as the window is full after its last token,
      // and node-llama-cpp then shifts it (drops early tokens) before that token's logits, so the window's
      // last predictions would see a truncated context (measured: 0.04 nats on a 64-token window).
      const ctx = await model.createContext({ contextSize: maxSeqLen + 1, batchSize: maxSeqLen, threads });
      try {
        const seq = ctx.getSequence();
        let nats = 0;
        let count = 0;
        for (const w of textWindows(tokens, maxSeqLen, opts.bos)) {
          await seq.clearHistory();
          const input: ControlledEvaluateInputItem[] = Array.from(w.inputs, (t) => [t as Token, { generateNext: { probabilities: true } }]);
          const out = await seq.controlledEvaluate(input);
          for (let i = 0; i < w.seqLen; i++) {
            const p = out[i]?.next.probabilities?.get(w.targets[i]! as Token) ?? 0;
            // A probability that underflows to 0 in llama.cpp's float32 softmax counts as e^-104 (float32's
            // smallest normal); it cannot be larger than that and still round to 0.
            nats -= Math.log(Math.max(p, 1.1754943508222875e-38));
            count++;
          }
        }
        const loss = nats / count;
        return { loss, perplexity: Math.exp(loss), tokens: count };
      } finally {
        await ctx.dispose();
      }
    } finally {
      await model.dispose();
    }
  } finally {
    await llama.dispose();
  }
}
