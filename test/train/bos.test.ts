/**
 * `batch.bos`: every row starts with BOS, in training and in every evaluation the run makes; the
 * evaluation loss the trainer logs is recomputed here from the saved checkpoint on BOS-first windows.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { evalBatches } from '../../src/data/batcher.ts';
import { loadDataset, openDataset } from '../../src/data/dataset.ts';
import { prepareShards } from '../../src/data/sources.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { buildRunData } from '../../src/train/parts.ts';
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

  it("rows of shards start with the run tokenizer's BOS; a row of one token cannot hold BOS and text", () => {
    const dir = tempDir('osp-bos-');
    const docs = join(dir, 'docs.jsonl');
    writeFileSync(
      docs,
      Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `document ${i}: the model and its outliers` })).join('\n'),
    );
    const gpt2 = loadTokenizer('gpt2');
    const shards = prepareShards([docs], join(dir, 'shards'), { tokenizer: gpt2, valFraction: 0.2, log: () => {} });
    const pick = (split: string) => [shards.find((f) => f.path.includes(`_${split}_`))!.path];
    const config = resolveRunConfig({
      tokenizer: 'gpt2',
      model: { maxSeqLen: 16 },
      data: { source: 'shards', train: pick('train'), val: pick('val') },
      batch: { bos: true, size: 2, seqLen: 16 },
      eval: { batches: 1 },
      monitor: { every: 0 },
    });
    const data = buildRunData(config, openDataset(config.data, { vocabSize: config.model.vocabSize, tokenizer: gpt2 }), gpt2);
    const { inputs } = data.batcher.next();
    expect([inputs[0], inputs[16]]).toEqual([gpt2.bos, gpt2.bos]);
    expect(gpt2.bos).toBe(50256);
    expect(data.valBatches[0]!.inputs[0]).toBe(50256);
    expect(() => resolveRunConfig({ batch: { bos: true, seqLen: 1 } })).toThrow(/batch\.bos: needs batch\.seqLen >= 2/);
  });
});
