/** summary.json: what a finished (or stopped) run reports, and the callback that tracks its tail. */
import type { Callback, TrainContext } from './callback.ts';
import type { EvalResult } from './callbacks/eval.ts';

export interface RunSummary {
  name: string;
  runDir: string;
  backend: { name: string; detail: string };
  /** Steps completed (below config.steps when the run was stopped). */
  steps: number;
  /** Stopped by a stop request (Ctrl-C) before config.steps; its last checkpoint is at `steps`. */
  stopped: boolean;
  params: number;
  tokensSeen: number;
  /** Seconds from the first step to the end, evaluations, monitors and checkpoints included. */
  wallSeconds: number;
  /** Seconds spent in training steps alone. */
  trainSeconds: number;
  /** Training throughput: tokens of this session's steps over trainSeconds. */
  tokensPerSecond: number;
  finalTrainLoss: number;
  eval?: EvalResult;
  unigramBaseline: { loss: number; bitsPerByte: number };
  skippedSteps: { nonfinite: number; vetoed: number };
  lastCheckpoint?: string;
  resumedFrom?: string;
  /** What each monitor measured last (outliers, hessian, ...), by callback name. */
  monitors: Record<string, unknown>;
}

/** Tracks the tail of the training loss and throughput for summary.json. */
export class SummaryTracker implements Callback {
  readonly name = 'summary';
  losses: number[] = [];
  /** Milliseconds spent in training steps (forward, backward, update), summed. */
  stepMs = 0;

  onStepEnd(ctx: TrainContext): void {
    const l = ctx.metrics.get('train/loss');
    if (l !== undefined && Number.isFinite(l)) this.losses.push(l);
    if (this.losses.length > 20) this.losses.shift();
    this.stepMs += ctx.metrics.get('throughput/step_ms') ?? 0;
  }

  /** Mean of the last (up to 20) finite training losses. */
  finalLoss(): number {
    return this.losses.reduce((a, b) => a + b, 0) / Math.max(this.losses.length, 1);
  }
}
