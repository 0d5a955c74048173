/**
 * The Hessian probe (off by default; `hessian.every`). Every N steps it snapshots the weights and
 * hands them, with a fixed batch, to a worker thread (worker_threads + comlink) that computes the top
 * eigenvalues of the loss Hessian, the outlier count and gap ratio (reference/hessian.md's rule), the
 * Hutchinson trace and the SLQ spectral density, while the main thread keeps training. A result is
 * recorded at the first step end after it arrives, under the step whose weights it describes
 * (`MetricsRecorder.recordAt`; 'hessian/measured_at_step' says it too), so two results arriving in one
 * step never overwrite each other. At the last step the final probe is awaited, so the run ends with a
 * measurement; a stop request (Ctrl-C) does not wait. If a probe is still running when the next one is
 * due, the new one is skipped (no unbounded queue).
 */
import * as Comlink from 'comlink';
import { spawnWorker, type WorkerHandle } from '../../utils/worker.ts';
import type { Callback, TrainContext } from '../callback.ts';
import type { ProbeRequest, ProbeResult } from '../../metrics/probe.ts';
import { lineFigurePng } from '../../io/png.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const HessianConfigSchema = z
  .strictObject({
    every: int(0).default(0).describe('Probe every N steps (and at the end); 0 = off.'),
    topk: int(1).default(5).describe('Top eigenvalues reported (<= lanczosSteps).'),
    lanczosSteps: int(2).default(30).describe('Lanczos steps (full reorthogonalisation).'),
    outlierWindow: int(1)
      .optional()
      .describe(
        "The outlier rule's window: how many top Ritz values it looks at (<= lanczosSteps), so the most outliers it can count; default min(lanczosSteps / 2, max(2 topk, 10)). hessian/outliers_capped is 1 when the count filled it.",
      ),
    traceProbes: int(0).default(0).describe('Hutchinson probes for the trace; 0 = no trace.'),
    density: z.boolean().default(true).describe('Spectral density by stochastic Lanczos quadrature, logged as an image.'),
    batchSize: int(1).default(4).describe('Sequences of the fixed batch the Hessian is taken on.'),
    params: z
      .string()
      .min(1)
      .default('*')
      .describe("Restrict to parameters whose name matches this glob or /regex/ (e.g. 'model.layers.0.*')."),
    method: z
      .enum(['auto', 'exact', 'fd'])
      .default('auto')
      .describe("Hessian-vector products: 'exact' (double backprop), 'fd' (finite differences) or 'auto'."),
    backend: z
      .enum(['cpu', 'native', 'wasm', 'webgpu', 'tensorflow'])
      .default('wasm')
      .describe("Backend of the worker thread (not 'auto': a probe must not take the training GPU by surprise)."),
  })
  .superRefine((c, ctx) => {
    if (c.outlierWindow !== undefined && c.outlierWindow > c.lanczosSteps) {
      ctx.addIssue({
        code: 'custom',
        path: ['outlierWindow'],
        message: `must be <= hessian.lanczosSteps (${c.lanczosSteps}): the rule can only look at computed Ritz values`,
      });
    }
    if (c.topk > c.lanczosSteps) {
      ctx.addIssue({
        code: 'custom',
        path: ['topk'],
        message: `eigenvalues need at least as many Lanczos steps; hessian.lanczosSteps is ${c.lanczosSteps}`,
      });
    }
  })
  .prefault({})
  .describe('The Hessian probe: outlier eigenvalues of the loss Hessian, in a worker thread (off by default).');
export type HessianConfig = z.output<typeof HessianConfigSchema>;

type ProbeApi = { runProbe(req: ProbeRequest): Promise<ProbeResult> };

export class HessianProbe implements Callback {
  readonly name = 'hessian';
  private worker?: WorkerHandle<ProbeApi>;
  private pending?: { step: number; promise: Promise<ProbeResult> };
  private done: { step: number; result?: ProbeResult; error?: string }[] = [];
  last?: { step: number } & ProbeResult;
  skippedBusy = 0;

  /** @param batch the fixed batch the Hessian is taken on (int32 [B*T] each) */
  constructor(private readonly batch: { inputs: Int32Array; targets: Int32Array }) {}

