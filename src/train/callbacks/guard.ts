/**
 * The z-score instability guard (as llm.c does): an update whose loss or gradient norm sits more than
 * `guard.skipZScore` standard deviations above the mean of the recent window of accepted steps is
 * skipped. Non-finite losses and gradients are dropped by the trainer itself, unconditionally.
 *
 * Two protections keep the rule from misfiring: the standard deviation is floored at 1% of the mean
 * (a flat history must not make a tiny change infinitely significant), and after `minHistory`
 * consecutive skips the guard accepts the step and restarts its window (the level has really moved;
 * skipping forever would stall the run).
 */
import type { Callback, PreUpdateInfo, TrainContext } from '../callback.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const GuardConfigSchema = z
  .strictObject({
    clipGradNorm: z.number().min(0).default(1.0).describe('Clip the global gradient norm to this value; 0 disables clipping.'),
    skipZScore: z
      .number()
      .min(0)
      .default(0)
      .describe('Skip an update whose loss or grad-norm z-score over the recent window exceeds this; 0 = off.'),
    window: int(2).default(50).describe('Steps in the z-score window.'),
    minHistory: int(2).default(20).describe('Steps observed before the z-score rule may skip anything.'),
  })
  .prefault({})
  .describe('Guards against instability.');
export type GuardConfig = z.output<typeof GuardConfigSchema>;

interface GuardState {
  losses: number[];
  norms: number[];
  consecutiveSkips: number;
}

/** (x - mean) / std over `history`, with std floored at 1% of |mean|. */
export function zScore(history: readonly number[], x: number): number {
  const n = history.length;
  const mean = history.reduce((a, b) => a + b, 0) / n;
  const variance = history.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  const std = Math.max(Math.sqrt(variance), 0.01 * Math.abs(mean));
  return std > 0 ? (x - mean) / std : 0;
}

export class ZScoreGuard implements Callback {
  readonly name = 'guard';
  private s: GuardState = { losses: [], norms: [], consecutiveSkips: 0 };

  preUpdate(ctx: TrainContext, info: PreUpdateInfo): 'skip' | void {
    const { skipZScore, window, minHistory } = ctx.config.guard;
    if (skipZScore > 0 && this.s.losses.length >= minHistory) {
      const zl = zScore(this.s.losses, info.loss);
      const zg = zScore(this.s.norms, info.gradNorm);
      ctx.metrics.record('guard/loss_z', zl);
      ctx.metrics.record('guard/grad_norm_z', zg);
      if (zl > skipZScore || zg > skipZScore) {
        if (++this.s.consecutiveSkips <= minHistory) return 'skip';
        // A persistent shift, not a spike: accept it and rebuild the window from here.
        this.s.losses = [];
        this.s.norms = [];
      }
    }
    this.s.consecutiveSkips = 0;
    this.s.losses.push(info.loss);
    this.s.norms.push(info.gradNorm);
    if (this.s.losses.length > window) {
      this.s.losses.shift();
      this.s.norms.shift();
    }
  }

  stateDict(): unknown {
    return structuredClone(this.s);
  }

  loadStateDict(state: unknown): void {
    this.s = structuredClone(state as GuardState);
  }
}
