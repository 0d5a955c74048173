/**
 * What osp-lab and PyTorch both start from in scripts/torch-compare.ts: the run config of each
 * configuration, the initial weights (drawn as osp-lab's Transformer draws them) written as a Hugging
 * Face-style directory, and the token batches (the run's Batcher) and the outlier monitor's batch written
 * as int32 safetensors files for bench/torch_reference.py's training mode. See the entry point's comment
 * for why an `osp` init is not a real HF checkpoint.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunConfig } from '../../src/train/config.ts';
import { Batcher, evalBatches, rowBos } from '../../src/data/batcher.ts';
import { loadDataset } from '../../src/data/dataset.ts';
import { hfConfig, writeHfCheckpoint } from '../../src/export/hf.ts';
import type { Weights } from '../../src/model/fold.ts';
import { encodeSafetensors, f32Entry, i32Entry } from '../../src/io/safetensors.ts';
import { initialValues } from '../../src/model/init.ts';
import { paramSpecs } from '../../src/model/transformer.ts';
import { Rng } from '../../src/utils/rng.ts';

export type ConfigName = 'adam' | 'osp';

/** The run config of one configuration (small, and quiet: no checkpoints but the last, no TensorBoard). */
export function runConfig(name: ConfigName, steps: number, seed: number, backend: string, out: string): Record<string, unknown> {
  const osp = name === 'osp';
  return {
    name: 'osp-lab-run',
    seed,
    backend,
    steps,
    model: {
      hiddenSize: 128,
      numLayers: 4,
      numHeads: 4,
      maxSeqLen: 128,
      norm: osp ? 'ssnorm' : 'rmsnorm',
      embedding: osp ? 'embproj' : 'plain',
    },
    // configs/tiny.json and configs/tiny-adam.json.
    optimizer: osp
      ? { muon: { lr: 0.01, weightDecay: 0.01 }, adamw: { lr: 0.003, weightDecay: 0.01 } }
      : { adamw: { lr: 0.003, weightDecay: 0.01 }, routing: [{ match: '*', optimizer: 'adamw' }] },
    schedule: { kind: 'cosine', warmupSteps: Math.min(20, Math.floor(steps / 10)), minLrRatio: 0.1 },
    data: { source: 'brown' },
    batch: { size: 8, seqLen: 128, accum: 1 },
    eval: { every: 0, batches: 1 },
    checkpoint: { every: 0, keep: 1 },
    // logging.every = steps: the update-RMS monitor copies every parameter on logging steps only.
    logging: { every: steps, tensorboard: false, histogramsEvery: 0, console: 'quiet' },
    // Measured after step 1 and after the last step (the monitor's schedule with every = steps).
    monitor: { every: steps, batchSize: 4, images: false },
    out,
  };
}

/** The initial weights osp-lab's Transformer draws for this config and seed (same specs, same Rng order). */
export function initialWeights(config: RunConfig): Weights {
  const rng = new Rng(config.seed);
  const out: Weights = new Map();
  for (const spec of paramSpecs(config.model)) out.set(spec.name, { shape: spec.shape, data: initialValues(spec, rng) });
  return out;
}

/**
 * Writes the initial weights as a Hugging Face-style directory. A plain Llama is a real HF checkpoint
 * (osp-lab can start from it with initFrom); an OSP model keeps its unfolded parameters (see the file
 * comment) and says so in config.json.
 */
export function writeInit(dir: string, config: RunConfig, weights: Weights): { hf: boolean } {
  const m = config.model;
  if (m.norm === 'rmsnorm' && m.embedding === 'plain') {
    writeHfCheckpoint(dir, m, weights, 'f32');
    return { hf: true };
  }
  mkdirSync(dir, { recursive: true });
  const hf = {
    ...hfConfig({ ...m, norm: 'rmsnorm', embedding: 'plain' }, 'f32'),
    osp_lab: {
      norm: m.norm,
      embedding: m.embedding,
      note: 'unfolded osp-lab parameters: norm scales of shape [1] (ssnorm) and model.embed_proj / model.head_proj (embproj); not loadable by transformers',
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hf, null, 2) + '\n');
  const entries = [...weights].map(([name, w]) => [name, f32Entry(w.shape, w.data)] as [string, ReturnType<typeof f32Entry>]);
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(entries, { source: 'scripts/torch-compare.ts' }));
  return { hf: false };
}

/** Writes the training batches and the monitor batch as int32 safetensors files. */
export function writeBatches(dir: string, config: RunConfig): { batches: string; monitor: string } {
  const data = loadDataset(config.data, { vocabSize: config.model.vocabSize });
  const { size: B, seqLen: T, accum } = config.batch;
  const bos = rowBos(config);
  const batcher = new Batcher(data.train, { batchSize: B, seqLen: T, seed: config.data.seed ?? config.seed, bos });
  const n = config.steps * accum;
  const inputs = new Int32Array(n * B * T);
  const targets = new Int32Array(n * B * T);
  for (let i = 0; i < n; i++) {
    const b = batcher.next();
    inputs.set(b.inputs, i * B * T);
    targets.set(b.targets, i * B * T);
  }
  const held = evalBatches(data.val, { batchSize: config.monitor.batchSize, seqLen: T, maxBatches: 1, bos })[0]!;
  const batches = join(dir, 'batches.safetensors');
  const monitor = join(dir, 'monitor.safetensors');
  writeFileSync(
    batches,
    encodeSafetensors([
      ['inputs', i32Entry([n, B, T], inputs)],
      ['targets', i32Entry([n, B, T], targets)],
    ]),
  );
  writeFileSync(monitor, encodeSafetensors([['inputs', i32Entry([config.monitor.batchSize, T], held.inputs)]]));
  return { batches, monitor };
}
