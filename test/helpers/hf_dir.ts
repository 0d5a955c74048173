/**
 * Small Hugging Face Llama checkpoints written the way transformers' save_pretrained lays them out
 * (config.json with LlamaConfig's field names; model.safetensors, or model-0000i-of-0000N.safetensors
 * shards and model.safetensors.index.json), for tests that read models made elsewhere. Nothing here
 * uses src/: the safetensors bytes (8-byte LE header length, JSON header padded to 8 bytes, data) and
 * the f16/bf16 roundings are written from the formats' definitions, so the reader is checked against an
 * independent writer. The weights are returned as the float64 values actually stored (after rounding
 * to the file's dtype), ready for the float64 Llama of llama64.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Llama64Config, Weights } from './llama64.ts';
import { rng } from './prng.ts';

export interface HfDirSpec {
  vocabSize?: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Default numHeads. */
  numKvHeads?: number;
  /** Written as head_dim when given (default hiddenSize / numHeads, and head_dim absent from config.json). */
  headDim?: number;
  intermediateSize: number;
  maxSeqLen: number;
  /** Default 10000. */
  ropeTheta?: number;
  /** Default 1e-6. */
  normEps?: number;
  tie?: boolean;
  dtype: 'f32' | 'f16' | 'bf16';
  /** 1 (default): model.safetensors; more: that many shards and model.safetensors.index.json. */
  shards?: number;
  seed: number;
  /** Fields merged into config.json last (an override, or `undefined` to remove a field). */
  config?: Record<string, unknown>;
  /** Tensors left out of the files. */
  drop?: string[];
  /** Extra tensors written after the model's (float32 values, stored in the checkpoint's dtype). */
  extra?: Record<string, { shape: number[]; data: ArrayLike<number> }>;
}

export interface HfDir {
  dir: string;
  /** The model for llama64 (plain Llama: RMSNorm, no EmbProj). */
  config64: Llama64Config;
  maxSeqLen: number;
  /** Every tensor as stored (rounded to the dtype), as float64. */
  weights: Weights;
  /** Parameter count of the model (the tensors llama64 reads). */
  numParams: number;
  /** Files written, relative to dir. */
  files: string[];
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round half to even of a non-negative number. */
function roundEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** IEEE binary16 bits of a (finite, float32) value, round to nearest even, computed in float64 arithmetic. */
export function f16Bits(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a < 2 ** -14) return sign | roundEven(a / 2 ** -24); // subnormal; 1024 = the smallest normal, also correct
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits of a value: the upper 16 bits of its float32, rounded to nearest even on the lower 16. */
export function bf16Bits(v: number): number {
  f32[0] = v;
  const bits = u32[0]!;
  let upper = bits >>> 16;
  const lower = bits & 0xffff;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) upper++;
  return upper & 0xffff;
}

function bf16Value(h: number): number {
  u32[0] = (h << 16) >>> 0;
  return f32[0]!;
}

/** The bytes of values stored as `dtype`, and the values as stored. */
function encode(values: ArrayLike<number>, dtype: HfDirSpec['dtype']): { bytes: Uint8Array; stored: Float64Array } {
  const n = values.length;
  const stored = new Float64Array(n);
  if (dtype === 'f32') {
    const bytes = new Uint8Array(4 * n);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) {
      view.setFloat32(4 * i, values[i]!, true);
      stored[i] = view.getFloat32(4 * i, true);
    }
    return { bytes, stored };
  }
  const bytes = new Uint8Array(2 * n);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) {
    const v = Math.fround(values[i]!);
    const h = dtype === 'f16' ? f16Bits(v) : bf16Bits(v);
    view.setUint16(2 * i, h, true);
    stored[i] = dtype === 'f16' ? f16Value(h) : bf16Value(h);
  }
  return { bytes, stored };
}

/** A safetensors file: u64 LE header length, the JSON header (space-padded to 8 bytes), the data. */
export function safetensorsBytes(tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const head = Buffer.from(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const t of tensors) {
    out.set(t.bytes, pos);
    pos += t.bytes.length;
  }
  return out;
}

/**
 * Writes a random Llama as a Hugging Face directory. The weights are scaled so the model is far from
 * uniform (logits of order one), and channel 3 of the embedding is 4x larger than the rest (std 1.2 against 0.3): a massive
 * activation, so the outlier statistics have something to measure.
 */
