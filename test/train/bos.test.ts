/**
 * `batch.bos`: every row starts with BOS, in training and in every evaluation the run makes; the
 * evaluation loss the trainer logs is recomputed here from the saved checkpoint on BOS-first windows.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { evalBatches } from '../../src/data/batcher.ts';
import { loadDataset } from '../../src/data/dataset.ts';
import { resolveRunConfig } from '../../src/train/config.ts';
import { Transformer } from '../../src/model/transformer.ts';
import { train } from '../../src/train/run.ts';
import { loadModelWeights, openCheckpoint } from '../../src/train/checkpoint.ts';
import { Rng } from '../../src/utils/rng.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';

const quiet = () => {};

async function loggedAndRecomputed(bos: boolean): Promise<{ logged: number; recomputed: number; plain: number }> {
  const config = tinyRun(tempDir(), {
    steps: 4,
    eval: { every: 4, batches: 2 },
    monitor: { every: 0 },
    batch: { size: 4, seqLen: 32, bos },
  });
  const { runDir } = await train({ config, log: quiet });
  const logged = readMetrics(runDir).find((r) => r['eval/loss'] !== undefined)!['eval/loss']!;
  const { dir, checkpoint } = openCheckpoint(runDir);
  const resolved = resolveRunConfig(config);
  const model = new Transformer(resolved.model, new Rng(0));
  loadModelWeights(model, checkpoint.model, `${dir}/model.safetensors`);
  const { val } = loadDataset({});
  const mean = async (b: number | undefined) => {
    let sum = 0;
    const batches = evalBatches(val, { batchSize: 4, seqLen: 32, maxBatches: 2, bos: b });
    for (const batch of batches) {
      const loss = tf.tidy(() => model.loss(tf.tensor2d(batch.inputs, [4, 32], 'int32'), tf.tensor2d(batch.targets, [4, 32], 'int32')));
      sum += (await loss.data())[0]!;
      loss.dispose();
    }
    return sum / batches.length;
  };
  const recomputed = await mean(bos ? 256 : undefined);
  const plain = await mean(bos ? undefined : 256);
  model.dispose();
  return { logged, recomputed, plain };
}

describe('batch.bos', () => {
  it('the logged validation loss is the loss on BOS-first windows (and differs from plain windows)', async () => {
    const r = await loggedAndRecomputed(true);
    expect(Math.abs(r.logged - r.recomputed)).toBeLessThan(1e-5);
    expect(Math.abs(r.logged - r.plain)).toBeGreaterThan(1e-3);
  });

  it('off: plain windows, as before', async () => {
    const r = await loggedAndRecomputed(false);
    expect(Math.abs(r.logged - r.recomputed)).toBeLessThan(1e-5);
  });

  it('shards carry no tokenizer: batch.bos with them is a ConfigError naming the field', () => {
    expect(() => resolveRunConfig({ data: { source: 'shards', train: ['a.bin'], val: ['b.bin'] }, batch: { bos: true } })).toThrow(
      /batch\.bos/,
    );
    expect(() => resolveRunConfig({ batch: { bos: true, seqLen: 1 } })).toThrow(/batch\.bos: needs batch\.seqLen >= 2/);
  });
});
