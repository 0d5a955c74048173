/**
 * A refused command changes nothing, and an interrupted run loses nothing:
 * - `--resume` overrides are checked against the checkpoint before anything is written (model
 *   sizes, steps below the checkpoint, a schedule that would jump);
 * - a run that fails before training (bad data path) leaves no directory that blocks its name;
 * - a stop request (Ctrl-C) finishes the step, saves a checkpoint and releases the lock; metrics
 *   rows past the checkpoint a resume continues from are dropped, so no step is logged twice;
 * - every Hessian probe's result reaches metrics.jsonl, also when two arrive in one step.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../src/train/checkpoint.ts';
import { train } from '../../src/train/run.ts';
import { jsonDiff } from '../../src/train/resume_check.ts';
import type { Callback, TrainContext } from '../../src/train/callback.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';
import { HessianProbe } from '../../src/train/callbacks/hessian.ts';
import { JsonlSink } from '../../src/train/callbacks/logging.ts';
import { MetricsRecorder } from '../../src/train/metrics.ts';
import { resolveRunConfig } from '../../src/train/config.ts';
import { readMetricsJsonl } from '../../src/sweep/report.ts';
import type { ProbeResult } from '../../src/metrics/probe.ts';
import { readEvents } from '../helpers/tfevents_read.ts';
import { decodeMessage, getBytes, getInt64, getVarint } from '../helpers/protobuf_decode.ts';

const quiet = () => {};
const configText = (runDir: string) => readFileSync(join(runDir, 'config.json'), 'utf8');

describe('--resume validates overrides before writing anything', () => {
  it('a model size that differs from the checkpoint is refused, config.json untouched, and a plain resume still works', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 4, schedule: { kind: 'constant' } }), log: quiet });
    const before = configText(run.runDir);
    await expect(
      train({ resume: run.runDir, overrides: ['model.hiddenSize=64', 'model.numLayers=3', 'steps=6'], log: quiet }),
    ).rejects.toThrow(/model\.hiddenSize: checkpoint 32, now 64.*model\.numLayers: checkpoint 2, now 3/s);
    expect(configText(run.runDir)).toBe(before);
    const resumed = await train({ resume: run.runDir, overrides: ['steps=6'], log: quiet });
    expect(resumed.steps).toBe(6);
  });

  it('steps below (or at) the checkpoint step are refused; nothing is written', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 10, schedule: { kind: 'constant' } }), log: quiet });
    const before = configText(run.runDir);
    const metrics = readFileSync(join(run.runDir, 'metrics.jsonl'), 'utf8');
    await expect(train({ resume: run.runDir, overrides: ['steps=8'], log: quiet })).rejects.toThrow(
      /steps: 8 is below the checkpoint's step 10/,
    );
    await expect(train({ resume: run.runDir, overrides: ['steps=10'], log: quiet })).rejects.toThrow(/already complete at step 10/);
    // A plain resume of a finished run (a requeued scheduler task) does nothing and says so.
    const lines: string[] = [];
    const again = await train({ resume: run.runDir, log: (l) => lines.push(l) });
    expect(again.steps).toBe(10);
    expect(lines.join('\n')).toMatch(/already complete at step 10; nothing to train/);
    expect(configText(run.runDir)).toBe(before);
    // Killed after the last checkpoint but before summary.json: a plain resume completes the run.
    rmSync(join(run.runDir, 'summary.json'));
    const done = await train({ resume: run.runDir, log: quiet });
    expect(done.steps).toBe(10);
    expect(existsSync(join(run.runDir, 'summary.json'))).toBe(true);
    expect(readFileSync(join(run.runDir, 'metrics.jsonl'), 'utf8')).toBe(metrics);
  });

  it('extending a decayed cosine schedule is refused unless asked for; then the jump is reported', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 10 }), log: quiet }); // cosine over 10 steps
    const before = configText(run.runDir);
    await expect(train({ resume: run.runDir, overrides: ['steps=50'], log: quiet })).rejects.toThrow(
      /lr factor at step 10 from 0\.1000 to 0\.9\d+.*--extend-schedule.*schedule\.totalSteps=10/s,
    );
    expect(configText(run.runDir)).toBe(before);
    // Keeping the old schedule length continues at the final lr: allowed without the flag.
    const kept = await train({ resume: run.runDir, overrides: ['steps=12', 'schedule.totalSteps=10'], log: quiet });
    expect(kept.steps).toBe(12);
    const lines: string[] = [];
    const ext = await train({
      resume: run.runDir,
      overrides: ['steps=20', 'schedule.totalSteps=20'],
      extendSchedule: true,
      log: (l) => lines.push(l),
    });
    expect(ext.steps).toBe(20);
    expect(lines.join('\n')).toMatch(/extending the schedule: lr factor at step 12 0\.1000 -> 0\.\d+/);
    // schedule.totalSteps is now pinned at 20 in the run's config: asking to extend again moves nothing, and says so.
    const pinned: string[] = [];
    await train({ resume: run.runDir, overrides: ['steps=22'], extendSchedule: true, log: (l) => pinned.push(l) });
    expect(pinned.join('\n')).toContain('--extend-schedule changes nothing: schedule.totalSteps stays 20');
  });

  it('a constant schedule (or a wsd still in its stable phase) extends without the flag', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 6, schedule: { kind: 'wsd', decayFraction: 0.2 } }), log: quiet });
    // wsd over 6 steps decays from step 4.8: step 6 is in the decay, so extending jumps and is refused.
    await expect(train({ resume: run.runDir, overrides: ['steps=30'], log: quiet })).rejects.toThrow(/--extend-schedule/);
    const out2 = tempDir();
    const stable = await train({
      config: tinyRun(out2, { steps: 4, schedule: { kind: 'wsd', totalSteps: 20, decayFraction: 0.2 } }),
      log: quiet,
    });
    const r = await train({ resume: stable.runDir, overrides: ['steps=8', 'schedule.totalSteps=40'], log: quiet });
    expect(r.steps).toBe(8);
  });
});

describe('jsonDiff', () => {
  it('lists differing leaves; a key the checkpoint lacks (added later, with its default) is not a difference', () => {
    expect(jsonDiff({ a: 1, b: { c: 2 } }, { a: 1, b: { c: 3 } }, 'model')).toEqual(['model.b.c: checkpoint 2, now 3']);
    expect(jsonDiff({ a: 1 }, { a: 1, added: 0 }, 'model')).toEqual([]);
    expect(jsonDiff({ a: 1, gone: 2 }, { a: 1 }, 'model')).toEqual(['model.gone: checkpoint 2, now undefined']);
  });
});

describe('a run that fails before training leaves nothing behind', () => {
  it('a bad data path creates no run directory, so the same name can be trained right after', async () => {
    const out = tempDir();
    const bad = tinyRun(out, { steps: 3, data: { source: 'text', train: [join(out, 'missing.txt')] } });
    await expect(train({ config: bad, log: quiet })).rejects.toThrow(/missing\.txt/);
    expect(existsSync(join(out, 'tiny'))).toBe(false);
    const ok = await train({ config: tinyRun(out, { steps: 3 }), log: quiet });
    expect(ok.steps).toBe(3);
  });

  it('a directory left without a checkpoint says so, for train and for --resume', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 3 }), log: quiet });
    rmSync(join(run.runDir, 'checkpoints'), { recursive: true });
    await expect(train({ config: tinyRun(out, { steps: 3 }), log: quiet })).rejects.toThrow(
      /stopped before its first checkpoint.*remove it/,
    );
    await expect(train({ resume: run.runDir, log: quiet })).rejects.toThrow(/no complete checkpoint.*remove it/);
  });
});

/** Requests a stop (as Ctrl-C does) once `step` steps are done. */
function stopAt(step: number, controller: AbortController): Callback {
  return {
    name: 'stop-at',
    onStepEnd(ctx: TrainContext) {
      if (ctx.step === step) controller.abort();
    },
  };
}

