/**
 * An independent float64 Llama forward pass written with plain loops: the oracle for the tfjs model.
 * It shares no code with src/model; it follows the Hugging Face LlamaForCausalLM definition
 * (rotate_half RoPE, repeat_kv grouping, SwiGLU, pre-norm) plus OSP's SSNorm (scalar weights),
 * EmbProj (x0 = P1 e, logits = W (P2 n)) and, with `layerNorm`, PyTorch's LayerNorm in place of RMSNorm
 * (mean removed, biased variance; a '<prefix>.bias' when the weights hold one).
 */

export interface Llama64Config {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  ropeTheta: number;
  normEps: number;
  embproj: boolean;
  tie: boolean;
  /** Every norm is a LayerNorm (nn.LayerNorm over the last dim) instead of an RMSNorm. */
  layerNorm?: boolean;
}

export type Weights = Map<string, Float64Array>;

/** y[N, out] = x[N, in] W^T with W [out, in]. */
function linear(x: Float64Array, n: number, inDim: number, w: Float64Array, outDim: number): Float64Array {
  const y = new Float64Array(n * outDim);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i]! * w[o * inDim + i]!;
      y[r * outDim + o] = s;
    }
  }
  return y;
}

/** Per-row RMS norm (weight of length d or 1); with `centre`, LayerNorm (row mean removed first, then + bias). */
function norm(x: Float64Array, n: number, d: number, w: Float64Array, eps: number, centre = false, bias?: Float64Array): Float64Array {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    if (centre) for (let i = 0; i < d; i++) mean += x[r * d + i]! / d;
    let ms = 0;
    for (let i = 0; i < d; i++) ms += (x[r * d + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(ms / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i]! - mean) * inv * (w.length === 1 ? w[0]! : w[i]!) + (bias ? bias[i]! : 0);
  }
  return y;
}

/** In-place RoPE on [T, heads*hd] rows of one sequence (rotate_half pairs j, j + hd/2). */
function rope(x: Float64Array, T: number, heads: number, hd: number, theta: number): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const base = t * heads * hd + h * hd;
      for (let j = 0; j < half; j++) {
        const a = t / theta ** ((2 * j) / hd);
        const x1 = x[base + j]!;
        const x2 = x[base + j + half]!;
        x[base + j] = x1 * Math.cos(a) - x2 * Math.sin(a);
        x[base + j + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  }
}

export interface Llama64Output {
  logits: Float64Array; // [B*T, V]
  hidden: Map<string, Float64Array>; // taps, [B*T, d]
}

/** tokens: B sequences of length T. */
export function llama64(c: Llama64Config, w: Weights, tokens: number[][]): Llama64Output {
  const W = (name: string) => {
    const v = w.get(name);
    if (!v) throw new Error(`llama64: missing ${name}`);
    return v;
  };
  const B = tokens.length;
  const T = tokens[0]!.length;
  const N = B * T;
  const d = c.hiddenSize;
  const hd = c.headDim;
  const hidden = new Map<string, Float64Array>();
  const nrm = (v: Float64Array, prefix: string) =>
    norm(v, N, d, W(`${prefix}.weight`), c.normEps, c.layerNorm === true, w.get(`${prefix}.bias`));
  const E = W('model.embed_tokens.weight');
  let x: Float64Array = new Float64Array(N * d);
  tokens.flat().forEach((tok, r) => x.set(E.subarray(tok * d, tok * d + d), r * d));
  if (c.embproj) x = linear(x, N, d, W('model.embed_proj.weight'), d);
  hidden.set('embed', x);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const a = nrm(x, `${p}.input_layernorm`);
    hidden.set(`layers.${l}.attn_in`, a);
    const q = linear(a, N, d, W(`${p}.self_attn.q_proj.weight`), c.numHeads * hd);
    const k = linear(a, N, d, W(`${p}.self_attn.k_proj.weight`), c.numKvHeads * hd);
    const v = linear(a, N, d, W(`${p}.self_attn.v_proj.weight`), c.numKvHeads * hd);
    const ctx = new Float64Array(N * c.numHeads * hd);
    for (let b = 0; b < B; b++) {
      const rows = (m: Float64Array, width: number) => m.subarray(b * T * width, (b + 1) * T * width);
      const qb = rows(q, c.numHeads * hd);
      const kb = rows(k, c.numKvHeads * hd);
      const vb = rows(v, c.numKvHeads * hd);
      rope(qb, T, c.numHeads, hd, c.ropeTheta);
      rope(kb, T, c.numKvHeads, hd, c.ropeTheta);
      for (let h = 0; h < c.numHeads; h++) {
        const kvh = Math.floor(h / (c.numHeads / c.numKvHeads));
        for (let i = 0; i < T; i++) {
          const scores: number[] = [];
          for (let j = 0; j <= i; j++) {
            let s = 0;
            for (let e = 0; e < hd; e++) s += qb[i * c.numHeads * hd + h * hd + e]! * kb[j * c.numKvHeads * hd + kvh * hd + e]!;
            scores.push(s / Math.sqrt(hd));
          }
          const m = Math.max(...scores);
          const ex = scores.map((s) => Math.exp(s - m));
          const z = ex.reduce((s, e) => s + e, 0);
          for (let e = 0; e < hd; e++) {
            let acc = 0;
            for (let j = 0; j <= i; j++) acc += (ex[j]! / z) * vb[j * c.numKvHeads * hd + kvh * hd + e]!;
            ctx[(b * T + i) * c.numHeads * hd + h * hd + e] = acc;
          }
        }
      }
    }
    const attnOut = linear(ctx, N, c.numHeads * hd, W(`${p}.self_attn.o_proj.weight`), d);
    const h1 = x.map((xi, i) => xi + attnOut[i]!);
    const f = nrm(h1, `${p}.post_attention_layernorm`);
    hidden.set(`layers.${l}.ffn_in`, f);
    const I = c.intermediateSize;
    const g = linear(f, N, d, W(`${p}.mlp.gate_proj.weight`), I);
    const u = linear(f, N, d, W(`${p}.mlp.up_proj.weight`), I);
    const act = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]!);
    const down = linear(act, N, I, W(`${p}.mlp.down_proj.weight`), d);
    x = h1.map((hi, i) => hi + down[i]!);
    hidden.set(`layers.${l}.out`, x);
  }
  let n: Float64Array = nrm(x, 'model.norm');
  hidden.set('final_norm', n);
  if (c.embproj) n = linear(n, N, d, W('model.head_proj.weight'), d);
  const logits = linear(n, N, d, c.tie ? E : W('lm_head.weight'), c.vocabSize);
  return { logits, hidden };
}

/** Mean next-token cross-entropy of logits [N, V] against targets (float64). */
export function crossEntropy64(logits: Float64Array, V: number, targets: number[]): number {
  let total = 0;
  targets.forEach((t, r) => {
    const row = logits.subarray(r * V, (r + 1) * V);
    const m = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - m);
    total += m + Math.log(z) - row[t]!;
  });
  return total / targets.length;
}
