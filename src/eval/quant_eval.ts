/**
 * `osp quant-eval` as a library call: a model's full-precision and quantized (W4A4KV4 by default) loss
 * and perplexity on a text file or its run's validation split, for every variant of a quantization
 * setting (quantEval in quant/eval.ts), and optionally llama.cpp's own perplexity of GGUF exports. The
 * model is any source openModelSource reads (an osp-lab checkpoint or run directory, or a Hugging Face
 * Llama directory). quantEvalRows turns the result into the rows of the command's table.
 */
import { startBackend, stopBackend } from '../backend/index.ts';
import { checkChoice, OspError } from '../errors.ts';
import { GGUF_TYPES, type GgufExportType } from '../export/gguf.ts';
import { ggufPerplexity } from './gguf_eval.ts';
import { calibrationFromRunData, calibrationFromTokens, runSplitTokens } from '../quant/calibration.ts';
import { quantEval, resolveQuantConfig, type QuantConfigInput, type QuantEvalResult } from '../quant/eval.ts';
import type { LlamaCppResult } from './llama_cpp.ts';
import { readTextFile, textTokens, textWindows } from '../data/text.ts';
import { checkTokensFit, openModelSource, sourceModel, sourceTokenizer } from './source.ts';

export interface QuantEvalCheckpointOptions {
  /** A checkpoint directory, a run directory (its newest checkpoint), or a Hugging Face Llama directory. */
  checkpoint: string;
  /** The evaluation text, a UTF-8 file (windows of maxSeqLen as in evaluateCheckpoint); give this or `val`. */
  text?: string;
  /** Instead of `text`: the validation split of the checkpoint's run (its data config; osp-lab checkpoints only). */
  val?: boolean;
  /** Evaluate only the first N windows (default: all). */
  windows?: number;
  /** The quantization setting: the run config's `quant` section (defaults: W4A4KV4, RTN, no rotation). */
  quant?: QuantConfigInput;
  /**
   * GGUF types (f32, f16, q8_0, q4_0) to export and evaluate with llama.cpp; with a `quarot` rotation
   * in `quant`, each also residual-rotated. Default none.
   */
  gguf?: readonly string[];
  /**
   * GPTQ calibration text (default: the run's training data; required for a Hugging Face directory, which
   * has none); used only when a variant needs GPTQ.
   */
  calib?: string;
  /** Backend to run on (default 'auto'). */
  backend?: string;
  /** Progress lines (per variant, GPTQ block and llama.cpp export). */
  log?: (line: string) => void;
}

/** llama.cpp's loss and perplexity of one GGUF export. */
export interface GgufEvalResult extends LlamaCppResult {
  type: GgufExportType;
  /** Exported with QuaRot's residual-stream rotation (`osp export --rotate`). */
  rotate: boolean;
}

export interface QuantEvalCheckpointResult extends QuantEvalResult {
  /** The directory that was evaluated (a run directory resolves to its newest checkpoint). */
  checkpoint: string;
  /** 'osp' (an osp-lab checkpoint) or 'hf' (a Hugging Face directory). */
  kind: 'osp' | 'hf';
  /** The checkpoint's training step (osp-lab checkpoints only). */
  step?: number;
  /** The evaluated text: the file's path, or "the run's validation split". */
  text: string;
  /** Tokens predicted. */
  tokens: number;
  /** One entry per GGUF type (and rotation), in the order of `gguf`. */
  gguf: GgufEvalResult[];
}

/**
 * Full-precision vs quantized perplexity of a checkpoint: what `osp quant-eval` prints
 * (`--json` prints this object as it is).
 *
 * @example
 *   const r = await quantEvalCheckpoint({
 *     checkpoint: 'runs/tiny', val: true, windows: 64,
 *     quant: { method: ['rtn', 'gptq'], rotate: ['none', 'quarot'] }, gguf: ['q4_0'],
 *   });
 *   for (const row of quantEvalRows(r)) console.log(row.setting, row.perplexity, row.perplexityRatio);
 */