describe('a stop request (Ctrl-C) saves the run', () => {
  it('finishes the step, saves a checkpoint, releases the lock; the resume logs every step once', async () => {
    const out = tempDir();
    const controller = new AbortController();
    const lines: string[] = [];
    const s = await train({
      config: tinyRun(out, { steps: 20, checkpoint: { every: 5, keep: 10 }, schedule: { kind: 'cosine', totalSteps: 20 } }),
      stop: controller.signal,
      callbacks: [stopAt(7, controller)],
      log: (l) => lines.push(l),
    });
    expect(s.stopped).toBe(true);
    expect(existsSync(join(s.runDir, 'summary.json'))).toBe(false); // not finished: a sweep resumes it
    // The step during which the stop came is finished (7), and the next one ends the run (8).
    expect(s.steps).toBe(8);
    expect(listCheckpoints(s.runDir)[0]!.step).toBe(8);
    expect(existsSync(join(s.runDir, '.lock'))).toBe(false);
    const resumed = await train({ resume: s.runDir, log: quiet });
    expect(resumed.resumedFrom).toMatch(/step_00000008$/);
    const steps = readMetrics(s.runDir).map((r) => r.step);
    expect(steps).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('a stop requested before training starts writes nothing', async () => {
    const out = tempDir();
    const controller = new AbortController();
    controller.abort();
    await expect(train({ config: tinyRun(out, { steps: 3 }), stop: controller.signal, log: quiet })).rejects.toThrow(
      'stopped before training started; nothing was written',
    );
    expect(existsSync(join(out, 'tiny'))).toBe(false);
  });

  it('rows a killed run logged past its last checkpoint are dropped on resume', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 8, schedule: { kind: 'constant' } }), log: quiet });
    // As if killed after step 8 was logged but before its checkpoint: the newest is step 5.
    rmSync(listCheckpoints(run.runDir)[0]!.dir, { recursive: true });
    await train({ resume: run.runDir, overrides: ['steps=10'], log: quiet });
    const steps = readMetrics(run.runDir).map((r) => r.step);
    expect(steps).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    // TensorBoard: the resumed process's event file starts with SessionLog START at step 6, which makes
    // TensorBoard discard the earlier file's events of steps >= 6 (event.proto: session_log = 7, status = 1).
    const files = readdirSync(run.runDir)
      .filter((f) => f.includes('tfevents'))
      .sort();
    expect(files.length).toBe(2);
    const starts = readEvents(join(run.runDir, files[1]!))
      .filter((e) => e.has(7))
      .map((e) => [getInt64(e, 2), getVarint(decodeMessage(getBytes(e, 7)!), 1)]);
    expect(starts).toEqual([[6n, 1n]]);
  });
});

