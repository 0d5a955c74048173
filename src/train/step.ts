/**
 * One optimisation step: loss and gradients of every parameter, then the optimizer update.
 * The full trainer (accumulation, clipping, guards, callbacks) builds on this.
 */
import * as tf from '@tensorflow/tfjs';
import type { Transformer } from '../model/transformer.ts';
import type { Optimizer } from '../optim/optimizer.ts';

/**
 * Runs forward, backward and the update; disposes everything it creates. Resolves to the loss
 * before the update. The loss is read asynchronously (WebGPU in Node cannot read synchronously),
 * after the update has been queued, so the device never waits for the host inside a step.
 *
 * @param inputs int32 [B, T] token ids
 * @param targets int32 [B, T] next-token ids
 * @param lrFactor schedule multiplier applied to every optimizer group's base lr
 */
export async function trainStep(
  model: Transformer,
  optimizer: Optimizer,
  inputs: tf.Tensor2D,
  targets: tf.Tensor2D,
  lrFactor = 1,
): Promise<number> {
  const { value, grads } = tf.variableGrads(() => model.loss(inputs, targets));
  // variableGrads keys gradients by tfjs variable name; the optimizer speaks parameter names.
  const named = new Map<string, tf.Tensor>();
  for (const [name, p] of model.params) {
    const g = grads[p.name];
    if (g) named.set(name, g);
  }
  try {
    optimizer.step(model.params, named, lrFactor);
  } finally {
    tf.dispose(Object.values(grads));
  }
  try {
    return (await value.data())[0]!;
  } finally {
    value.dispose();
  }
}
