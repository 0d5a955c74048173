/**
 * QuaRot's offline rotation (Ashkboos et al. 2024) as a library function: a model's weights become the
 * weights of an equivalent plain Llama whose residual stream is rotated by a random orthogonal
 * Hadamard matrix, so that channel outliers of the residual stream are spread over all channels before
 * the block linear layers (and their inputs) are quantized. Full precision in, full precision out:
 * the rotated model computes the same function (exactly in real arithmetic; float64 inside, one
 * rounding to float32 at the end).
 *
 * Steps (weights in the [out, in] layout, y = x W^T, row vectors x):
 *   0. foldToLlama (model/fold.ts): SSNorm -> per-channel weight vectors, EmbProj -> embedding and head.
 *   1. Every RMSNorm's weight g moves into the linears reading the norm's output: W -> W diag(g) for
 *      q/k/v (input_layernorm), gate/up (post_attention_layernorm), lm_head (model.norm); the norms
 *      keep weight 1. RMSNorm without a scale commutes with an orthogonal Q (||x Q|| = ||x||), with a
 *      per-channel scale it does not.
 *   2. Q = H_d D / sqrt(d), H_d = exactHadamard(d) (+-1, unscaled), D = diag(+-1) from Rng(seed):
 *        embedding rows          E -> E Q
 *        readers (q k v gate up lm_head)  W -> W Q      (they read x Q: (x Q)(W Q)^T = x W^T)
 *        writers (o_proj down_proj)       W -> Q^T W    (their output y becomes y Q)
 *      Tied embeddings: E Q is both the embedding and the head, so a tied model stays tied - when the
 *      final norm's weight is all ones. Otherwise step 1 would make the head E diag(g), which is not the
 *      embedding any more, so the result is untied (config.tieEmbeddings false, `lm_head.weight` set)
 *      and `untied` says so.
 *   3. With `online: true` additionally (QuaRot's online Hadamards; the caller applies them):
 *      - down_proj: W_down -> W_down H_I / sqrt(I) (H_I = exactHadamard(intermediateSize)); the caller
 *        must rotate down_proj's INPUT online, x -> x H_I / sqrt(I) (`online.down.rotate`, which is
 *        hadamardRotateExact). Without that the returned down_proj weights are wrong.
 *      - Q/K: nothing changes in the weights; the caller may rotate queries and keys per head after
 *        RoPE, q -> q H_hd / sqrt(hd), k -> k H_hd / sqrt(hd) (`online.qk.rotate`): scores are
 *        unchanged, keys lose their RoPE channel outliers before KV-cache quantization. With only a
 *        key hook (BlockHooks.kv sees keys, not queries) the same scores come from quantizing keys in
 *        the rotated basis and rotating back: k -> quant(k R) R^T (`online.qk.quantizeKeysRotated`),
 *        since (q R)(quant(k R))^T = q (quant(k R) R^T)^T for orthogonal R.
 *
 * @example
 *   const r = quarotRotate(model.config, await modelWeights(model), { seed: 0, online: true });
 *   const plain = new Transformer(r.config, new Rng(0)); // load r.weights into it
 *   const hooks: BlockHooks = { linearInput: (x, site) => (site === 'down' ? r.online!.down.rotate(x) : x) };
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, OspError, ShapeError } from '../errors.ts';
import type { ModelConfig } from '../model/config.ts';
import { paramSpecs, type Transformer } from '../model/transformer.ts';
import { Rng } from '../utils/rng.ts';
import { foldToLlama, modelWeights, type Weights } from '../model/fold.ts';
import { fwht } from './hadamard.ts';
import {
  applyHadamard,
  exactHadamard,
  exactHadamardOrderSupported,
  exactHadamardPlan,
  hadamardRotateExact,
  nearestHadamardOrders,
} from './hadamard_exact.ts';

/** Parameters by name in float64 ([out, in] layout, row-major). */
export type Weights64 = Map<string, { shape: number[]; data: Float64Array }>;