describe('Hessian probes', () => {
  it('two results arriving in one step (every=10, 20 steps) are both logged, each under the step it describes', async () => {
    // A probe worker we control: step 10's probe is still running when step 20, the last, is due.
    const resolvers: ((r: ProbeResult) => void)[] = [];
    const result = (eig: number): ProbeResult =>
      ({ topk: [eig, 1], outlierCount: 1, gapRatio: 2, bulkEdge: 1, seconds: 0.1 }) as ProbeResult;
    const probe = new HessianProbe({ inputs: new Int32Array(4), targets: new Int32Array(4) });
    (probe as unknown as { start: () => unknown }).start = () => ({
      runProbe: () => new Promise<ProbeResult>((res) => resolvers.push(res)),
    });
    const runDir = tempDir();
    const config = resolveRunConfig({ steps: 20, hessian: { every: 10 }, logging: { every: 5 } });
    const ctx = {
      config,
      runDir,
      model: { params: new Map([['w', { data: async () => new Float32Array([1, 2]) }]]) },
      step: 0,
      metrics: new MetricsRecorder(),
      isLastStep: false,
      stopRequested: false,
    } as unknown as TrainContext;
    const sink = new JsonlSink();
    for (let step = 1; step <= 20; step++) {
      ctx.step = step;
      ctx.isLastStep = step === 20;
      if (step === 20) {
        resolvers[0]!(result(10)); // arrives during the last step
        setTimeout(() => resolvers[1]!(result(20)), 10);
      }
      await probe.onStepEnd(ctx);
      sink.onStepEnd(ctx);
      ctx.metrics.clear();
    }
    const rows = readMetrics(runDir).filter((r) => r['hessian/eig_1'] !== undefined);
    expect(rows.map((r) => [r.step, r['hessian/measured_at_step'], r['hessian/eig_1']])).toEqual([
      [10, 10, 10],
      [20, 20, 20],
    ]);
    // The sweep report's reader merges the late row into step 10's (which holds the training metrics).
    const { rows: merged } = readMetricsJsonl(join(runDir, 'metrics.jsonl'));
    expect(merged.map((r) => r.step)).toEqual([1, 5, 10, 15, 20]);
    expect(merged.find((r) => r.step === 10)!['hessian/eig_1']).toBe(10);
  });
});
