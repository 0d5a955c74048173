/**
 * A decoder-only, Llama-style transformer with swappable norm and embedding modules.
 *
 *   tokens [B, T] -> embed_tokens -> embedding.afterEmbed            (tap 'embed')
 *   for each block i:                                               (pre-norm residual)
 *     h = x + o_proj(attention(input_layernorm(x)))                 (tap 'layers.i.attn_in' = normed input)
 *     x = h + down(silu(gate(n)) * up(n)), n = post_attention_layernorm(h)   (tap 'layers.i.ffn_in' = n)
 *                                                                   (tap 'layers.i.out' = x)
 *   norm(x) (tap 'final_norm') -> embedding.beforeHead -> lm_head -> logits [B, T, V]
 *
 * Parameters carry Hugging Face Llama names (see paramSpecs) and the [out, in] layout.
 */
import * as tf from '@tensorflow/tfjs';
import { ShapeError } from '../errors.ts';
import { crossEntropy } from '../ops/cross_entropy.ts';
import { Rng } from '../utils/rng.ts';
import { resolveModelConfig, type ModelConfig } from './config.ts';
import { EMBEDDINGS, type DefaultRoute } from './embeddings.ts';
import { initialValues, type ParamSpec } from './init.ts';
import { causalMask } from '../ops/attention.ts';
import { attention, ropeTables, swiglu, type BlockHooks } from './layers.ts';
import { NORMS } from './norms.ts';

export interface ForwardOptions {
  /** Also return the hidden-state taps (each [B, T, d]); the caller owns and disposes them. */
  taps?: boolean;
  /** Interventions inside the blocks (activation and KV-cache fake quantization). */
  hooks?: BlockHooks;
}

// A type alias, not an interface: tf.tidy can then return it (it needs an index-signature-compatible object).
export type ForwardResult = {
  /** [B, T, V] */
  logits: tf.Tensor3D;
  /** Present when requested: 'embed', 'layers.{i}.attn_in', 'layers.{i}.ffn_in', 'layers.{i}.out', 'final_norm'. */
  taps?: Record<string, tf.Tensor3D>;
};

/**
 * Every parameter of a model with this config, in a fixed order (the order init draws from the Rng).
 *
 * Names beyond Hugging Face Llama's: `model.embed_proj.weight` and `model.head_proj.weight` (EmbProj,
 * [d, d], [out, in] layout). Each norm's parameters come from its module under the norm's prefix (with
 * `ssnorm` every `*layernorm.weight` / `model.norm.weight` has shape [1]).
 */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const d = c.hiddenSize;
  const norm = NORMS[c.norm];
  const normal = { kind: 'normal', std: c.initStd } as const;
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, d], init: normal }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    specs.push(
      ...norm.params(`${p}.input_layernorm`, d),
      { name: `${p}.self_attn.q_proj.weight`, shape: [qDim, d], init: normal },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kvDim, d], init: normal },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kvDim, d], init: normal },
      { name: `${p}.self_attn.o_proj.weight`, shape: [d, qDim], init: normal },
      ...norm.params(`${p}.post_attention_layernorm`, d),
      { name: `${p}.mlp.gate_proj.weight`, shape: [c.intermediateSize, d], init: normal },
      { name: `${p}.mlp.up_proj.weight`, shape: [c.intermediateSize, d], init: normal },
      { name: `${p}.mlp.down_proj.weight`, shape: [d, c.intermediateSize], init: normal },
    );
  }
  specs.push(...norm.params('model.norm', d));
  specs.push(...EMBEDDINGS[c.embedding].params(d));
  if (!c.tieEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, d], init: normal });
  return specs;
}

export class Transformer {
  readonly config: ModelConfig;
  /** Trainable parameters by Hugging Face-style name. */
  readonly params: Map<string, tf.Variable>;
  private readonly rope: { cos: tf.Tensor2D; sin: tf.Tensor2D };
  private readonly masks = new Map<number, tf.Tensor2D>();

  /**
   * @param config a validated config (see resolveModelConfig)
   * @param rng the generator initial weights are drawn from
   */
  constructor(config: ModelConfig, rng: Rng) {
    this.config = config;
    this.params = new Map();
    for (const spec of paramSpecs(config)) {
      // Variable names must be unique per tfjs engine; the HF name is the map key instead.
      // The variable holds its own reference to the data; the initial tensor is released at once.
      const init = tf.tensor(initialValues(spec, rng), spec.shape);
      this.params.set(spec.name, tf.variable(init, true));
      init.dispose();
    }
    this.rope = ropeTables(config.maxSeqLen, config.headDim, config.ropeTheta);
  }

  /** The routing rules the model's modules ask for (EmbProj: its matrices to Muon); see optim/routing.ts. */
  get defaultRouting(): readonly DefaultRoute[] {
    return EMBEDDINGS[this.config.embedding].defaultRouting;
  }

