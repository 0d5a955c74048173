/**
 * Sinks: the console, metrics.jsonl and TensorBoard. They run last among the callbacks and write the
 * step's metrics on logging steps (every `logging.every` steps, the last step) and whenever an
 * evaluation produced metrics.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Callback, TrainContext } from '../callback.ts';
import { writeFileAtomicSync } from '../../io/atomic.ts';
import { formatSignal, signalOfMetrics } from '../signal_line.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const LoggingConfigSchema = z
  .strictObject({
    every: int(1).default(10).describe('Log training metrics every N steps.'),
    tensorboard: z.boolean().default(true).describe('Write TensorBoard event files into the run directory.'),
    histogramsEvery: int(0).default(100).describe('Weight histograms every N steps; 0 = off.'),
    console: z
      .enum(['auto', 'bar', 'lines', 'quiet'])
      .default('auto')
      .describe("Console output: a progress bar on a TTY, plain lines otherwise ('auto'), or force one."),
  })
  .prefault({})
  .describe('Console, metrics.jsonl and TensorBoard logging.');
export type LoggingConfig = z.output<typeof LoggingConfigSchema>;

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
  return (
    isLoggingStep(ctx) ||
    ctx.metrics.entries().some(([k]) => !EVERY_STEP.some((p) => k.startsWith(p))) ||
    ctx.metrics.byStep().some((s) => s.step === ctx.step && s.values.length > 0)
  );
}

/**
 * The metrics.jsonl rows of this step end: one per earlier step that got late results
 * (`MetricsRecorder.recordAt`, marked `"late": true`), then this step's row (with any late results
 * that describe this very step), when this step is written at all.
 */
function rowsOf(ctx: TrainContext): Record<string, number | string | boolean>[] {
  const time = new Date().toISOString();
  const rows: Record<string, number | string | boolean>[] = [];
  let own: [string, number][] = [];
  for (const s of ctx.metrics.byStep()) {
    if (s.values.length === 0) continue;
    if (s.step === ctx.step) own = s.values;
    else rows.push({ step: s.step, time, late: true, ...Object.fromEntries(s.values) });
  }
  if (shouldWrite(ctx)) rows.push({ step: ctx.step, time, ...Object.fromEntries([...ctx.metrics.entries(), ...own]) });
  return rows;
}

/** Appends one JSON object per logged step to `<runDir>/metrics.jsonl`. */
export class JsonlSink implements Callback {
  readonly name = 'jsonl';

  /**
   * A resumed run continues from its checkpoint's step: rows a killed or stopped process logged
   * after that step are dropped (the resumed run logs those steps again), and so is a partial last
   * line left by a kill mid-append. Nothing is rewritten when there is nothing to drop.
   */
  onTrainStart(ctx: TrainContext): void {
    const path = join(ctx.runDir, 'metrics.jsonl');
    if (!existsSync(path)) return;
    const text = readFileSync(path, 'utf8');
    const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
    const lines = complete.split('\n').filter((l) => l !== '');
    const kept = lines.filter((l) => {
      let step: unknown;
      try {
        step = (JSON.parse(l) as { step?: unknown }).step;
      } catch {
        return true; // not ours to judge: the report names a malformed line
      }
      return typeof step !== 'number' || step <= ctx.step;
    });
    if (kept.length === lines.length && complete.length === text.length) return;
    writeFileAtomicSync(path, kept.map((l) => l + '\n').join(''));
  }

  onStepEnd(ctx: TrainContext): void {
    const rows = rowsOf(ctx);
    if (rows.length === 0) return;
    appendFileSync(join(ctx.runDir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r) + '\n').join(''));
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
    const step = `step ${String(ctx.step).padStart(String(total).length)}/${total}`;
    const fields = [
      `loss ${loss?.toFixed(4) ?? '?'}`,
      `gnorm ${m.get('train/grad_norm')?.toFixed(3) ?? '?'}`,
      // Padded, so that the bar keeps its width from line to line.
      `${String(Math.round(this.tps)).padStart(6)} tok/s`,
      `ETA ${fmtDuration(eta).padStart(6)}${skipped}`,
    ];
    const lines: string[] = [];
    if (m.has('eval/loss')) {
      lines.push(
        `eval @ step ${ctx.step}: loss ${m.get('eval/loss')!.toFixed(4)}  ppl ${m.get('eval/perplexity')!.toFixed(2)}  bpb ${m.get('eval/bits_per_byte')!.toFixed(4)}`,
      );
    }
    // Monitors: this step's measurements, and late ones (a Hessian probe of earlier weights).
    const own = formatSignal(
      signalOfMetrics(
        (n) => m.get(n),
        m.entries().map(([k]) => k),
      ),
    );
    if (own) lines.push(`monitors @ step ${ctx.step}: ${own}`);
    for (const late of m.byStep()) {
      if (late.step === ctx.step && own) continue;
      const values = new Map(late.values);
      const text = formatSignal(signalOfMetrics((n) => values.get(n), [...values.keys()]));
      if (text) lines.push(`monitors @ step ${late.step}: ${text}`);
    }
    if (mode === 'bar') {
      const columns = this.out.columns && this.out.columns > 20 ? this.out.columns : 80;
      this.out.write(`\r\x1b[K${progressLine(step, fields, ctx.step / total, columns - 1)}`);
      if (lines.length > 0) this.out.write(`\n${lines.join('\n')}\n`);
      if (ctx.isLastStep || ctx.stopRequested) this.out.write('\n');
    } else {
      if (isLoggingStep(ctx)) this.out.write(`${step}  ${fields.join('  ')}\n`);
      for (const l of lines) this.out.write(l + '\n');
    }
  }
}

/**
 * The progress bar line within `width` characters: the bar shrinks first (to 10 cells), then the
 * least important fields go (gnorm, then tok/s), and what still does not fit is cut.
 */
export function progressLine(step: string, fields: readonly string[], done: number, width: number): string {
  const make = (cells: number, keep: readonly string[]) => {
    const filled = Math.max(0, Math.min(cells, Math.round(cells * done)));
    return `[${'#'.repeat(filled)}${'.'.repeat(cells - filled)}] ${step}  ${keep.join('  ')}`;
  };
  const [loss, gnorm, tps, eta] = fields;
  const variants = [
    [loss!, gnorm!, tps!, eta!],
    [loss!, tps!, eta!],
    [loss!, eta!],
  ];
  for (const keep of variants) {
    const fixed = make(0, keep).length;
    const cells = Math.min(24, width - fixed);
    if (cells >= 10) return make(cells, keep);
  }
  return make(10, variants[2]!).slice(0, Math.max(width, 0));
}
