/**
 * The quantization setting of an evaluation (`quant` config section, `osp quant-eval` flags): bit
 * widths, the weight quantizer (`method`), the rotation applied before quantizing (`rotate`), and the
 * conventions that make a "W4A4KV4" number mean what it means in the OSP paper and in QuaRot.
 *
 * `method` and `rotate` may each list several values; every combination is one variant, evaluated on
 * the same batches and reported under its own tag (`w4a4kv4_gptq_quarot`). A tag names every choice that
 * changes the number, so numbers of different settings cannot be confused: tags of osp-lab before 0.2
 * (`w4a4kv4`, `w4a4kv4_had`: RTN, keys quantized without the Q/K rotation, plain min/max ranges) carry
 * no method and are read as such by the report.
 */
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';

const BITS = [4, 8, 16] as const;

export const QUANT_METHODS = ['rtn', 'gptq'] as const;
export type QuantMethod = (typeof QUANT_METHODS)[number];

/**
 * none       no rotation
 * ffn        FFN Had: down_proj's input rotated online by the exact Hadamard of the full intermediate width
 * ffn-block  the same with the block-diagonal Hadamard of osp-lab < 0.2 (largest power-of-two block)
 * quarot     QuaRot: norms folded, residual stream rotated by a random Hadamard, online FFN Had
 */
export const QUANT_ROTATIONS = ['none', 'ffn', 'ffn-block', 'quarot'] as const;
export type QuantRotation = (typeof QUANT_ROTATIONS)[number];

/** One value or a non-empty list of them; always a list (without repeats) after parsing. */
function oneOrMore<const T extends readonly [string, ...string[]]>(values: T) {
  const e = z.enum(values);
  return z.union([e, z.array(e).min(1)]).transform((v) => [...new Set(Array.isArray(v) ? v : [v])]);
}

export const GptqConfigSchema = z.strictObject({
  dampPercent: z
    .number()
    .min(0)
    .max(1)
    .default(0.01)
    .describe("Damping added to the Hessian diagonal, as a fraction of its mean (GPTQ's percdamp)."),
  blockSize: z.number().int().min(1).default(128).describe('Columns per lazy-update block (speed only; the result does not depend on it).'),
  actOrder: z.boolean().default(false).describe("Quantize columns by decreasing Hessian diagonal (GPTQ's act-order / desc_act)."),
  calibrationWindows: z
    .number()
    .int()
    .min(1)
    .default(128)
    .describe('Calibration windows of maxSeqLen tokens from the training data (GPTQ and QuaRot use 128).'),
});

export const QuantConfigSchema = z.strictObject({
  w: z.literal(BITS).default(4).describe('Weight bits of the block linear layers; 16 = full precision (off).'),
  a: z.literal(BITS).default(4).describe('Activation bits at the inputs of the block linear layers; 16 = off.'),
  kv: z.literal(BITS).default(4).describe('KV-cache bits (keys after RoPE, values); 16 = off.'),
  groupSize: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("Weight group size along the input dimension; absent = one scale per output channel (OSP's setting)."),
  clipSearch: z.boolean().default(true).describe("MSE clip search for the weight scales (QuaRot's grid 100, maxshrink 0.8, norm 2.4)."),
  method: oneOrMore(QUANT_METHODS)
    .default(['rtn'])
    .describe('Weight quantizer(s): round-to-nearest, or GPTQ on calibration windows of the training data.'),
  rotate: oneOrMore(QUANT_ROTATIONS)
    .default(['none'])
    .describe('Rotation(s) applied before quantizing: none, ffn, ffn-block, quarot (see QUANT_ROTATIONS).'),
  qkRotate: z
    .boolean()
    .default(true)
    .describe(
      'Rotate queries and keys per head by a Hadamard matrix after RoPE and quantize the rotated keys, as the OSP paper, QuaRot and SpinQuant do (scores are unchanged in full precision). Only matters when kv < 16.',
    ),
  zeroInRange: z.boolean().default(true).describe("Activation and KV ranges include 0 (QuaRot's convention); false = plain min/max."),
  gptq: GptqConfigSchema.prefault({}).describe("GPTQ's settings (method 'gptq')."),
  quarotSeed: z.number().int().min(0).default(0).describe("Seed of QuaRot's random Hadamard signs."),
  had: z
    .boolean()
    .optional()
    .describe("osp-lab < 0.2: true = also evaluate rotate 'ffn-block'. Kept so that older run configs still load."),
});

export type QuantConfigInput = z.input<typeof QuantConfigSchema>;
export type QuantConfig = z.output<typeof QuantConfigSchema>;

