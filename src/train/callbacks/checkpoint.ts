/**
 * Saves a checkpoint every `checkpoint.every` steps, at the end and when a stop was requested; keeps
 * the newest `checkpoint.keep`.
 */
import type { Callback, TrainContext } from '../callback.ts';
import { pruneCheckpoints } from '../checkpoint.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const CheckpointConfigSchema = z
  .strictObject({
    every: int(0).default(250).describe('Save every N steps (and at the end); 0 = only at the end.'),
    keep: int(1).default(3).describe('Checkpoints kept; older ones are deleted after a newer one is complete.'),
  })
  .prefault({})
  .describe('Checkpoints (atomic, checksummed) in <run>/checkpoints/.');
export type CheckpointConfig = z.output<typeof CheckpointConfigSchema>;

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
