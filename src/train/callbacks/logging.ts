/**
 * Sinks: the console, metrics.jsonl and TensorBoard. They run last among the callbacks and write the
 * step's metrics on logging steps (every `logging.every` steps, the last step) and whenever an
 * evaluation produced metrics.
 */
import { appendFileSync, existsSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { Callback, TrainContext } from '../callback.ts';

/** Whether step number `step` (1-based count of completed steps) is a logging step. */
export function isLoggingStep(ctx: TrainContext, step = ctx.step): boolean {
  return step % ctx.config.logging.every === 0 || step === ctx.config.steps || step === 1;
}

/** Metrics recorded on every step; the rest (eval, monitors) are recorded only when they measure. */
const EVERY_STEP = ['train/', 'throughput/', 'update/', 'guard/'];

/**
 * Whether sinks write this step: on logging steps, and on any step where a callback recorded a metric
 * that is not an every-step one (an evaluation, a monitor's measurement), so none of those is lost.
 */
export function shouldWrite(ctx: TrainContext): boolean {
  return isLoggingStep(ctx) || ctx.metrics.entries().some(([k]) => !EVERY_STEP.some((p) => k.startsWith(p)));
}

/** Appends one JSON object per logged step to `<runDir>/metrics.jsonl`. */
export class JsonlSink implements Callback {
  readonly name = 'jsonl';

  /**
   * A process killed mid-append leaves a partial last line; a resumed run would bury it mid-file.
   * Cut it off before appending (complete lines are kept: readers take the last row of a step).
   */
  onTrainStart(ctx: TrainContext): void {
    const path = join(ctx.runDir, 'metrics.jsonl');
    if (!existsSync(path)) return;
    const bytes = readFileSync(path);
    if (bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) truncateSync(path, bytes.lastIndexOf(0x0a) + 1);
  }

  onStepEnd(ctx: TrainContext): void {
    if (!shouldWrite(ctx)) return;
    const row: Record<string, number | string> = { step: ctx.step, time: new Date().toISOString() };
    for (const [k, v] of ctx.metrics.entries()) row[k] = v;
    appendFileSync(join(ctx.runDir, 'metrics.jsonl'), JSON.stringify(row) + '\n');
  }
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

/**
 * A progress bar (step, loss, tok/s, ETA) redrawn in place on a TTY; plain lines otherwise
 * (logs, CI). Evaluation results always get a line of their own.
 */
export class ConsoleSink implements Callback {
  readonly name = 'console';
  private startStep = 0;
  private started = 0;
  private tps = 0;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  onTrainStart(ctx: TrainContext): void {
    this.startStep = ctx.step;
    this.started = performance.now();
  }

  onStepEnd(ctx: TrainContext): void {
    const mode = ctx.config.logging.console === 'auto' ? (this.out.isTTY ? 'bar' : 'lines') : ctx.config.logging.console;
    if (mode === 'quiet') return;
    const m = ctx.metrics;
    const tps = m.get('throughput/tokens_per_s');
    if (tps !== undefined) this.tps = this.tps === 0 ? tps : 0.9 * this.tps + 0.1 * tps;
    const total = ctx.config.steps;
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = ((total - ctx.step) * elapsed) / Math.max(ctx.step - this.startStep, 1);
    const loss = m.get('train/loss');
    const skipped = m.get('train/skipped') ? ' SKIPPED' : '';
    const line =
      `step ${String(ctx.step).padStart(String(total).length)}/${total}  loss ${loss?.toFixed(4) ?? '?'}` +
      `  gnorm ${m.get('train/grad_norm')?.toFixed(3) ?? '?'}  ${Math.round(this.tps)} tok/s  ETA ${fmtDuration(eta)}${skipped}`;
    const evalLine = m.has('eval/loss')
      ? `eval @ step ${ctx.step}: loss ${m.get('eval/loss')!.toFixed(4)}  ppl ${m.get('eval/perplexity')!.toFixed(2)}  bpb ${m.get('eval/bits_per_byte')!.toFixed(4)}`
      : undefined;
    if (mode === 'bar') {
      const width = 24;
      const filled = Math.round((width * ctx.step) / total);
      this.out.write(`\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${line}`);
      if (evalLine) this.out.write(`\n${evalLine}\n`);
      if (ctx.isLastStep) this.out.write('\n');
    } else {
      if (isLoggingStep(ctx)) this.out.write(line + '\n');
      if (evalLine) this.out.write(evalLine + '\n');
    }
  }
}