  private start(): Comlink.Remote<ProbeApi> {
    this.worker ??= spawnWorker<ProbeApi>(new URL('../../metrics/probe_worker.mjs', import.meta.url));
    return this.worker.remote;
  }

  private async launch(ctx: TrainContext): Promise<void> {
    const h = ctx.config.hessian;
    const weights: Record<string, Float32Array> = {};
    const buffers: ArrayBuffer[] = [];
    for (const [name, p] of ctx.model.params) {
      const w = Float32Array.from((await p.data()) as Float32Array);
      weights[name] = w;
      buffers.push(w.buffer as ArrayBuffer);
    }
    const req: ProbeRequest = {
      backend: h.backend,
      model: ctx.config.model,
      weights,
      inputs: this.batch.inputs.slice(),
      targets: this.batch.targets.slice(),
      batchSize: h.batchSize,
      seqLen: ctx.config.batch.seqLen,
      topk: h.topk,
      lanczosSteps: h.lanczosSteps,
      traceProbes: h.traceProbes,
      density: h.density,
      params: h.params,
      method: h.method,
      seed: ctx.config.seed + ctx.step,
      outlierWindow: h.outlierWindow,
    };
    const step = ctx.step;
    const promise = this.start().runProbe(Comlink.transfer(req, buffers));
    this.pending = { step, promise };
    promise
      .then(
        (result) => this.done.push({ step, result }),
        (e: unknown) => this.done.push({ step, error: (e as Error).message }),
      )
      .finally(() => {
        if (this.pending?.promise === promise) this.pending = undefined;
      });
  }

  private flush(ctx: TrainContext): void {
    for (const { step, result, error } of this.done.splice(0)) {
      if (error !== undefined || !result) throw new Error(`Hessian probe at step ${step} failed: ${error}`);
      const m = ctx.metrics;
      const record = (name: string, value: number) => m.recordAt(step, name, value);
      record('hessian/measured_at_step', step);
      result.topk.forEach((v, i) => record(`hessian/eig_${i + 1}`, v));
      record('hessian/outliers', result.outlierCount);
      record('hessian/outlier_window', result.outlierWindow);
      record('hessian/outliers_capped', result.outliersCapped ? 1 : 0);
      record('hessian/gap_ratio', result.gapRatio);
      record('hessian/bulk_edge', result.bulkEdge);
      record('hessian/seconds', result.seconds);
      if (result.trace) {
        record('hessian/trace', result.trace.value);
        record('hessian/trace_stderr', result.trace.stderr);
      }
      if (result.density) {
        // Log density: the outliers carry ~1/n of the mass each and vanish on a linear scale.
        // A figure with eigenvalue and (log) density axes, ticks and labels, readable on its own.
        const figure = lineFigurePng(result.density.grid, result.density.density, {
          title: `hessian spectral density, step ${step}`,
          xLabel: 'eigenvalue',
          yLabel: 'density',
          logY: true,
        });
        m.recordImageAt(step, 'hessian/density', figure);
      }
      this.last = { step, ...result };
    }
  }

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const every = ctx.config.hessian.every;
    if (every === 0) return;
    this.flush(ctx);
    if (ctx.step % every === 0 || ctx.isLastStep) {
      if (this.pending && ctx.isLastStep) await this.pending.promise.catch(() => {});
      if (this.pending) {
        this.skippedBusy++;
        ctx.metrics.record('hessian/skipped_busy', this.skippedBusy);
      } else await this.launch(ctx);
    }
    if (ctx.isLastStep && this.pending) {
      await this.pending.promise.catch(() => {});
      // The .then handlers above run before this continuation: the result is in `done`.
      await Promise.resolve();
      this.flush(ctx);
    }
  }

  async onTrainEnd(ctx: TrainContext): Promise<void> {
    // A stop request ends the run now: the running probe is dropped with its worker.
    if (this.pending && !ctx.stopRequested) await this.pending.promise.catch(() => {});
    await this.worker?.close();
    this.worker = undefined;
  }

  summary(): unknown {
    return this.last ? { ...this.last, density: undefined } : null;
  }
}
