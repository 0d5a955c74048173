/** Shared test helpers: copy a tfjs model's weights out as float64 and build the oracle's config. */
import type { ModelConfig } from '../../src/model/config.ts';
import type { Transformer } from '../../src/model/transformer.ts';
import type { Llama64Config, Weights } from './llama64.ts';

export function weights64(model: Transformer): Weights {
  const w: Weights = new Map();
  for (const [name, v] of model.params) w.set(name, Float64Array.from(v.dataSync()));
  return w;
}

export function config64(model: Transformer): Llama64Config {
  return llamaConfig64(model.config);
}

/** The float64 oracle's config for a model config (e.g. a folded or rotated plain Llama's). */
export function llamaConfig64(c: ModelConfig): Llama64Config {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    intermediateSize: c.intermediateSize,
    ropeTheta: c.ropeTheta,
    normEps: c.normEps,
    embproj: c.embedding === 'embproj',
    tie: c.tieEmbeddings,
  };
}

/** Largest |a - b| / (|b| + floor) over all elements. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + floor);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst;
}

/** Deterministic token ids in [0, V) for tests. */
export function tokens(B: number, T: number, V: number, seed = 1): number[][] {
  let s = seed;
  const next = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % V;
  };
  return Array.from({ length: B }, () => Array.from({ length: T }, next));
}

/** max |a - b| / max |b|: float32 rounding gives ~1e-6 here, a wrong formula gives O(1). */
export function normRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!);
    diff = Number.isNaN(e) ? Infinity : Math.max(diff, e);
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/** max |M M^T - I| for a row-major n x n matrix, in float64. */
export function orthogonalityError(m: ArrayLike<number>, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += m[i * n + k]! * m[j * n + k]!;
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return worst;
}
