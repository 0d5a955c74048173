/**
 * The training loop. One step: `accum` micro-batches of forward/backward with gradients summed,
 * the global gradient norm, the non-finite guard, callbacks' veto (z-score guard), clipping, and the
 * optimizer update at the scheduled learning rate. Everything else happens in callbacks.
 */
import * as tf from '@tensorflow/tfjs';
import type { RunConfig } from './config.ts';
import type { Batcher } from '../data/batcher.ts';
import type { Transformer } from '../model/transformer.ts';
import type { RoutedOptimizer } from '../optim/routing.ts';
import { buildSchedule } from '../optim/schedule.ts';
import { dispatch, type Callback, type TrainContext } from './callback.ts';
import { MetricsRecorder } from './metrics.ts';

export interface TrainerState {
  step: number;
  /** Steps whose update was dropped, by reason. */
  skipped: { nonfinite: number; vetoed: number };
}

export interface TrainerOptions {
  config: RunConfig;
  runDir: string;
  model: Transformer;
  optimizer: RoutedOptimizer;
  train: Batcher;
  callbacks: Callback[];
  /** Saves a checkpoint of the whole run (model, optimizer, data cursor, callbacks, trainer state). */
  save: (trainer: Trainer) => Promise<string>;
  /** State restored from a checkpoint (resume). */
  state?: TrainerState;
  /** Stop request: checked at each step's end; that step becomes the last one (checkpointed). */
  stop?: AbortSignal;
}

export class Trainer {
  readonly ctx: TrainContext;
  readonly state: TrainerState;
  private readonly lrFactor: (step: number) => number;

  constructor(private readonly o: TrainerOptions) {
    this.state = o.state ? structuredClone(o.state) : { step: 0, skipped: { nonfinite: 0, vetoed: 0 } };
    this.lrFactor = buildSchedule(o.config.schedule);
    this.ctx = {
      config: o.config,
      runDir: o.runDir,
      model: o.model,
      optimizer: o.optimizer,
      step: this.state.step,
      metrics: new MetricsRecorder(),
      isLastStep: false,
      stopRequested: false,
      saveCheckpoint: () => o.save(this),
    };
  }

  get callbacks(): readonly Callback[] {
    return this.o.callbacks;
  }

  /**
   * Trains until config.steps steps are done, from wherever the state says, or until a stop is
   * requested: the step in progress finishes, its step end runs with `ctx.stopRequested` (the
   * checkpoint callback saves), and the loop ends.
   */
  async fit(): Promise<void> {
    const ctx = this.ctx;
    const cbs = this.o.callbacks;
    await dispatch(cbs, 'onTrainStart', ctx);
    try {
      while (ctx.step < this.o.config.steps) {
        ctx.isLastStep = ctx.step + 1 === this.o.config.steps;
        await this.step();
        ctx.step = ++this.state.step;
        // On the cpu and native backends a step can run on microtasks alone; one turn of the event
        // loop per step lets signal handlers (Ctrl-C -> stop) and timers run.
        await new Promise((resolve) => setImmediate(resolve));
        ctx.stopRequested = !ctx.isLastStep && (this.o.stop?.aborted ?? false);
        await dispatch(cbs, 'onStepEnd', ctx);
        ctx.metrics.clear();
        if (ctx.stopRequested) break;
      }
    } catch (e) {
      await dispatch(cbs, 'onTrainEnd', ctx, e);
      throw e;
    }
    await dispatch(cbs, 'onTrainEnd', ctx);
  }

  /** One optimizer step over `accum` micro-batches; records train/* and throughput/* metrics. */
  private async step(): Promise<void> {
    const { config, model, optimizer, train } = this.o;
    const { size: B, seqLen: T, accum } = config.batch;
    const m = this.ctx.metrics;
    const start = performance.now();
    const grads = new Map<string, tf.Tensor>();
    let lossSum: tf.Scalar = tf.scalar(0);
    for (let k = 0; k < accum; k++) {
      const batch = train.next();
      const { value, grads: g } = tf.tidy(() => {
        const x = tf.tensor2d(batch.inputs, [B, T], 'int32');
        const y = tf.tensor2d(batch.targets, [B, T], 'int32');
        return tf.variableGrads(() => model.loss(x, y));
      });
      const nextSum = tf.add(lossSum, value) as tf.Scalar;
      tf.dispose([lossSum, value]);
      lossSum = nextSum;
      for (const [name, p] of model.params) {
        const gi = g[p.name];
        if (!gi) continue;
        const prev = grads.get(name);
        if (prev) {
          grads.set(name, tf.add(prev, gi));
          tf.dispose([prev, gi]);
        } else grads.set(name, gi);
      }
    }
    if (accum > 1) {
      for (const [name, g] of grads) {
        grads.set(name, tf.div(g, accum));
        g.dispose();
      }
    }
    try {
      // One read per step: the guard must see the loss and the norm before anything is updated.
      // Pairwise adds, not addN: WebGPU's AddN binds one storage buffer per input, and past the
      // adapter's per-stage limit (8 on lavapipe) the pipeline is invalid and the sum silently 0.
      const both = tf.tidy(() =>
        tf.stack([
          tf.div(lossSum, accum),
          [...grads.values()].map((g) => tf.sum(tf.square(g))).reduce((a, b) => tf.add(a, b), tf.scalar(0)),
        ]),
      );
      const [loss, normSq] = await both.data();
      both.dispose();
      const gradNorm = Math.sqrt(normSq!);

      let outcome: 'updated' | 'nonfinite' | 'vetoed' = 'updated';
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) outcome = 'nonfinite';
      else {
        for (const cb of this.o.callbacks) {
          if (cb.preUpdate && (await cb.preUpdate(this.ctx, { loss: loss!, gradNorm, grads })) === 'skip') {
            outcome = 'vetoed';
            break;
          }
        }
      }
      const factor = this.lrFactor(this.state.step);
      if (outcome === 'updated') {
        const clip = config.guard.clipGradNorm;
        if (clip > 0 && gradNorm > clip) {
          const scale = clip / (gradNorm + 1e-6);
          for (const [name, g] of grads) {
            grads.set(name, tf.mul(g, scale));
            g.dispose();
          }
        }
        optimizer.step(model.params, grads, factor);
      } else {
        this.state.skipped[outcome] += 1;
      }
      const ms = performance.now() - start;
      m.record('train/loss', loss!);
      m.record('train/grad_norm', gradNorm);
      m.record('train/lr_factor', factor);
      for (const [name, group] of optimizer.groups) m.record(`train/lr/${name}`, group.config.lr * factor);
      m.record('train/skipped', outcome === 'updated' ? 0 : 1);
      m.record('train/skipped_total', this.state.skipped.nonfinite + this.state.skipped.vetoed);
      m.record('throughput/step_ms', ms);
      m.record('throughput/tokens_per_s', (B * T * accum) / (ms / 1000));
    } finally {
      tf.dispose([lossSum, ...grads.values()]);
    }
  }
}