export async function quantEvalCheckpoint(o: QuantEvalCheckpointOptions): Promise<QuantEvalCheckpointResult> {
  if (!o.text === !o.val) {
    throw new OspError("give the evaluation text: a text file, or val for the run's validation split (not both)");
  }
  if (o.windows !== undefined && !(Number.isSafeInteger(o.windows) && o.windows >= 1)) {
    throw new OspError(`windows: expected a positive integer, got '${String(o.windows)}'`);
  }
  const quant = resolveQuantConfig(o.quant ?? {}, 'quant'); // bad values fail before anything is loaded
  const ggufTypes = (o.gguf ?? []).map((t) => checkChoice('gguf', t, GGUF_TYPES));
  const needsCalibration = quant.w !== 16 && quant.method.includes('gptq');
  // Bad text files fail before any model is read.
  const textFile = o.val ? undefined : readTextFile(o.text!);
  const calibFile = needsCalibration && o.calib !== undefined ? readTextFile(o.calib) : undefined;
  const c = openModelSource(o.checkpoint);
  const data = (c.runConfig as { data?: unknown } | undefined)?.data;
  if (c.kind === 'hf' && o.val) {
    throw new OspError(`${c.dir} is a Hugging Face directory: it has no run and so no validation split; give a text file (--text FILE)`);
  }
  if (c.kind === 'hf' && needsCalibration && o.calib === undefined) {
    throw new OspError(`${c.dir} is a Hugging Face directory: GPTQ needs calibration text (--calib FILE); it has no run's training data`);
  }
  const seqLen = c.config.maxSeqLen;
  const bos = c.bos;
  const tokenizer = sourceTokenizer(c);
  const source = o.val ? `the run's validation split` : o.text!;
  let tokens = o.val ? runSplitTokens(data, c.config.vocabSize, 'val', tokenizer) : textTokens(textFile!, tokenizer);
  checkTokensFit(c, tokens);
  // The first N windows: N * seqLen predicted tokens (windows overlap by one).
  if (o.windows !== undefined) tokens = tokens.subarray(0, Math.min(tokens.length, o.windows * seqLen + 1));
  let calibration;
  if (needsCalibration && o.calib !== undefined) {
    const calib = textTokens(calibFile!, tokenizer);
    checkTokensFit(c, calib);
    calibration = calibrationFromTokens(calib, seqLen, quant.gptq.calibrationWindows, o.calib, bos);
  } else if (needsCalibration) {
    calibration = calibrationFromRunData(data, c.config.vocabSize, seqLen, quant.gptq.calibrationWindows, bos, tokenizer);
  }
  await startBackend(o.backend ?? 'auto');
  let r: QuantEvalResult;
  try {
    const model = sourceModel(c);
    try {
      r = await quantEval(model, textWindows(tokens, seqLen, bos), quant, { calibration, log: o.log });
    } finally {
      model.dispose();
    }
  } finally {
    await stopBackend();
  }
  const gguf: GgufEvalResult[] = [];
  for (const type of ggufTypes) {
    for (const rotate of quant.rotate.includes('quarot') ? [false, true] : [false]) {
      o.log?.(`llama.cpp: ${type}${rotate ? ' with the QuaRot residual rotation' : ''}...`);
      gguf.push({ type, rotate, ...(await ggufPerplexity(c, type, rotate, quant.quarotSeed, tokens, seqLen, bos)) });
    }
  }
  return {
    checkpoint: c.dir,
    kind: c.kind,
    ...(c.step !== undefined ? { step: c.step } : {}),
    text: source,
    tokens: tokens.length - 1,
    ...r,
    gguf,
  };
}

/** One row of `osp quant-eval`'s table. */
export interface QuantEvalRow {
  /** 'full precision', a variant's name (e.g. 'W4A4KV4 QuaRot + GPTQ'), or 'llama.cpp Q4_0[, residual-rotated]'. */
  setting: string;
  loss: number;
  perplexity: number;
  /** perplexity / the full-precision perplexity. */
  perplexityRatio: number;
  /**
   * Half-width of the 95% interval of perplexityRatio over the evaluation windows (paired; the
   * evaluation's sampling error, not seed-to-seed variation); null where there is none (full precision,
   * llama.cpp rows, a single window).
   */
  ratioHalfWidth: number | null;
}

/**
 * The rows of `osp quant-eval`'s table: full precision, each variant, each llama.cpp export.
 * @example for (const row of quantEvalRows(await quantEvalCheckpoint(opts))) console.log(row.setting, row.perplexityRatio);
 */
export function quantEvalRows(r: Pick<QuantEvalCheckpointResult, 'fp' | 'variants' | 'gguf'>): QuantEvalRow[] {
  const rows: QuantEvalRow[] = [
    { setting: 'full precision', loss: r.fp.loss, perplexity: r.fp.perplexity, perplexityRatio: 1, ratioHalfWidth: null },
  ];
  for (const q of r.variants) {
    const se = q.gap.lossStderr;
    rows.push({
      setting: q.name,
      loss: q.quant.loss,
      perplexity: q.quant.perplexity,
      perplexityRatio: q.gap.perplexityRatio,
      ratioHalfWidth: se === null ? null : q.gap.perplexityRatio * (Math.exp(1.96 * se) - 1),
    });
  }
  for (const g of r.gguf) {
    rows.push({
      setting: `llama.cpp ${g.type.toUpperCase()}${g.rotate ? ', residual-rotated' : ''}`,
      loss: g.loss,
      perplexity: g.perplexity,
      perplexityRatio: g.perplexity / r.fp.perplexity,
      ratioHalfWidth: null,
    });
  }
  return rows;
}
