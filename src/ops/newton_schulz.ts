/**
 * Newton-Schulz orthogonalisation, the core of Muon (see shared/reference/muon.md): maps G = U S V^T
 * to approximately U V^T with a few matrix products, no SVD. The odd polynomial
 * p(x) = a x + b x^3 + c x^5 is applied to the singular values at every step.
 */
import * as tf from '@tensorflow/tfjs';
import { checkChoice, ShapeError } from '../errors.ts';
import { hasKernel, KERNELS } from './dispatch.ts';

/** One Newton-Schulz step's polynomial coefficients (a, b, c). */
export type NsTuple = readonly [a: number, b: number, c: number];

export const NS_COEFFICIENT_KINDS = ['quintic', 'polar_express', 'convergent'] as const;
export type NsCoefficientKind = (typeof NS_COEFFICIENT_KINDS)[number];

/**
 * Keller Jordan's quintic: steep at 0 so tiny singular values grow fast, at the price of not
 * converging; after 5 steps singular values sit in about [0.68, 1.13], which Muon tolerates.
 */
export const NS_QUINTIC: NsTuple = [3.4445, -4.775, 2.0315];

/** Polar Express per-step coefficients (step i uses entry i; later steps reuse the last). */
export const NS_POLAR_EXPRESS: readonly NsTuple[] = [
  [8.156554524902461, -22.48329292557795, 15.878769915207462],
  [4.042929935166739, -2.808917465908714, 0.5000178451051316],
  [3.8916678022926607, -2.772484153217685, 0.5060648178503393],
  [3.285753657755655, -2.3681294933425376, 0.46449024233003106],
  [2.3465413258596377, -1.7097828382687081, 0.42323551169305323],
];

/** The classic convergent quintic: p(1) = 1, p'(1) = 0, so singular values go to exactly 1 (slowly). */
export const NS_CONVERGENT: NsTuple = [2, -1.5, 0.5];

export interface NewtonSchulzOptions {
  steps: number;
  coefficients: NsCoefficientKind;
}

/** The (a, b, c) tuple of every step, and how the input is normalised, for one variant. */
export function nsSchedule(kind: NsCoefficientKind, steps: number) {
  const tuples = Array.from({ length: steps }, (_, i): NsTuple => {
    if (kind === 'quintic') return NS_QUINTIC;
    if (kind === 'convergent') return NS_CONVERGENT;
    return NS_POLAR_EXPRESS[Math.min(i, NS_POLAR_EXPRESS.length - 1)]!;
  });
  // Polar Express's first tuple is tuned for singular values <= 1 with a safety margin, hence the 1.02.
  const norm = kind === 'polar_express' ? { scale: 1.02, eps: 1e-6 } : { scale: 1, eps: 1e-7 };
  return { tuples, ...norm };
}

/**
 * Approximately orthogonalises a matrix: returns ~U V^T for g = U S V^T, same shape as g.
 * Dispatches to a fused `OspNewtonSchulz` kernel when the backend registered one.
 * @example
 *   const o = newtonSchulz(grad, { steps: 5, coefficients: 'quintic' }); // singular values in ~[0.68, 1.13]
 */
export function newtonSchulz(g: tf.Tensor2D, opts: NewtonSchulzOptions): tf.Tensor2D {
  if (g.rank !== 2) throw new ShapeError(`newtonSchulz expects a 2-D tensor, got shape [${g.shape.join(', ')}]`);
  if (!Number.isInteger(opts.steps) || opts.steps < 1) {
    throw new ShapeError(`newtonSchulz: steps must be a positive integer, got ${opts.steps}`);
  }
  checkChoice('coefficients', opts.coefficients, NS_COEFFICIENT_KINDS);
  const { tuples, scale, eps } = nsSchedule(opts.coefficients, opts.steps);
  if (hasKernel(KERNELS.newtonSchulz)) {
    const attrs = {
      steps: opts.steps,
      a: tuples.map((t) => t[0]),
      b: tuples.map((t) => t[1]),
      c: tuples.map((t) => t[2]),
      normScale: scale,
      normEps: eps,
    };
    return tf.engine().runKernel<tf.Tensor2D>(KERNELS.newtonSchulz, { x: g }, attrs);
  }
  return newtonSchulzReference(g, tuples, scale, eps);
}

/** Plain-tfjs reference: X = G / (scale*||G||_F + eps), then X <- aX + (bA + cA^2) X with A = X X^T. */
export function newtonSchulzReference(g: tf.Tensor2D, tuples: readonly NsTuple[], normScale: number, normEps: number): tf.Tensor2D {
  return tf.tidy(() => {
    // Work on the wide orientation so A = X X^T is the smaller (rows x rows) Gram matrix.
    const transposed = g.shape[0] > g.shape[1];
    const wide: tf.Tensor2D = transposed ? g.transpose() : g;
    let x = tf.cast(wide, 'float32');
    x = x.div(tf.norm(x).mul(normScale).add(normEps));
    for (const [a, b, c] of tuples) {
      const A = tf.matMul(x, x, false, true);
      const B: tf.Tensor2D = tf.add(A.mul(b), tf.matMul(A, A).mul(c));
      x = tf.add(x.mul(a), tf.matMul(B, x));
    }
    return transposed ? x.transpose() : x;
  });
}

/** FLOPs of one Newton-Schulz run on an m x n matrix: per step X X^T, A A and B X. */
export function newtonSchulzFlops(m: number, n: number, steps: number): number {
  const [r, c] = m <= n ? [m, n] : [n, m];
  return steps * (4 * r * r * c + 2 * r * r * r);
}
