/**
 * Saves a checkpoint every `checkpoint.every` steps, at the end and when a stop was requested; keeps
 * the newest `checkpoint.keep`.
 */
import type { Callback, TrainContext } from '../callback.ts';
import { pruneCheckpoints } from '../checkpoint.ts';

export class CheckpointCallback implements Callback {
  readonly name = 'checkpoint';
  lastSaved?: string;

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const every = ctx.config.checkpoint.every;
    if (!ctx.isLastStep && !ctx.stopRequested && !(every > 0 && ctx.step % every === 0)) return;
    this.lastSaved = await ctx.saveCheckpoint();
    // Prune only after the new checkpoint is complete: the previous one stays until then.
    pruneCheckpoints(ctx.runDir, ctx.config.checkpoint.keep);
    ctx.metrics.record('checkpoint/saved_step', ctx.step);
  }
}