  /** Total number of trainable scalars. */
  numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  private p = (name: string): tf.Variable => {
    const v = this.params.get(name);
    if (!v) throw new Error(`model has no parameter '${name}'`);
    return v;
  };

  private mask(T: number): tf.Tensor2D {
    let m = this.masks.get(T);
    if (!m) {
      m = tf.keep(causalMask(T));
      this.masks.set(T, m);
    }
    return m;
  }

  /**
   * tokens: int32 [B, T] with T <= maxSeqLen. Returns logits [B, T, V] (and taps on request).
   * Call inside tf.tidy (or dispose the result).
   */
  forward(tokens: tf.Tensor2D, opts: ForwardOptions = {}): ForwardResult {
    const c = this.config;
    if (tokens.rank !== 2 || tokens.dtype !== 'int32') {
      throw new ShapeError(`forward: tokens must be int32 [B, T], got ${tokens.dtype} [${tokens.shape}]`);
    }
    const [B, T] = tokens.shape;
    if (T > c.maxSeqLen) throw new ShapeError(`forward: sequence length ${T} exceeds model.maxSeqLen ${c.maxSeqLen}`);
    const d = c.hiddenSize;
    const p = this.p;
    const emb = EMBEDDINGS[c.embedding];
    const norm = (x: tf.Tensor2D, prefix: string) => NORMS[c.norm].forward(x, p, prefix, c.normEps);
    const taps: Record<string, tf.Tensor3D> = {};
    const tap = (name: string, x: tf.Tensor2D) => {
      if (opts.taps) taps[name] = tf.reshape(x, [B, T, d]);
    };
    const hd = c.headDim;
    const table = (t: tf.Tensor2D) => tf.reshape(tf.slice(t, [0, 0], [T, -1]), [T, 1, hd]) as tf.Tensor3D;
    const rope = { cos: table(this.rope.cos), sin: table(this.rope.sin) }; // [T, 1, hd]: broadcast over heads
    const shape = { B, T, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim };
    const mask = this.mask(T);

    let x = tf.gather(p('model.embed_tokens.weight'), tf.reshape(tokens, [B * T])) as tf.Tensor2D; // [B*T, d]
    x = emb.afterEmbed(x, p);
    tap('embed', x);
    for (let i = 0; i < c.numLayers; i++) {
      const l = `model.layers.${i}`;
      const a = norm(x, `${l}.input_layernorm`);
      tap(`layers.${i}.attn_in`, a);
      const attnW = {
        q: p(`${l}.self_attn.q_proj.weight`),
        k: p(`${l}.self_attn.k_proj.weight`),
        v: p(`${l}.self_attn.v_proj.weight`),
        o: p(`${l}.self_attn.o_proj.weight`),
      };
      const h = tf.add(x, attention(a, attnW, shape, rope, mask, opts.hooks, i)) as tf.Tensor2D;
      const f = norm(h, `${l}.post_attention_layernorm`);
      tap(`layers.${i}.ffn_in`, f);
      const mlp = swiglu(f, p(`${l}.mlp.gate_proj.weight`), p(`${l}.mlp.up_proj.weight`), p(`${l}.mlp.down_proj.weight`), opts.hooks, i);
      x = tf.add(h, mlp) as tf.Tensor2D;
      tap(`layers.${i}.out`, x);
    }
    const n = norm(x, 'model.norm');
    tap('final_norm', n);
    const head = c.tieEmbeddings ? p('model.embed_tokens.weight') : p('lm_head.weight');
    const logits = tf.reshape(tf.matMul(emb.beforeHead(n, p), head, false, true), [B, T, c.vocabSize]) as tf.Tensor3D;
    return opts.taps ? { logits, taps } : { logits };
  }

  /** Mean next-token cross-entropy (nats). inputs, targets: int32 [B, T]. */
  loss(inputs: tf.Tensor2D, targets: tf.Tensor2D, hooks?: BlockHooks): tf.Scalar {
    return tf.tidy(() => {
      const { logits } = this.forward(inputs, { hooks });
      const [B, T, V] = logits.shape;
      return crossEntropy(tf.reshape(logits, [B * T, V]) as tf.Tensor2D, tf.reshape(targets, [B * T]) as tf.Tensor1D);
    });
  }

  /** Frees the parameters and cached tables. */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.rope.cos.dispose();
    this.rope.sin.dispose();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }
}

/**
 * Builds a model from a (partial) config; missing fields take their defaults.
 *
 * @example
 *   const model = createModel({ hiddenSize: 128, numLayers: 4, norm: 'ssnorm', embedding: 'embproj' }, { seed: 0 });
 */
export function createModel(config: unknown = {}, opts: { seed?: number; rng?: Rng } = {}): Transformer {
  return new Transformer(resolveModelConfig(config), opts.rng ?? new Rng(opts.seed ?? 0));
}
