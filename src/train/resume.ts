/**
 * Where a run starts from: `--init-from` weights (a fresh run), or its latest good checkpoint (a
 * resume: weights, optimizer state, data cursor, every callback's state and the trainer's counters).
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batcher } from '../data/batcher.ts';
import type { Transformer } from '../model/transformer.ts';
import type { RoutedOptimizer } from '../optim/routing.ts';
import type { Callback } from './callback.ts';
import { loadModelWeights, optimizerTensors } from './checkpoint.ts';
import type { PlannedRun } from './plan.ts';
import type { TrainerState } from './trainer.ts';

/** The parts a start restores into. */
export interface RestoreTarget {
  model: Transformer;
  optimizer: RoutedOptimizer;
  batcher: Batcher;
  callbacks: readonly Callback[];
}

/**
 * Loads the planned run's starting point into freshly built parts and returns the trainer's saved
 * state (undefined for a fresh run, which starts at step 0).
 */
export function restoreRun(plan: PlannedRun, t: RestoreTarget, log: (line: string) => void): TrainerState | undefined {
  if (plan.initWeights) {
    for (const [name, p] of t.model.params) {
      const w = plan.initWeights.weights.get(name)!;
      tf.tidy(() => p.assign(tf.tensor(w.data, p.shape)));
    }
  }
  const from = plan.resumeFrom;
  if (!from) return undefined;
  const { model: weights, optimizer: optState } = from.checkpoint.checkpoint;
  loadModelWeights(t.model, weights, join(from.dir, 'model.safetensors'));
  const tensors = optimizerTensors(optState);
  try {
    t.optimizer.loadStateDict(tensors);
  } finally {
    tf.dispose([...tensors.values()]);
  }
  t.batcher.setState(from.state.data as ReturnType<Batcher['state']>);
  for (const cb of t.callbacks) {
    const s = from.state.callbacks[cb.name];
    if (s !== undefined && cb.loadStateDict) cb.loadStateDict(s);
  }
  log(`resumed ${plan.runDir} at step ${from.state.step}`);
  for (const notice of plan.notices) log(notice);
  return from.state.trainer as TrainerState;
}
