/** A tiny, fast run config for trainer tests, and readers for what a run writes. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The shared temporary-directory helper, re-exported so a run test gets tinyRun and tempDir from one import. */
export { tempDir } from './scratch.ts';

/** OSP modules on a model small enough for a step in a few ms; every metric logged every step. */
export function tinyRun(out: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'tiny',
    seed: 3,
    backend: 'cpu',
    steps: 20,
    out,
    model: { hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, maxSeqLen: 32, norm: 'ssnorm', embedding: 'embproj' },
    optimizer: { muon: { lr: 0.02 }, adamw: { lr: 0.01 } },
    schedule: { kind: 'cosine', warmupSteps: 3 },
    batch: { size: 4, seqLen: 32 },
    eval: { every: 10, batches: 2 },
    checkpoint: { every: 5, keep: 10 },
    logging: { every: 1, histogramsEvery: 10, console: 'quiet' },
    ...extra,
  };
}

export function readMetrics(runDir: string): Record<string, number>[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
}

/** train/loss by step from metrics.jsonl. */
export function lossesByStep(runDir: string): Map<number, number> {
  return new Map(readMetrics(runDir).map((r) => [r.step!, r['train/loss']!]));
}
