/**
 * The model's configuration: a zod schema with a documented default for every field. Defaults are a
 * plain Llama (RMSNorm, plain embedding); configs/ choose the OSP modules by name.
 */
import { z } from 'zod';
import { parseConfig, zInt as int } from '../utils/parse_config.ts';
import { NORMS } from './norms.ts';
import { EMBEDDINGS } from './embeddings.ts';

/** The fields as written in a config; ModelConfigSchema adds the checks across fields and the derived sizes. */
const ModelFieldsSchema = z.strictObject({
  vocabSize: int(2)
    .default(258)
    .describe(
      "Vocabulary size; in a run config it follows `tokenizer` unless set (then it must be at least the tokenizer's). 258 = bytes: 256 byte tokens + BOS + EOS.",
    ),
  hiddenSize: int(1).default(128).describe('Width d of the residual stream.'),
  numLayers: int(1).default(4).describe('Number of transformer blocks.'),
  numHeads: int(1).default(4).describe('Attention (query) heads.'),
  numKvHeads: int(1).optional().describe('Key/value heads (grouped-query attention); defaults to numHeads (plain multi-head attention).'),
  headDim: int(2).optional().describe('Per-head width; defaults to hiddenSize / numHeads.'),
  intermediateSize: int(1)
    .optional()
    .describe("SwiGLU inner width; defaults to 8/3 * hiddenSize rounded up to a multiple of 32 (Llama's rule)."),
  maxSeqLen: int(1).default(256).describe('Longest sequence the model accepts (RoPE tables are built for it).'),
  ropeTheta: z.number().positive().default(10000).describe('RoPE base (Hugging Face rotate_half convention).'),
  normEps: z.number().positive().default(1e-6).describe("Epsilon inside every norm's rsqrt (OSP's SSNorm uses 1e-6)."),
  norm: z
    .enum(Object.keys(NORMS) as [keyof typeof NORMS, ...(keyof typeof NORMS)[]])
    .default('rmsnorm')
    .describe("Every norm in the model: a name of the norm registry (model/norms.ts), e.g. 'rmsnorm' (Llama) or 'ssnorm' (OSP)."),
  embedding: z
    .enum(Object.keys(EMBEDDINGS) as [keyof typeof EMBEDDINGS, ...(keyof typeof EMBEDDINGS)[]])
    .default('plain')
    .describe(
      "A name of the embedding registry (model/embeddings.ts): 'plain', or 'embproj' (OSP: d x d projections after the embedding and before the head).",
    ),
  tieEmbeddings: z.boolean().default(false).describe('Share the token embedding with the LM head (lm_head.weight is then absent).'),
  initStd: z.number().positive().default(0.02).describe('Std of the normal init of embedding and linear weights.'),
});

/**
 * The `model` section: the fields, their checks across fields, and the derived sizes (headDim,
 * numKvHeads, intermediateSize) filled in, so that a validated config is complete.
 */
export const ModelConfigSchema = ModelFieldsSchema.transform((c, ctx) => {
  const fail = (field: string, message: string) => {
    ctx.addIssue({ code: 'custom', path: [field], message, input: c[field as keyof typeof c] });
    return z.NEVER;
  };
  if (c.headDim === undefined && c.hiddenSize % c.numHeads !== 0) {
    return fail(
      'numHeads',
      `hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}; choose numHeads dividing ` +
        `${c.hiddenSize} or set headDim explicitly`,
    );
  }
  const headDim = c.headDim ?? c.hiddenSize / c.numHeads;
  if (headDim % 2 !== 0) return fail('headDim', `RoPE needs an even head width, got ${headDim}`);
  const numKvHeads = c.numKvHeads ?? c.numHeads;
  if (c.numHeads % numKvHeads !== 0) {
    return fail(
      'numKvHeads',
      `numHeads ${c.numHeads} must be a multiple of numKvHeads ${numKvHeads} (each key/value head serves a group of query heads)`,
    );
  }
  const intermediateSize = c.intermediateSize ?? Math.ceil((8 * c.hiddenSize) / 3 / 32) * 32;
  return { ...c, headDim, numKvHeads, intermediateSize };
});

export type ModelConfigInput = z.input<typeof ModelConfigSchema>;

/** A validated model config with every derived size filled in. */
export type ModelConfig = z.output<typeof ModelConfigSchema>;

/**
 * Validates a model config (a partial object; defaults fill the rest) and derives the optional sizes.
 * Throws ConfigError naming the field for unknown keys, wrong types and inconsistent sizes.
 */
export function resolveModelConfig(input: unknown = {}, prefix = 'model'): ModelConfig {
  return parseConfig(ModelConfigSchema, input, prefix);
}
