/**
 * RMS of the weight update per optimizer group ('update/<group>_rms', e.g. 'update/muon_rms') on logging
 * steps: the size of the step each optimizer actually takes, the quantity Muon's moonlight scale is
 * designed to match to AdamW's. Costs one parameter copy on logging steps only.
 */
import * as tf from '@tensorflow/tfjs';
import type { Callback, TrainContext } from '../callback.ts';
import { isLoggingStep } from './logging.ts';

export class UpdateRmsMonitor implements Callback {
  readonly name = 'update_rms';
  private before?: Map<string, tf.Tensor>;

  preUpdate(ctx: TrainContext): void {
    // ctx.step is still the number of steps completed before this one.
    if (!isLoggingStep(ctx, ctx.step + 1)) return;
    this.before = new Map([...ctx.model.params].map(([n, p]) => [n, tf.clone(p)]));
  }

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const before = this.before;
    if (!before) return;
    this.before = undefined;
    const sums = new Map<string, { sq: tf.Scalar; n: number }>();
    tf.tidy(() => {
      for (const [name, p] of ctx.model.params) {
        const group = ctx.optimizer.assignment.get(name)!;
        const sq = tf.sum(tf.square(tf.sub(p, before.get(name)!))) as tf.Scalar;
        const cur = sums.get(group);
        sums.set(group, { sq: cur ? (tf.add(cur.sq, sq) as tf.Scalar) : sq, n: (cur?.n ?? 0) + p.size });
      }
      for (const v of sums.values()) tf.keep(v.sq);
    });
    for (const [group, { sq, n }] of sums) {
      ctx.metrics.record(`update/${group}_rms`, Math.sqrt((await sq.data())[0]! / n));
      sq.dispose();
    }
    tf.dispose([...before.values()]);
  }
}
