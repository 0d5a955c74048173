/**
 * Everything around the training loop is a callback: evaluation, checkpointing, logging sinks,
 * monitors, the z-score guard. The loop calls named hooks in list order through one helper and knows
 * no callback by name. Monitors record namespaced metrics ('train/loss', 'eval/bpb') into the step's
 * MetricsRecorder; sinks (console, JSONL, TensorBoard), placed last, read them.
 */
import type { RoutedOptimizer } from '../optim/routing.ts';
import type { Transformer } from '../model/transformer.ts';
import type { RunConfig } from './config.ts';
import type { MetricsRecorder } from './metrics.ts';
import type * as tf from '@tensorflow/tfjs';

/** What a callback sees of the run. */
export interface TrainContext {
  readonly config: RunConfig;
  /** The run directory (config.json, metrics.jsonl, event files, checkpoints/). */
  readonly runDir: string;
  readonly model: Transformer;
  readonly optimizer: RoutedOptimizer;
  /** Optimizer steps completed so far (skipped steps count as completed). */
  step: number;
  /** Metrics of the current step. */
  readonly metrics: MetricsRecorder;
  /** True for the final step of the run. */
  isLastStep: boolean;
  /**
   * A stop was requested (Ctrl-C): this step ends the run early. The checkpoint callback saves;
   * monitors skip work that is not needed to resume.
   */
  stopRequested: boolean;
  /** Saves a checkpoint of the current state now (used by the checkpoint callback). */
  saveCheckpoint(): Promise<string>;
}

/** Loss and global gradient norm of the step about to be applied. */
export interface PreUpdateInfo {
  loss: number;
  gradNorm: number;
  /** Gradients after accumulation, before clipping; owned by the trainer. */
  grads: ReadonlyMap<string, tf.Tensor>;
}

export interface Callback {
  /** Unique name; keys this callback's state in checkpoints. */
  readonly name: string;
  onTrainStart?(ctx: TrainContext): void | Promise<void>;
  /**
   * Before the optimizer update of a step whose loss and gradients are finite. Return 'skip' to
   * leave the weights and optimizer state unchanged for this step.
   */
  preUpdate?(ctx: TrainContext, info: PreUpdateInfo): void | 'skip' | Promise<void | 'skip'>;
  /** After each step (updated or skipped); ctx.step is the number of completed steps. */
  onStepEnd?(ctx: TrainContext): void | Promise<void>;
  /** After the last step, or when training stops on an error (error set). */
  onTrainEnd?(ctx: TrainContext, error?: unknown): void | Promise<void>;
  /** What this callback measured, for summary.json (under `monitors.<name>`). */
  summary?(): unknown;
  /** JSON-serialisable state saved in checkpoints, restored on resume. */
  stateDict?(): unknown;
  loadStateDict?(state: unknown): void;
}

type Hook = 'onTrainStart' | 'onStepEnd' | 'onTrainEnd';

/** Runs one hook on every callback, in order. */
export async function dispatch(callbacks: readonly Callback[], hook: Hook, ctx: TrainContext, error?: unknown): Promise<void> {
  for (const cb of callbacks) {
    const fn = cb[hook];
    if (fn) await fn.call(cb, ctx, error);
  }
}
