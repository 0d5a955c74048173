/**
 * The state round trip every optimizer must pass: run `steps` updates on optimizer A, copy its
 * parameters and stateDict into a fresh optimizer B, and take one more step on both: the parameters
 * must be bit-identical. stateDict's tensors are disposed before B steps, so B must not have taken
 * ownership of them. Returns B (still usable, e.g. for error checks); the caller disposes it.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import type { Optimizer } from '../../src/optim/optimizer.ts';

type Params = Map<string, tf.Variable>;

export function expectStateRoundTrip(
  a: Params,
  b: Params,
  make: (params: Params) => Optimizer,
  grads: Map<string, tf.Tensor>[],
  lrFactor: number,
): Optimizer {
  const optA = make(a);
  for (const g of grads.slice(0, -1)) optA.step(a, g, lrFactor);
  for (const [n, p] of b) p.assign(a.get(n)!);
  const optB = make(b);
  const state = optA.stateDict();
  optB.loadStateDict(state);
  tf.dispose([...state.values()]);
  const last = grads[grads.length - 1]!;
  optA.step(a, last, lrFactor);
  optB.step(b, last, lrFactor);
  for (const [n, p] of a) expect(Array.from(b.get(n)!.dataSync()), n).toEqual(Array.from(p.dataSync()));
  optA.dispose();
  return optB;
}