export function writeHfDir(dir: string, spec: HfDirSpec): HfDir {
  const V = spec.vocabSize ?? 258;
  const d = spec.hiddenSize;
  const kv = spec.numKvHeads ?? spec.numHeads;
  const hd = spec.headDim ?? d / spec.numHeads;
  const I = spec.intermediateSize;
  const dtype = spec.dtype;
  const rand = rng(spec.seed);
  const normal = (std: number) => {
    const u = Math.max(rand(), 1e-12);
    return std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
  const names: { name: string; shape: number[]; make: (i: number) => number }[] = [];
  const mat = (name: string, rows: number, cols: number, gain = 1) =>
    names.push({ name, shape: [rows, cols], make: () => normal(gain / Math.sqrt(cols)) });
  const vec = (name: string) => names.push({ name, shape: [d], make: () => 1 + normal(0.1) });
  names.push({ name: 'model.embed_tokens.weight', shape: [V, d], make: (i) => normal(i % d === 3 ? 1.2 : 0.3) });
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}`;
    vec(`${p}.input_layernorm.weight`);
    mat(`${p}.self_attn.q_proj.weight`, spec.numHeads * hd, d, 2);
    mat(`${p}.self_attn.k_proj.weight`, kv * hd, d, 2);
    mat(`${p}.self_attn.v_proj.weight`, kv * hd, d);
    mat(`${p}.self_attn.o_proj.weight`, d, spec.numHeads * hd, 0.5);
    vec(`${p}.post_attention_layernorm.weight`);
    mat(`${p}.mlp.gate_proj.weight`, I, d);
    mat(`${p}.mlp.up_proj.weight`, I, d);
    mat(`${p}.mlp.down_proj.weight`, d, I, 0.5);
  }
  vec('model.norm.weight');
  if (!spec.tie) mat('lm_head.weight', V, d, 2);

  const weights: Weights = new Map();
  const tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[] = [];
  const DT = { f32: 'F32', f16: 'F16', bf16: 'BF16' }[dtype];
  let numParams = 0;
  for (const t of names) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => t.make(i));
    const { bytes, stored } = encode(values, dtype);
    weights.set(t.name, stored);
    numParams += n;
    if (!spec.drop?.includes(t.name)) tensors.push({ name: t.name, dtype: DT, shape: t.shape, bytes });
  }
  for (const [name, t] of Object.entries(spec.extra ?? {})) {
    tensors.push({ name, dtype: DT, shape: t.shape, bytes: encode(t.data, dtype).bytes });
  }

  mkdirSync(dir, { recursive: true });
  const config: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 256,
    eos_token_id: 257,
    ...(spec.headDim !== undefined ? { head_dim: spec.headDim } : {}),
    hidden_act: 'silu',
    hidden_size: d,
    initializer_range: 0.02,
    intermediate_size: I,
    max_position_embeddings: spec.maxSeqLen,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: spec.numHeads,
    num_hidden_layers: spec.numLayers,
    num_key_value_heads: kv,
    pretraining_tp: 1,
    rms_norm_eps: spec.normEps ?? 1e-6,
    rope_scaling: null,
    rope_theta: spec.ropeTheta ?? 10000,
    tie_word_embeddings: spec.tie ?? false,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
    transformers_version: '4.46.0',
    use_cache: true,
    vocab_size: V,
  };
  for (const [k, v] of Object.entries(spec.config ?? {})) {
    if (v === undefined) delete config[k];
    else config[k] = v;
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');

  const shards = spec.shards ?? 1;
  const files: string[] = ['config.json'];
  if (shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
    files.push('model.safetensors');
  } else {
    const per = Math.ceil(tensors.length / shards);
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) {
        weightMap[t.name] = file;
        total += t.bytes.length;
      }
      writeFileSync(join(dir, file), safetensorsBytes(part));
      files.push(file);
    }
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
    );
    files.push('model.safetensors.index.json');
  }
  const config64: Llama64Config = {
    vocabSize: V,
    hiddenSize: d,
    numLayers: spec.numLayers,
    numHeads: spec.numHeads,
    numKvHeads: kv,
    headDim: hd,
    intermediateSize: I,
    ropeTheta: spec.ropeTheta ?? 10000,
    normEps: spec.normEps ?? 1e-6,
    embproj: false,
    tie: spec.tie ?? false,
  };
  return { dir, config64, maxSeqLen: spec.maxSeqLen, weights, numParams, files };
}
