/**
 * `osp train --init-from HF_DIR` on the command line, from a Hugging Face directory that osp-lab did not
 * write (test/helpers/hf_dir.ts: bf16, two shards and an index, grouped KV, rope_theta 500000,
 * rms_norm_eps 1e-5). A run config that differs is refused with every differing field and the --set
 * that fixes it, and nothing is written; with those --set the run starts from the checkpoint's weights:
 * its first-step loss is the float64 Llama's loss of the checkpoint on the first batch.
 *
 * The first batch is known without reading the batcher: the training shard is a 16-byte pattern repeated,
 * so every window of seqLen + 1 = 17 tokens (window i starts at 16 i) is the same, whatever the shuffle.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeHfDir, type HfDir } from '../helpers/hf_dir.ts';
import { crossEntropy64, llama64 } from '../helpers/llama64.ts';
import { readMetrics, tempDir } from '../helpers/run.ts';

function osp(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const PATTERN = [...Buffer.from('The cat sat on a')]; // 16 bytes = batch.seqLen

/** An llm.c token shard (header: magic 20240520, version 1, token count; 256 int32 in all; then uint16 tokens). */
function writeShard(path: string, tokens: number[]): void {
  const buf = Buffer.alloc(1024 + 2 * tokens.length);
  buf.writeInt32LE(20240520, 0);
  buf.writeInt32LE(1, 4);
  buf.writeInt32LE(tokens.length, 8);
  tokens.forEach((t, i) => buf.writeUInt16LE(t, 1024 + 2 * i));
  writeFileSync(path, buf);
}

let dir = '';
let hf: HfDir;
let config = '';

beforeAll(() => {
  dir = tempDir('osp-init-');
  hf = writeHfDir(join(dir, 'hf'), {
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 64,
    maxSeqLen: 64,
    ropeTheta: 500000,
    normEps: 1e-5,
    dtype: 'bf16',
    shards: 2,
    seed: 11,
  });
  const shard = join(dir, 'pattern_000000.bin');
  writeShard(shard, [...Array.from({ length: 8 }, () => PATTERN).flat(), PATTERN[0]!]);
  config = join(dir, 'run.json');
  // The model section matches the checkpoint's sizes; rope_theta and rms_norm_eps are left at osp-lab's
  // defaults (10000, 1e-6), which the checkpoint does not have.
  writeFileSync(
    config,
    JSON.stringify({
      name: 'init',
      seed: 1,
      backend: 'cpu',
      steps: 1,
      out: dir,
      model: { hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, maxSeqLen: 32 },
      data: { source: 'shards', train: [shard], val: [shard] },
      batch: { size: 2, seqLen: 16 },
      schedule: { kind: 'constant' },
      eval: { every: 0 },
      checkpoint: { every: 0, keep: 1 },
      logging: { every: 1, histogramsEvery: 0, console: 'quiet', tensorboard: false },
    }),
  );
});

describe('osp train --init-from HF_DIR', () => {
  it('a run config that differs lists every differing field with its fix, and writes nothing; the fix trains from the weights', () => {
    const bad = osp('train', '--config', config, '--init-from', hf.dir, '--set', 'model.numLayers=3', '--set', 'model.norm="ssnorm"');
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain(`osp train: --init-from: ${hf.dir} does not match the run's model: `);
    // Every difference, and only those: the two --set and the two fields the config left at osp-lab's defaults.
    const listed = [...bad.stderr.matchAll(/model\.(\w+) is (\S+), the checkpoint has (\S+?)(?=;| \(fix with)/g)].map((m) => [
      m[1],
      m[2],
      m[3],
    ]);
    expect(listed).toEqual([
      ['numLayers', '3', '2'],
      ['ropeTheta', '10000', '500000'],
      ['normEps', '0.000001', '0.00001'],
      ['norm', '"ssnorm"', '"rmsnorm"'],
    ]);
    expect(existsSync(join(dir, 'init'))).toBe(false);

    const fix = /\(fix with (.*)\)/
      .exec(bad.stderr)![1]!
      .split(' ')
      .filter((w) => w !== '--set');
    expect(fix).toEqual(['model.numLayers=2', 'model.ropeTheta=500000', 'model.normEps=0.00001', 'model.norm="rmsnorm"']);
    const ok = osp(
      'train',
      '--config',
      config,
      '--init-from',
      hf.dir,
      '--set',
      'model.numLayers=3',
      '--set',
      'model.norm="ssnorm"',
      ...fix.flatMap((f) => ['--set', f]),
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`initialised from ${hf.dir}`);
    // The first step's loss is the checkpoint's: every row of the first batch is PATTERN + PATTERN[0].
    const window = [...PATTERN, PATTERN[0]!];
    const { logits } = llama64(hf.config64, hf.weights, [window.slice(0, -1)]);
    const expected = crossEntropy64(logits, 258, window.slice(1));
    const first = readMetrics(join(dir, 'init'))[0]!;
    expect(first.step).toBe(1);
    expect(Math.abs(first['train/loss']! - expected)).toBeLessThan(1e-4);
    expect(readdirSync(join(dir, 'init', 'checkpoints'))).toEqual(['step_00000001']);
  });

  it('a longer context than max_position_embeddings is listed too; a directory without weights is named', () => {
    const long = osp('train', '--config', config, '--init-from', hf.dir, '--set', 'model.maxSeqLen=128', '--set', 'name="long"');
    expect(long.code).toBe(2);
    expect(long.stderr).toContain("model.maxSeqLen is 128, above the checkpoint's max_position_embeddings 64");
    expect(long.stderr).toContain('--set model.maxSeqLen=64');
    const none = osp('train', '--config', config, '--init-from', join(dir, 'nothing'), '--set', 'name="none"');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(join(dir, 'nothing', 'config.json'));
    expect(existsSync(join(dir, 'long'))).toBe(false);
  });
});