export interface QuarotOptions {
  /** Seed of the random signs D (Rng from src/utils/rng.ts); Q depends on it and the width only. */
  seed: number;
  /**
   * Also fold down_proj's online Hadamard into its weight and return the online rotations (see the
   * module doc). Default false: the result then needs no online rotation at all.
   */
  online?: boolean;
  /** Also return the rotated weights in float64 (before the final rounding); default false. */
  keepFloat64?: boolean;
}

/** The online halves of QuaRot's Hadamards; the caller wires them (see the module doc). */
export interface QuarotOnline {
  down: {
    /** The intermediate width I. */
    n: number;
    /** down_proj's input [N, I] -> x H_I / sqrt(I) (tf; returns a new tensor). */
    rotate(x: tf.Tensor2D): tf.Tensor2D;
    /** H_I / sqrt(I), float64 row-major [I, I]. */
    matrix(): Float64Array;
  };
  qk: {
    /** The head width hd. */
    n: number;
    /** Queries or keys [B, H, T, hd] after RoPE -> each head vector times H_hd / sqrt(hd). */
    rotate(x: tf.Tensor4D): tf.Tensor4D;
    /** The inverse: each head vector times H_hd^T / sqrt(hd). */
    unrotate(x: tf.Tensor4D): tf.Tensor4D;
    /**
     * Key-only form for a BlockHooks.kv hook: unrotate(quant(rotate(k))). Gives the attention scores
     * of rotating both q and k and quantizing the rotated keys.
     */
    quantizeKeysRotated(k: tf.Tensor4D, quant: (kRot: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D;
    /** H_hd / sqrt(hd), float64 row-major [hd, hd]. */
    matrix(): Float64Array;
  };
}

export interface QuarotResult {
  /** A plain Llama config: rmsnorm, plain embedding; tieEmbeddings as described by `untied`. */
  config: ModelConfig;
  /** Rotated weights, float32, Hugging Face Llama names; every norm weight is all ones. */
  weights: Weights;
  /** The same in float64 (only with keepFloat64). */
  weights64?: Weights64;
  /** Q = H_d D / sqrt(d), float64 row-major [d, d]. */
  q: Float64Array;
  /** The diagonal of D (+-1). */
  signs: Float64Array;
  /** True when the input was tied but the result is not (EmbProj, or a final norm weight not all ones). */
  untied: boolean;
  /** Present with `online: true`. */
  online?: QuarotOnline;
}

/** The random signs of D for width d and a seed: one Rng draw per channel (top bit). */
export function quarotSigns(d: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const s = new Float64Array(d);
  for (let i = 0; i < d; i++) s[i] = rng.nextUint32() >>> 31 ? -1 : 1;
  return s;
}

/**
 * QuaRot's residual rotation Q = H_d D / sqrt(d) as a dense float64 [d, d] matrix (row-major):
 * Q[i, j] = H_d[i, j] s_j / sqrt(d). Orthogonal; depends on d and the seed only.
 * Throws a ConfigError ('model.hiddenSize') when no exact Hadamard matrix of order d is known.
 * @example quarotRotation(128, 0) // 128 x 128
 */
export function quarotRotation(d: number, seed: number): Float64Array {
  checkOrder('model.hiddenSize', d);
  const h = exactHadamard(d);
  const s = quarotSigns(d, seed);
  const scale = 1 / Math.sqrt(d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) h[i * d + j]! *= s[j]! * scale;
  return h;
}

/** Norm and embedding kinds this fold understands (foldToLlama turns them into rmsnorm/plain). */
const FOLDABLE_NORMS: readonly string[] = ['rmsnorm', 'ssnorm'];
const FOLDABLE_EMBEDDINGS: readonly string[] = ['plain', 'embproj'];

/**
 * QuaRot's offline rotation of a model's weights (any norm and embedding of osp-lab; folded with
 * foldToLlama first). See the module doc for the math and how to apply the online parts.
 *
 * Errors: ConfigError naming the field for a norm kind or embedding without a fold ('model.norm',
 * 'model.embedding') and for widths without an exact Hadamard matrix ('model.hiddenSize'; with
 * `online`: 'model.intermediateSize', 'model.headDim'); OspError/ShapeError naming a missing,
 * unexpected or misshapen parameter.
 */
export function quarotRotate(config: ModelConfig, weights: Weights, opts: QuarotOptions): QuarotResult {
  if (!FOLDABLE_NORMS.includes(config.norm)) {
    throw new ConfigError(
      'model.norm',
      `QuaRot cannot fold norm '${String(config.norm)}' into a plain Llama: only ${FOLDABLE_NORMS.map((n) => `'${n}'`).join(' and ')} ` +
        'fold (RMS norms whose only parameter is a scale)',
    );
  }
  if (!FOLDABLE_EMBEDDINGS.includes(config.embedding)) {
    throw new ConfigError(
      'model.embedding',
      `QuaRot cannot fold embedding '${String(config.embedding)}' into a plain Llama: only ${FOLDABLE_EMBEDDINGS.map((n) => `'${n}'`).join(' and ')} fold`,
    );
  }
  if (!Number.isSafeInteger(opts.seed)) throw new ConfigError('quarot.seed', `expected an integer seed, got ${String(opts.seed)}`);
  const d = config.hiddenSize;
  checkOrder('model.hiddenSize', d);
  const online = opts.online === true;
  if (online) {
    checkOrder('model.intermediateSize', config.intermediateSize);
    checkOrder('model.headDim', config.headDim);
  }
  checkParams(config, weights, 'quarot');

  const folded = foldToLlama(config, weights);
  const fc = folded.config;
  const w64: Weights64 = new Map();
  for (const [name, w] of folded.weights) w64.set(name, { shape: [...w.shape], data: Float64Array.from(w.data) });
  const get = (name: string) => {
    const w = w64.get(name);
    if (!w) throw new OspError(`quarot: folded model has no parameter '${name}'`);
    return w;
  };

  // Step 1: norm weights into the readers. A tied head stays tied only when the final norm is all ones.
  const finalNorm = get('model.norm.weight').data;
  let tied = fc.tieEmbeddings;
  if (tied && finalNorm.some((g) => g !== 1)) {
    const E = get('model.embed_tokens.weight');
    w64.set('lm_head.weight', { shape: [...E.shape], data: Float64Array.from(E.data) });
    tied = false;
  }
  const foldNorm = (norm: string, readers: string[]) => {
    const g = get(norm).data;
    for (const r of readers) scaleColumns(get(r).data, g);
    g.fill(1);
  };
  for (let i = 0; i < fc.numLayers; i++) {
    const p = `model.layers.${i}`;
    foldNorm(`${p}.input_layernorm.weight`, [
      `${p}.self_attn.q_proj.weight`,
      `${p}.self_attn.k_proj.weight`,
      `${p}.self_attn.v_proj.weight`,
    ]);
    foldNorm(`${p}.post_attention_layernorm.weight`, [`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`]);
  }
  foldNorm('model.norm.weight', tied ? [] : ['lm_head.weight']);

  // Step 2: rotate the residual stream.
  const signs = quarotSigns(d, opts.seed);
  const hd = hadamardRows(d);
  const rotD = (x: Float64Array, rows: number) => hd(x, rows, signs);
  const readers: string[] = ['model.embed_tokens.weight'];
  const writers: string[] = [];
  for (let i = 0; i < fc.numLayers; i++) {
    const p = `model.layers.${i}`;
    readers.push(`${p}.self_attn.q_proj.weight`, `${p}.self_attn.k_proj.weight`, `${p}.self_attn.v_proj.weight`);
    readers.push(`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`);
    writers.push(`${p}.self_attn.o_proj.weight`, `${p}.mlp.down_proj.weight`);
  }
  if (!tied) readers.push('lm_head.weight');
  for (const name of readers) {
    const w = get(name);
    rotD(w.data, w.shape[0]!); // W -> W Q (E -> E Q)
  }
  for (const name of writers) {
    // Q^T W: each column c of W becomes Q^T c, i.e. the row c^T of W^T becomes c^T Q.
    const w = get(name);
    const [rows, cols] = w.shape as [number, number];
    const t = transpose(w.data, rows, cols);
    rotD(t, cols);
    w.data.set(transpose(t, cols, rows));
  }

  // Step 3: down_proj's online Hadamard, offline half: W_down -> W_down H_I / sqrt(I).
  let onl: QuarotOnline | undefined;
  if (online) {
    const I = fc.intermediateSize;
    const hi = hadamardRows(I);
    for (let i = 0; i < fc.numLayers; i++) {
      const w = get(`model.layers.${i}.mlp.down_proj.weight`);
      hi(w.data, w.shape[0]!);
    }
    onl = onlineRotations(I, fc.headDim);
  }

  const out: Weights = new Map();
  for (const [name, w] of w64) out.set(name, { shape: [...w.shape], data: Float32Array.from(w.data) });
  const outConfig: ModelConfig = { ...fc, tieEmbeddings: tied };
  checkParams(outConfig, out, 'quarot (result)');
  return {
    config: outConfig,
    weights: out,
    ...(opts.keepFloat64 ? { weights64: w64 } : {}),
    q: quarotRotation(d, opts.seed),
    signs,
    untied: config.tieEmbeddings && !tied,
    ...(onl ? { online: onl } : {}),
  };
}

/** quarotRotate on a live model's parameters (read asynchronously, WebGPU-safe). */
export async function quarotModel(model: Transformer, opts: QuarotOptions): Promise<QuarotResult> {
  return quarotRotate(model.config, await modelWeights(model), opts);
}

/** The online rotations for intermediate width I and head width hd (both must be supported orders). */
export function onlineRotations(I: number, hd: number): QuarotOnline {
  checkOrder('model.intermediateSize', I);
  return {
    down: {
      n: I,
      rotate: (x) => {
        if (x.shape[1] !== I) throw new ShapeError(`quarot down: expected down_proj's input [N, ${I}], got [${x.shape}]`);
        return hadamardRotateExact(x);
      },
      matrix: () => scaledHadamard(I),
    },
    qk: qkRotation(hd),
  };
}

/**
 * The Q/K rotation alone (the OSP paper's and QuaRot's online Hadamard over the head dimension after
 * RoPE), for any model whose head width has an exact Hadamard matrix; see QuarotOnline.qk.
 * Throws a ConfigError ('model.headDim') otherwise.
 * @example const qk = qkRotation(32); const kq = qk.quantizeKeysRotated(k, (kr) => fakeQuantKvPerHead(kr, 4));
 */
export function qkRotation(hd: number): QuarotOnline['qk'] {
  checkOrder('model.headDim', hd);
  const perHead = (x: tf.Tensor4D, transpose: boolean): tf.Tensor4D => {
    if (x.shape[3] !== hd) throw new ShapeError(`quarot qk: expected head width ${hd}, got [${x.shape}]`);
    return tf.tidy(() => {
      const flat = tf.reshape(x, [-1, hd]) as tf.Tensor2D;
      return tf.reshape(hadamardRotateExact(flat, { transpose }), x.shape) as tf.Tensor4D;
    });
  };
  return {
    n: hd,
    rotate: (x) => perHead(x, false),
    unrotate: (x) => perHead(x, true),
    quantizeKeysRotated: (k, quant) => tf.tidy(() => perHead(quant(perHead(k, false)), true)),
    matrix: () => scaledHadamard(hd),
  };
}

function scaledHadamard(n: number): Float64Array {
  const h = exactHadamard(n);
  const s = 1 / Math.sqrt(n);
  for (let i = 0; i < h.length; i++) h[i]! *= s;
  return h;
}

// ---------------------------------------------------------------------------------------------------

/**
 * Throws a ConfigError naming `field` when no exact Hadamard matrix of order n is known, with the
 * nearest widths that have one (and `hint`, e.g. how to do without the rotation).
 */
export function checkHadamardOrder(field: string, n: number, hint = ''): void {
  if (exactHadamardOrderSupported(n)) return;
  const { below, above } = nearestHadamardOrders(n);
  throw new ConfigError(
    field,
    `${n} has no exact Hadamard matrix that hadamard_exact.ts can build (orders 1, 2 and products of ` +
      `powers of two with Paley orders), and the rotation needs one of this order; nearest supported ` +
      `widths: ${below} and ${above}${hint ? `; ${hint}` : ''}`,
  );
}

function checkOrder(field: string, n: number): void {
  checkHadamardOrder(field, n);
}

/** Every parameter the config implies is present with its shape, and nothing else. */
function checkParams(config: ModelConfig, weights: Weights, what: string): void {
  const specs = paramSpecs(config);
  const expected = new Set<string>();
  for (const s of specs) {
    expected.add(s.name);
    const w = weights.get(s.name);
    if (!w)
      throw new OspError(
        `${what}: missing parameter '${s.name}' (model.norm '${config.norm}', model.embedding '${config.embedding}', model.tieEmbeddings ${config.tieEmbeddings})`,
      );
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (w.shape.join(',') !== s.shape.join(',') || w.data.length !== size) {
      throw new ShapeError(
        `${what}: parameter '${s.name}' has shape [${w.shape}] (${w.data.length} values), the config implies [${s.shape}]`,
      );
    }
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) {
      throw new OspError(
        `${what}: unexpected parameter '${name}' for this config; QuaRot folds only the parameters of osp-lab's Llama (no biases)`,
      );
    }
  }
}

/** W -> W diag(g) for a row-major [rows, g.length] matrix. */
function scaleColumns(w: Float64Array, g: Float64Array): void {
  const n = g.length;
  for (let i = 0; i < w.length; i++) w[i]! *= g[i % n]!;
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}

/**
 * In float64, in place: each row x of a row-major [rows, n] matrix becomes x H_n diag(signs) / sqrt(n)
 * (signs absent: all +1), H_n = exactHadamard(n), without forming x H_n densely: H_n = H_core (x) S_P
 * (exactHadamardPlan), so a Walsh-Hadamard transform over the P axis and a dense core product. The
 * core matrix is read off H_n itself (H_n[a P, a' P] = H_core[a, a'] since S_P[0, 0] = 1),
 * so the map is exactly exactHadamard(n)'s.
 */
function hadamardRows(n: number): (x: Float64Array, rows: number, signs?: Float64Array) => void {
  const { core: m, pow2: p } = exactHadamardPlan(n);
  // Rows a P of H_n (a < m), read through applyHadamard (entries +-1/sqrt(n) in float32, so their
  // signs are exact) instead of forming the dense n x n matrix (970 MB for n = 11008).
  const c = new Float64Array(m * m);
  if (m > 1) {
    const unit = new Float32Array(m * n);
    for (let a = 0; a < m; a++) unit[a * n + a * p] = 1;
    const rowsOfH = applyHadamard(unit, m, n);
    for (let a = 0; a < m; a++) for (let a2 = 0; a2 < m; a2++) c[a * m + a2] = Math.sign(rowsOfH[a * n + a2 * p]!);
  }
  const scale = 1 / Math.sqrt(n);
  const acc = new Float64Array(n);
  return (x, rows, signs) => {
    if (x.length !== rows * n) throw new ShapeError(`quarot: expected ${rows} x ${n} values, got ${x.length}`);
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      if (p > 1) for (let a = 0; a < m; a++) fwht(x, base + a * p, p);
      if (m > 1) {
        // y[a', b] = sum_a C[a, a'] x[a, b]
        acc.fill(0);
        for (let a = 0; a < m; a++) {
          for (let a2 = 0; a2 < m; a2++) {
            const w = c[a * m + a2]!;
            const o = a2 * p;
            const i0 = base + a * p;
            if (w > 0) for (let b = 0; b < p; b++) acc[o + b]! += x[i0 + b]!;
            else for (let b = 0; b < p; b++) acc[o + b]! -= x[i0 + b]!;
          }
        }
        x.set(acc, base);
      }
      if (signs) for (let i = 0; i < n; i++) x[base + i]! *= signs[i]! * scale;
      else for (let i = 0; i < n; i++) x[base + i]! *= scale;
    }
  };
}
