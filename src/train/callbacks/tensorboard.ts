/**
 * TensorBoard sink: every metric of a logged step as a scalar, weight histograms every
 * `logging.histogramsEvery` steps, the config as text and the run's hyper-parameters (hparams plugin)
 * at the start. Event files go straight into the run directory, so `tensorboard --logdir runs/`
 * overlays runs.
 */
import type { Callback, TrainContext } from '../callback.ts';
import { EventWriter } from '../../io/tfevents.ts';
import { OPTIMIZER_NAMES } from '../../optim/registry.ts';
import { shouldWrite } from './logging.ts';

/** The flat hyper-parameters shown in TensorBoard's HPARAMS tab. */
function hparamsOf(ctx: TrainContext): Record<string, number | string | boolean> {
  const c = ctx.config;
  return {
    'model.norm': c.model.norm,
    'model.embedding': c.model.embedding,
    'model.hiddenSize': c.model.hiddenSize,
    'model.numLayers': c.model.numLayers,
    ...Object.fromEntries(OPTIMIZER_NAMES.map((n) => [`optimizer.${n}.lr`, c.optimizer[n].lr])),
    'optimizer.routing': JSON.stringify(c.optimizer.routing),
    'schedule.kind': c.schedule.kind,
    'batch.size': c.batch.size,
    'batch.seqLen': c.batch.seqLen,
    'batch.accum': c.batch.accum,
    steps: c.steps,
    seed: c.seed,
    backend: c.backend,
  };
}

export class TensorBoardSink implements Callback {
  readonly name = 'tensorboard';
  private writer?: EventWriter;

  onTrainStart(ctx: TrainContext): void {
    this.writer = new EventWriter(ctx.runDir);
    // A resume continues after its checkpoint's step: TensorBoard drops what an earlier process logged
    // from there on (a killed run's steps past its last checkpoint), as metrics.jsonl does.
    if (ctx.step > 0) this.writer.sessionStart(ctx.step + 1, `resumed from the checkpoint at step ${ctx.step}`);
    this.writer.text('config', '```json\n' + JSON.stringify(ctx.config, null, 2) + '\n```', ctx.step);
    this.writer.hparams(hparamsOf(ctx), ['eval/loss', 'eval/bits_per_byte', 'train/loss']);
    this.writer.flush();
  }

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const w = this.writer!;
    if (shouldWrite(ctx)) {
      for (const [tag, value] of ctx.metrics.entries()) w.scalar(tag, value, ctx.step);
    }
    // Monitors record histograms and images only on the steps they measure: always write them.
    for (const [tag, values] of ctx.metrics.histograms()) w.histogram(tag, values, ctx.step);
    for (const [tag, img] of ctx.metrics.images()) w.image(tag, img.png, img.width, img.height, ctx.step);
    // Late results (a Hessian probe of earlier weights) go under the step they describe.
    for (const s of ctx.metrics.byStep()) {
      for (const [tag, value] of s.values) w.scalar(tag, value, s.step);
      for (const [tag, img] of s.images) w.image(tag, img.png, img.width, img.height, s.step);
    }
    const every = ctx.config.logging.histogramsEvery;
    if (every > 0 && (ctx.step % every === 0 || ctx.isLastStep)) {
      for (const [name, p] of ctx.model.params) w.histogram(`weights/${name}`, await p.data(), ctx.step);
    }
    w.flush();
  }

  onTrainEnd(): void {
    this.writer?.close();
    this.writer = undefined;
  }
}
