/**
 * Folding OSP's modules into a plain Llama, so quantizers and llama.cpp see a model they know:
 *
 * - SSNorm's scalar g becomes a per-channel weight vector filled with g (exactly equivalent).
 * - EmbProj's first matrix merges into the embedding: x0 = P1 E[t], so E' = E P1^T (row t: P1 E[t]).
 * - EmbProj's second matrix merges into the head: logits = W (P2 n) = (W P2) n, so W' = W P2.
 *
 * Products are computed in float64 and rounded once to float32. With EmbProj the folded embedding and
 * head differ, so a tied model comes out untied.
 */
import type { ModelConfig } from '../model/config.ts';
import type { Transformer } from '../model/transformer.ts';

/** Parameters by name, [out, in] layout, row-major values. */
export type Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** Copies a model's parameters to the host (async: WebGPU cannot read synchronously). */
export async function modelWeights(model: Transformer): Promise<Weights> {
  const out: Weights = new Map();
  for (const [name, p] of model.params) out.set(name, { shape: [...p.shape], data: Float32Array.from((await p.data()) as Float32Array) });
  return out;
}

/** a [n, k] times b^T where b is [m, k]: [n, m], float64 accumulation. */
function matmulBT(a: Float32Array, n: number, k: number, b: Float32Array, m: number): Float32Array {
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t]! * b[j * k + t]!;
      out[i * m + j] = s;
    }
  }
  return out;
}

/** a [n, k] times b [k, m]: [n, m], float64 accumulation. */
function matmul(a: Float32Array, n: number, k: number, b: Float32Array, m: number): Float32Array {
  const out = new Float32Array(n * m);
  const row = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t]!;
      for (let j = 0; j < m; j++) row[j]! += av * b[t * m + j]!;
    }
    out.set(row, i * m);
  }
  return out;
}

/**
 * The folded (plain Llama) weights and config of a model with any norm and embedding.
 * Names are Hugging Face Llama's; `lm_head.weight` is present unless the folded model is tied.
 */
export function foldToLlama(config: ModelConfig, weights: Weights): { config: ModelConfig; weights: Weights } {
  const d = config.hiddenSize;
  const V = config.vocabSize;
  const out: Weights = new Map();
  const get = (name: string) => {
    const w = weights.get(name);
    if (!w) throw new Error(`fold: missing parameter '${name}'`);
    return w;
  };
  for (const [name, w] of weights) {
    if (name === 'model.embed_proj.weight' || name === 'model.head_proj.weight') continue;
    if (name.endsWith('norm.weight') && w.data.length === 1) {
      out.set(name, { shape: [d], data: new Float32Array(d).fill(w.data[0]!) });
    } else out.set(name, { shape: [...w.shape], data: Float32Array.from(w.data) });
  }
  const embproj = config.embedding === 'embproj';
  const E = get('model.embed_tokens.weight').data;
  const head = config.tieEmbeddings ? E : get('lm_head.weight').data;
  if (embproj) {
    out.set('model.embed_tokens.weight', { shape: [V, d], data: matmulBT(E, V, d, get('model.embed_proj.weight').data, d) });
    out.set('lm_head.weight', { shape: [V, d], data: matmul(head, V, d, get('model.head_proj.weight').data, d) });
  }
  const tied = config.tieEmbeddings && !embproj;
  if (!tied && !out.has('lm_head.weight')) out.set('lm_head.weight', { shape: [V, d], data: Float32Array.from(head) });
  return { config: { ...config, norm: 'rmsnorm', embedding: 'plain', tieEmbeddings: tied }, weights: out };
}
