/**
 * The downstream quantizer's own number: a GGUF file's mean next-token loss and perplexity on a token
 * stream, computed by llama.cpp itself (node-llama-cpp's CPU build), over exactly the windows `osp eval`
 * uses (textWindows: at most maxSeqLen + 1 tokens, overlapping by one, each window a fresh context), so
 * the f32 export's number equals `osp eval`'s and a Q4_0 export's number is llama.cpp's Q4_0 kernels' loss.
 *
 * node-llama-cpp is an optional dependency (it ships llama.cpp prebuilt for common platforms); without
 * it this module throws an OspError saying how to install it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { ControlledEvaluateInputItem, LlamaModel, Token } from 'node-llama-cpp';
import { FormatError, OspError } from '../errors.ts';
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

async function loadLlamaCpp(): Promise<typeof import('node-llama-cpp')> {
  try {
    return await import('node-llama-cpp');
  } catch (e) {
    throw new OspError(
      `llama.cpp evaluation needs the node-llama-cpp package (npm install node-llama-cpp), which could not be loaded: ${(e as Error).message}`,
    );
  }
}

/** Runs `fn` with the GGUF model at `path` loaded in llama.cpp (CPU), and releases everything after. */
async function withLlamaModel<T>(path: string, fn: (model: LlamaModel) => Promise<T>): Promise<T> {
  // llama.cpp's own errors for these are stack traces; say what is wrong instead (reading 4 bytes only).
  const head = Buffer.alloc(4);
  try {
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new FormatError(path, `GGUF file: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (head.toString('latin1') !== 'GGUF')
    throw new FormatError(path, `not a GGUF file (it starts with ${JSON.stringify(head.toString('latin1'))}, not "GGUF")`);
  const lib = await loadLlamaCpp();
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
  try {
    const model = await llama.loadModel({ modelPath: path });
    try {
      return await fn(model);
    } finally {
      await model.dispose();
    }
  } finally {
    await llama.dispose();
  }
}

/** Mean next-token loss of a loaded model over textWindows(tokens, maxSeqLen, bos). */
async function windowsLoss(model: LlamaModel, tokens: Uint16Array, maxSeqLen: number, opts: LlamaCppOptions): Promise<LlamaCppResult> {
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
  return withLlamaModel(path, (model) => windowsLoss(model, tokens, maxSeqLen, opts));
}

/** llama.cpp's evaluation of a text with its own tokenizer (`osp eval FILE.gguf`). */
export interface LlamaCppTextResult extends LlamaCppResult {
  /** The ids llama.cpp's tokenizer gives the text (without BOS); compare them with osp-lab's. */
  ids: number[];
  /** Bytes of the text (UTF-8): bits per byte = loss * tokens / ln 2 / bytes. */
  bytes: number;
  bpb: number;
  /** The window length: the GGUF's context length (llama.context_length, the model's maxSeqLen). */
  contextLength: number;
}

/**
 * A GGUF model's loss on a text, everything done by llama.cpp: its tokenizer (the vocabulary the GGUF
 * carries) turns the text into ids, BOS first, and the windows are osp eval's (textWindows over the
 * GGUF's context length, no BOS per row). On an osp-lab export of a run without `batch.bos` this gives
 * `osp eval`'s tokens and loss (a GGUF does not record that rows began with BOS).
 * @example const r = await llamaCppEvalText('model-f32.gguf', readFileSync('val.txt', 'utf8'));
 */
export async function llamaCppEvalText(path: string, text: string, opts: { threads?: number } = {}): Promise<LlamaCppTextResult> {
  return withLlamaModel(path, async (model) => {
    const ids = model.tokenize(text, false).map(Number);
    const bos = model.tokens.bos;
    if (bos === null)
      throw new OspError(`${path}: the GGUF has no BOS token (tokenizer.ggml.bos_token_id); osp-lab's evaluation starts with one`);
    const tokens = Uint16Array.from([bos, ...ids]);
    if (ids.some((id) => id > 0xffff)) throw new OspError(`${path}: token ids above 65535 (osp-lab's limit)`);
    const contextLength = model.trainContextSize;
    const r = await windowsLoss(model, tokens, contextLength, opts);
    const bytes = Buffer.byteLength(text);
    return { ...r, ids, bytes, bpb: (r.loss * r.tokens) / Math.LN2 / Math.max(bytes, 1), contextLength };
  });
}
