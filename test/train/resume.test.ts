/**
 * `osp train --resume` continues the exact trajectory: 20 steps straight and 10 + resume + 10 give
 * identical losses at every step and bit-identical final weights and optimizer state, on the cpu and
 * wasm backends, and on native (multithreaded) unless OSP_SKIP_NATIVE=1. Also: resume falls back from
 * a corrupt newest checkpoint to the previous good one.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/io/atomic.ts';
import { listCheckpoints } from '../../src/train/checkpoint.ts';
import { train } from '../../src/train/run.ts';
import { lossesByStep, readMetrics, tempDir, tinyRun } from '../helpers/run.ts';
import { skipNative } from '../helpers/backends.ts';

const quiet = () => {};

// native runs multithreaded (OpenBLAS and the addon's pool): its kernels must be deterministic too.
for (const backend of ['cpu', 'wasm', ...(skipNative ? [] : (['native'] as const))] as const) {
  describe(`exact resume on ${backend}`, () => {
    it('20 straight == 10 + resume + 10', async () => {
      const out = tempDir();
      // z-score guard on: its window is part of the state a resume must restore.
      const base = { backend, guard: { skipZScore: 3, minHistory: 4, window: 8 } };
      const straight = await train({ config: tinyRun(out, { ...base, name: 'straight' }), log: quiet });
      // The interrupted run is told the schedule's length up front, as the straight run has it.
      const first = await train({
        config: tinyRun(out, { ...base, name: 'resumed', steps: 10, schedule: { kind: 'cosine', warmupSteps: 3, totalSteps: 20 } }),
        log: quiet,
      });
      expect(first.lastCheckpoint).toMatch(/step_00000010$/);
      const resumed = await train({ resume: first.runDir, overrides: ['steps=20'], log: quiet });
      expect(resumed.resumedFrom).toMatch(/step_00000010$/);

      const a = lossesByStep(straight.runDir);
      const b = lossesByStep(resumed.runDir);
      expect(a.size).toBe(20);
      expect(b.size).toBe(20);
      for (let step = 1; step <= 20; step++) expect(b.get(step), `step ${step}`).toBe(a.get(step));
      // Bit-identical final weights and optimizer state.
      const file = (run: string, f: string) => sha256(readFileSync(join(run, 'checkpoints', 'step_00000020', f)));
      expect(file(resumed.runDir, 'model.safetensors')).toBe(file(straight.runDir, 'model.safetensors'));
      expect(file(resumed.runDir, 'optimizer.safetensors')).toBe(file(straight.runDir, 'optimizer.safetensors'));
      // And the runs actually learned something (a trajectory of constant losses would also "match").
      expect(a.get(20)!).toBeLessThan(a.get(1)! - 0.5);
    });
  });
}

describe('resume with a corrupt checkpoint', () => {
  it('falls back to the previous good checkpoint and says so', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 10 }), log: quiet });
    const [newest, previous] = listCheckpoints(run.runDir);
    expect(newest!.step).toBe(10);
    expect(previous!.step).toBe(5);
    const path = join(newest!.dir, 'model.safetensors');
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] ^= 0x40; // one flipped bit in a weight
    writeFileSync(path, bytes);
    const lines: string[] = [];
    const resumed = await train({ resume: run.runDir, overrides: ['steps=12'], extendSchedule: true, log: (l) => lines.push(l) });
    expect(resumed.resumedFrom).toBe(previous!.dir);
    expect(lines.join('\n')).toMatch(/skipping checkpoint .*step_00000010.*checksum mismatch/);
    expect(lines.join('\n')).toContain(`resuming from the previous good checkpoint ${previous!.dir}`);
  });
});

describe('resume after a kill mid-append', () => {
  it('drops the partial metrics line, records the new step count, and continues', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 5 }), log: quiet });
    appendFileSync(join(run.runDir, 'metrics.jsonl'), '{"step": 6, "train/lo'); // killed mid-write
    await train({ resume: run.runDir, overrides: ['steps=7'], extendSchedule: true, log: quiet });
    const rows = readMetrics(run.runDir); // every line parses
    expect(rows[rows.length - 1]!.step).toBe(7);
    expect(JSON.parse(readFileSync(join(run.runDir, 'config.json'), 'utf8')).resolved.steps).toBe(7);
  });
});

describe('one training per run directory', () => {
  it('a second osp train on a directory that is training is refused by its lock', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 3 }), log: quiet });
    const first = train({ resume: run.runDir, overrides: ['steps=8'], extendSchedule: true, log: quiet });
    await expect(train({ resume: run.runDir, overrides: ['steps=9'], extendSchedule: true, log: quiet })).rejects.toThrow(
      /already running: osp train --resume/,
    );
    await first;
    // Released afterwards: resuming again works.
    const again = await train({ resume: run.runDir, overrides: ['steps=9'], extendSchedule: true, log: quiet });
    expect(again.steps).toBe(9);
  });
});

describe('state.json is sealed', () => {
  it('a changed digit in state.json is detected, not resumed from', async () => {
    const out = tempDir();
    const run = await train({ config: tinyRun(out, { steps: 10 }), log: quiet });
    const [newest] = listCheckpoints(run.runDir);
    const path = join(newest!.dir, 'state.json');
    // "step": 10 -> "step": 14: valid JSON, wrong state.
    writeFileSync(path, readFileSync(path, 'utf8').replace('"step": 10', '"step": 14'));
    const lines: string[] = [];
    const resumed = await train({ resume: run.runDir, overrides: ['steps=12'], extendSchedule: true, log: (l) => lines.push(l) });
    expect(resumed.resumedFrom).toMatch(/step_00000005$/);
    expect(lines.join('\n')).toContain('state.json was modified or corrupted');
  });
});
