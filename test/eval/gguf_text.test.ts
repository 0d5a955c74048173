/**
 * `osp eval FILE.gguf --text FILE`: llama.cpp does everything (its tokenizer from the GGUF's vocabulary,
 * its forward pass); on an f32 export that is `osp eval`'s tokens and loss on the checkpoint.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateCheckpoint } from '../../src/eval/evaluate_run.ts';
import { exportCheckpoint } from '../../src/export/index.ts';
import { train } from '../../src/train/run.ts';
import { tinyRun } from '../helpers/run.ts';
import { tempDir } from '../helpers/scratch.ts';

const osp = (...args: string[]) => spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });

/** Longer than one 64-token window, with multi-byte characters. */
const TEXT = 'Outliers form in the residual stream; café, naïve, 12345 and 日本 are bytes too. '.repeat(3);

let dir = '';
let runDir = '';
let gguf = '';

beforeAll(async () => {
  dir = tempDir('osp-gguf-text-');
  const config = tinyRun(dir, {
    backend: 'wasm',
    steps: 30,
    model: { hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 64, norm: 'ssnorm', embedding: 'embproj' },
    schedule: { kind: 'constant' },
  });
  runDir = (await train({ config, log: () => {} })).runDir;
  gguf = join(dir, 'model-f32.gguf');
  await exportCheckpoint({ checkpoint: runDir, format: 'gguf', out: gguf, type: 'f32' });
  writeFileSync(join(dir, 'text.txt'), TEXT);
}, 300_000);

describe('osp eval FILE.gguf', () => {
  it("gives osp eval's token count and loss (within 1e-3) with llama.cpp's own tokenizer", async () => {
    const ref = await evaluateCheckpoint({ checkpoint: runDir, text: join(dir, 'text.txt'), backend: 'wasm' });
    expect(ref.tokens).toBe(Buffer.byteLength(TEXT));
    const r = osp('eval', gguf, '--text', join(dir, 'text.txt'), '--json');
    expect(r.status, r.stderr).toBe(0);
    const g = JSON.parse(r.stdout) as { loss: number; tokens: number; bytes: number; bpb: number; tokenizer: string };
    expect(g.tokenizer).toBe('llama.cpp');
    expect(g.tokens).toBe(ref.tokens);
    expect(g.bytes).toBe(ref.bytes);
    expect(Math.abs(g.loss - ref.loss)).toBeLessThan(1e-3);
    expect(g.bpb).toBeCloseTo((g.loss * g.tokens) / Math.LN2 / g.bytes, 10);
    const line = osp('eval', gguf, '--text', join(dir, 'text.txt'));
    expect(line.stdout).toBe(
      `${gguf} (llama.cpp): loss ${g.loss.toFixed(4)} nats/token, bpb ${g.bpb.toFixed(4)} over ${g.tokens} tokens ` +
        `(${g.bytes} bytes; llama.cpp's tokenizer, windows of 64)\n`,
    );
  });

  it('a missing GGUF or text file is a one-line error', () => {
    const r = osp('eval', join(dir, 'none.gguf'), '--text', join(dir, 'text.txt'));
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('none.gguf');
    const t = osp('eval', gguf, '--text', join(dir, 'none.txt'));
    expect(t.status).not.toBe(0);
    expect(t.stderr).toContain('none.txt: text file');
  });
});