/**
 * Validates a (partial) quantization config; missing fields take their defaults (4-4-4 RTN, clip search,
 * Q/K rotation, ranges including 0).
 * @example resolveQuantConfig({ method: ['rtn', 'gptq'], rotate: 'quarot' }).method // ['rtn', 'gptq']
 */
export function resolveQuantConfig(input: unknown = {}, prefix = 'quant'): QuantConfig {
  return parseConfig(QuantConfigSchema, input, prefix);
}

/** One evaluated combination of a weight quantizer and a rotation. */
export interface QuantVariant {
  method: QuantMethod;
  rotate: QuantRotation;
  /** Metric tag, e.g. `w4a4kv4_gptq_quarot`. */
  tag: string;
  /** In words, e.g. `W4A4KV4 QuaRot + GPTQ`. */
  name: string;
}

const ROTATE_TAG: Record<QuantRotation, string> = { none: '', ffn: '_ffnhad', 'ffn-block': '_ffnhadblock', quarot: '_quarot' };

/**
 * The variants a config asks for, in the order method x rotate (rotation fastest). The legacy
 * `had: true` adds 'ffn-block'.
 * @example quantVariants(resolveQuantConfig({ method: ['rtn', 'gptq'], rotate: ['none', 'quarot'] })).map((v) => v.tag)
 *   // ['w4a4kv4_rtn', 'w4a4kv4_rtn_quarot', 'w4a4kv4_gptq', 'w4a4kv4_gptq_quarot']
 */
export function quantVariants(cfg: QuantConfig): QuantVariant[] {
  const rotations = [...cfg.rotate];
  if (cfg.had && !rotations.includes('ffn-block')) rotations.push('ffn-block');
  const out: QuantVariant[] = [];
  for (const method of cfg.method) {
    for (const rotate of rotations) {
      const tag = variantTag(cfg, method, rotate);
      out.push({ method, rotate, tag, name: quantTagName(tag) });
    }
  }
  return out;
}

function variantTag(cfg: QuantConfig, method: QuantMethod, rotate: QuantRotation): string {
  let tag = `w${cfg.w}a${cfg.a}kv${cfg.kv}_${method}${ROTATE_TAG[rotate]}`;
  if (cfg.kv < 16 && !cfg.qkRotate) tag += '_noqk';
  if ((cfg.a < 16 || cfg.kv < 16) && !cfg.zeroInRange) tag += '_minmax';
  if (cfg.w < 16 && cfg.groupSize !== undefined) tag += `_g${cfg.groupSize}`;
  if (cfg.w < 16 && !cfg.clipSearch) tag += '_noclip';
  if (cfg.w < 16 && method === 'gptq' && cfg.gptq.actOrder) tag += '_actorder';
  return tag;
}

/**
 * A quantization tag in words, for tables and plot legends; tags of osp-lab < 0.2 are marked as such.
 * @example quantTagName('w4a4kv4_gptq_quarot') // 'W4A4KV4 QuaRot + GPTQ'
 * @example quantTagName('w4a4kv4_had') // 'W4A4KV4 v0.1 RTN + FFN Had (block-diagonal, keys unrotated, min/max ranges)'
 */
export function quantTagName(tag: string): string {
  const m = /^w(\d+)a(\d+)kv(\d+)(?:_(.*))?$/.exec(tag);
  if (!m) return tag;
  const bits = `W${m[1]}A${m[2]}KV${m[3]}`;
  const parts = m[4] ? m[4].split('_') : [];
  if (!parts.includes('rtn') && !parts.includes('gptq')) {
    // osp-lab < 0.2: RTN, raw post-RoPE keys, min/max ranges, block-diagonal FFN Had.
    const had = parts.includes('had') ? ' + FFN Had (block-diagonal, ' : ' (';
    return `${bits} v0.1 RTN${had}keys unrotated, min/max ranges)`;
  }
  const gptq = parts.includes('gptq');
  let name: string;
  if (parts.includes('quarot')) name = gptq ? 'QuaRot + GPTQ' : 'QuaRot';
  else {
    name = gptq ? 'GPTQ' : 'RTN';
    if (parts.includes('ffnhad')) name += ' + FFN Had';
    if (parts.includes('ffnhadblock')) name += ' + FFN Had (block-diagonal)';
  }
  const notes: string[] = [];
  if (parts.includes('noqk')) notes.push('keys unrotated');
  if (parts.includes('minmax')) notes.push('min/max ranges');
  for (const p of parts) if (/^g\d+$/.test(p)) notes.push(`weight groups of ${p.slice(1)}`);
  if (parts.includes('noclip')) notes.push('no clip search');
  if (parts.includes('actorder')) notes.push('act-order');
  return `${bits} ${name}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}
