/**
 * The training loop's promises: flat tfjs memory, non-finite steps never reaching the weights,
 * gradient accumulation equal to one large batch, what a run directory holds (summary, metrics,
 * TensorBoard events decoded independently), and clear errors for bad runs.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ConfigError, DataError, OspError } from '../../src/errors.ts';
import type { Callback, PreUpdateInfo, TrainContext } from '../../src/train/callback.ts';
import { ZScoreGuard } from '../../src/train/callbacks/guard.ts';
import { train } from '../../src/train/run.ts';
import { getDouble, getFloat, getInt64, getMessage, getString } from '../helpers/protobuf_decode.ts';
import { pluginName, readEvents, values } from '../helpers/tfevents_read.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';

const quiet = () => {};

describe('trainer', () => {
  it('keeps tfjs memory flat across steps, evals and checkpoints', async () => {
    const counts: number[] = [];
    const probe: Callback = { name: 'probe', onStepEnd: () => void counts.push(tf.memory().numTensors) };
    await train({
      config: tinyRun(tempDir(), { steps: 12, eval: { every: 4, batches: 2 }, checkpoint: { every: 3 } }),
      callbacks: [probe],
      log: quiet,
    });
    expect(counts).toHaveLength(12);
    // Step 1 may create lazily cached tensors (the causal mask); from then on nothing accumulates.
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('a non-finite loss never reaches the weights; the step is counted and training goes on', async () => {
    let snapshot: Float32Array[] = [];
    const weights = async (ctx: TrainContext) =>
      Promise.all([...ctx.model.params.values()].map(async (p) => (await p.data()) as Float32Array));
    const poison: Callback = {
      name: 'poison',
      onTrainStart(ctx) {
        const model = ctx.model;
        const loss = model.loss.bind(model);
        // Step 5 (ctx.step === 4 while it runs) produces NaN loss and NaN gradients.
        model.loss = (x, y) => (ctx.step === 4 ? (tf.mul(loss(x, y), NaN) as tf.Scalar) : loss(x, y));
      },
      async onStepEnd(ctx) {
        if (ctx.step === 4) snapshot = await weights(ctx);
        if (ctx.step === 5) {
          const after = await weights(ctx);
          after.forEach((w, i) => expect(w).toEqual(snapshot[i]));
        }
      },
    };
    const s = await train({ config: tinyRun(tempDir(), { steps: 8 }), callbacks: [poison], log: quiet });
    expect(s.skippedSteps).toEqual({ nonfinite: 1, vetoed: 0 });
    const rows = readMetrics(s.runDir);
    expect(rows.find((r) => r.step === 5)!['train/skipped']).toBe(1);
    expect(rows.find((r) => r.step === 8)!['train/skipped_total']).toBe(1);
    expect(rows.filter((r) => r.step !== 5).every((r) => Number.isFinite(r['train/loss']))).toBe(true);
  });

  it('gradient accumulation over 2 x 2 sequences equals one batch of 4', async () => {
    const seen = (into: PreUpdateInfo[]): Callback => ({
      name: 'seen',
      preUpdate: (_ctx, info) => void into.push({ ...info, grads: new Map() }),
    });
    const a: PreUpdateInfo[] = [];
    const b: PreUpdateInfo[] = [];
    // The batcher hands out windows in the same order either way, so both steps see the same data.
    const one = { steps: 1, schedule: { kind: 'constant' } };
    await train({ config: tinyRun(tempDir(), { ...one, batch: { size: 4, seqLen: 32, accum: 1 } }), callbacks: [seen(a)], log: quiet });
    await train({ config: tinyRun(tempDir(), { ...one, batch: { size: 2, seqLen: 32, accum: 2 } }), callbacks: [seen(b)], log: quiet });
    expect(b[0]!.loss).toBeCloseTo(a[0]!.loss, 5);
    expect(Math.abs(b[0]!.gradNorm - a[0]!.gradNorm) / a[0]!.gradNorm).toBeLessThan(1e-5);
  });

  it('the z-score guard skips a spike only after it has history', () => {
    const guard = new ZScoreGuard();
    const ctx = {
      config: { guard: { skipZScore: 3, window: 10, minHistory: 5 } },
      metrics: { record: () => {} },
    } as unknown as TrainContext;
    const info = (loss: number, gradNorm = 1) => ({ loss, gradNorm, grads: new Map() });
    expect(guard.preUpdate(ctx, info(50))).toBeUndefined(); // no history yet: accepted
    for (const l of [3.0, 3.1, 2.9, 3.05, 2.95]) expect(guard.preUpdate(ctx, info(l))).toBeUndefined();
    // History now holds 50 and five values near 3: mean 10.8, std ~19.2; 40 is z ~1.5: accepted.
    expect(guard.preUpdate(ctx, info(40))).toBeUndefined();
    const fresh = new ZScoreGuard();
    for (const l of [3.0, 3.1, 2.9, 3.05, 2.95, 3.02]) fresh.preUpdate(ctx, info(l));
    expect(fresh.preUpdate(ctx, info(4.0))).toBe('skip'); // z ~ 14
    expect(fresh.preUpdate(ctx, info(3.0, 100))).toBe('skip'); // grad-norm spike
    expect(fresh.preUpdate(ctx, info(3.03))).toBeUndefined();
    // State round trip.
    const copy = new ZScoreGuard();
    copy.loadStateDict(fresh.stateDict());
    expect(copy.preUpdate(ctx, info(4.0))).toBe('skip');
    // A level that really moved is accepted after minHistory (5) consecutive skips, not skipped forever.
    const moved = [1, 2, 3, 4, 5, 6].map(() => copy.preUpdate(ctx, info(4.0)));
    expect(moved).toEqual(['skip', 'skip', 'skip', 'skip', undefined, undefined]);
  });
});

describe('a run directory', () => {
  it('holds config, metrics, summary, checkpoints and TensorBoard events that decode', async () => {
    const s = await train({ config: tinyRun(tempDir(), { steps: 10, checkpoint: { every: 5, keep: 1 } }), log: quiet });
    const files = readdirSync(s.runDir);
    expect(files).toEqual(expect.arrayContaining(['config.json', 'metrics.jsonl', 'summary.json', 'checkpoints']));
    // keep: 1 -> only the newest checkpoint remains.
    expect(readdirSync(join(s.runDir, 'checkpoints'))).toEqual(['step_00000010']);
    const summary = JSON.parse(readFileSync(join(s.runDir, 'summary.json'), 'utf8'));
    expect(summary.steps).toBe(10);
    expect(summary.eval.loss).toBeGreaterThan(0);
    expect(summary.unigramBaseline.loss).toBeGreaterThan(2); // English bytes: ~3 nats
    expect(summary.params).toBeGreaterThan(10_000);

    const eventFile = files.find((f) => f.includes('tfevents'))!;
    const events = readEvents(join(s.runDir, eventFile));
    expect(getString(events[0]!, 3)).toBe('brain.Event:2');
    const scalars = new Map<string, Map<number, number>>();
    const plugins = new Set<string>();
    for (const e of events.slice(1)) {
      const step = Number(getInt64(e, 2) ?? 0n);
      expect(getDouble(e, 1)).toBeGreaterThan(1.7e9); // wall time in seconds
      for (const v of values(e)) {
        const tag = getString(v, 1)!;
        const simple = getFloat(v, 2);
        if (simple !== undefined) {
          if (!scalars.has(tag)) scalars.set(tag, new Map());
          scalars.get(tag)!.set(step, simple);
        }
        const p = pluginName(v);
        if (p) plugins.add(p);
        if (getMessage(v, 5)) plugins.add('histo');
      }
    }
    expect(plugins).toEqual(new Set(['text', 'hparams', 'histo']));
    // Every step's loss reached TensorBoard and equals metrics.jsonl (float32 of the same number).
    const rows = readMetrics(s.runDir);
    expect(scalars.get('train/loss')!.size).toBe(10);
    for (const r of rows) expect(scalars.get('train/loss')!.get(r.step!)).toBeCloseTo(r['train/loss']!, 5);
    for (const tag of [
      'eval/loss',
      'eval/bits_per_byte',
      'train/grad_norm',
      'throughput/tokens_per_s',
      'update/muon_rms',
      'update/adamw_rms',
    ]) {
      expect(scalars.has(tag), tag).toBe(true);
    }
  });
});

describe('bad runs give clear errors and lose nothing', () => {
  it('refuses to overwrite an existing run', async () => {
    const out = tempDir();
    const short = { steps: 2, schedule: { kind: 'constant' } };
    const s = await train({ config: tinyRun(out, short), log: quiet });
    const before = readFileSync(join(s.runDir, 'summary.json'), 'utf8');
    await expect(train({ config: tinyRun(out, short), log: quiet })).rejects.toThrow(
      /already holds a run; continue it with 'osp train --resume/,
    );
    expect(readFileSync(join(s.runDir, 'summary.json'), 'utf8')).toBe(before);
  });

  it('an unwritable output directory', async () => {
    const out = tempDir();
    writeFileSync(join(out, 'file'), 'x');
    await expect(train({ config: tinyRun(join(out, 'file')), log: quiet })).rejects.toThrow(OspError);
    await expect(train({ config: tinyRun(join(out, 'file')), log: quiet })).rejects.toThrow(/cannot create or write the run directory/);
  });

  it('a sequence longer than the model accepts', async () => {
    await expect(train({ config: tinyRun(tempDir(), { batch: { size: 2, seqLen: 64 } }), log: quiet })).rejects.toThrow(
      'batch.seqLen: 64 exceeds model.maxSeqLen 32',
    );
  });

  it('a missing data file, and one too short for the sequence length', async () => {
    const out = tempDir();
    const missing = { source: 'text', train: [join(out, 'nope.txt')] };
    await expect(train({ config: tinyRun(out, { data: missing }), log: quiet })).rejects.toThrow(DataError);
    writeFileSync(join(out, 'short.txt'), 'tiny text');
    const short = { source: 'text', train: [join(out, 'short.txt')], val: [join(out, 'short.txt')] };
    await expect(train({ config: tinyRun(out, { name: 'short', data: short }), log: quiet })).rejects.toThrow(
      /sequence length 32 needs at least 33 tokens/,
    );
  });

  it('unknown config keys name the key and the valid ones', async () => {
    await expect(train({ config: tinyRun(tempDir(), { optimiser: {} }), log: quiet })).rejects.toThrow(ConfigError);
    await expect(train({ config: tinyRun(tempDir(), { optimiser: {} }), log: quiet })).rejects.toThrow(
      /^optimiser: unknown key; valid keys here: name, seed, backend/,
    );
  });

  it('resume without any good checkpoint', async () => {
    const out = tempDir();
    const s = await train({ config: tinyRun(out, { steps: 3, checkpoint: { every: 0, keep: 1 } }), log: quiet });
    const dir = join(s.runDir, 'checkpoints', 'step_00000003');
    writeFileSync(join(dir, 'state.json'), '{ truncated');
    await expect(train({ resume: s.runDir, log: quiet })).rejects.toThrow(/no complete checkpoint to resume from/);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
  });
});

describe('clipping and failed checkpoint writes', () => {
  it('clips the global gradient norm before the update', async () => {
    // After step 1, Muon's momentum is the (clipped) gradient and AdamW's exp_avg is 0.1 x it, so
    // together they reveal the norm of what the optimizers received.
    let received = 0;
    let raw = 0;
    const probe: Callback = {
      name: 'probe',
      preUpdate: (_ctx, info) => void (raw = info.gradNorm),
      async onStepEnd(ctx) {
        if (ctx.step !== 1) return;
        const state = ctx.optimizer.stateDict();
        let sq = 0;
        for (const [name, t] of state) {
          const v = await t.data();
          const scale = name.endsWith('/exp_avg') ? 10 : name.endsWith('/momentum') ? 1 : 0;
          for (const x of v) sq += (x * scale) ** 2;
        }
        tf.dispose([...state.values()]);
        received = Math.sqrt(sq);
      },
    };
    await train({
      config: tinyRun(tempDir(), { steps: 1, schedule: { kind: 'constant' }, guard: { clipGradNorm: 0.05 } }),
      callbacks: [probe],
      log: quiet,
    });
    expect(raw).toBeGreaterThan(0.5); // the raw gradient is far above the threshold
    expect(received).toBeCloseTo(0.05, 4);
  });

  it('a checkpoint write that fails (disk full) reports it and leaves the previous checkpoint loadable', async () => {
    const { atomicFaults } = await import('../../src/io/atomic.ts');
    const { findLatestCheckpoint } = await import('../../src/train/checkpoint.ts');
    const out = tempDir();
    const failAt8: Callback = {
      name: 'fail',
      onStepEnd(ctx) {
        // Extra callbacks run after the checkpoint callback: armed at step 7 (after its save at 4,
        // before its save at 8), the fault makes the step-8 save the first write to fail.
        if (ctx.step === 7) {
          atomicFaults.inject = (stage) => {
            if (stage === 'write') throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
          };
        }
      },
    };
    try {
      await expect(
        train({ config: tinyRun(out, { steps: 10, checkpoint: { every: 4, keep: 5 } }), callbacks: [failAt8], log: quiet }),
      ).rejects.toThrow(/checkpoint for step 8 could not be written .*ENOSPC/);
    } finally {
      atomicFaults.inject = undefined;
    }
    const runDir = join(out, 'tiny');
    expect(readdirSync(join(runDir, 'checkpoints'))).toEqual(['step_00000004']); // no temp directory left
    const { found, skipped } = findLatestCheckpoint(runDir);
    expect(skipped).toEqual([]);
    expect(found!.checkpoint.state.step).toBe(4);
    const resumed = await train({ resume: runDir, log: quiet });
    expect(resumed.resumedFrom).toBe(found!.dir);
  });

  it('a crash in the middle of pruning an old checkpoint leaves no half-deleted step_* directory', async () => {
    const { listCheckpoints, pruneCheckpoints, readCheckpoint, removeCheckpointLeftovers } = await import('../../src/train/checkpoint.ts');
    const s = await train({ config: tinyRun(tempDir(), { steps: 6, checkpoint: { every: 2, keep: 5 } }), log: quiet });
    expect(listCheckpoints(s.runDir).map((c) => c.step)).toEqual([6, 4, 2]);
    // The process "dies" after deleting one file of the oldest checkpoint.
    const crash = (dir: string) => {
      rmSync(join(dir, 'model.safetensors'));
      throw new Error('SIGKILL');
    };
    expect(() => pruneCheckpoints(s.runDir, 2, crash)).toThrow('SIGKILL');
    // Every step_* directory left still verifies; the half-deleted one is hidden under .tmp-.
    expect(listCheckpoints(s.runDir).map((c) => c.step)).toEqual([6, 4]);
    for (const { dir } of listCheckpoints(s.runDir)) expect(() => readCheckpoint(dir)).not.toThrow();
    const lines: string[] = [];
    removeCheckpointLeftovers(s.runDir, (l) => lines.push(l));
    expect(lines).toEqual([
      expect.stringMatching(/\.tmp-prune-step_00000002-\d+ \(left by a checkpoint write or prune that a crash interrupted\)/),
    ]);
    expect(readdirSync(join(s.runDir, 'checkpoints'))).toEqual(['step_00000004', 'step_00000006']);
  });
});
