/**
 * The library behind `osp eval` and `osp quant-eval`: evaluateCheckpoint against a float64
 * re-computation and against what the command prints; quantEvalCheckpoint and quantEvalRows against
 * the command's JSON and table, against evaluateCheckpoint (the same windows), and its argument checks.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, OspError } from '../../src/errors.ts';
import { evaluateCheckpoint } from '../../src/eval/evaluate_run.ts';
import { quantEvalCheckpoint, quantEvalRows, type QuantEvalCheckpointResult } from '../../src/eval/quant_eval.ts';
import { train } from '../../src/train/run.ts';
import { tempDir, tinyRun } from '../helpers/run.ts';
import { checkpointWeights64, textLoss64, TINY_RUN_64 } from '../helpers/tiny64.ts';

const osp = (...args: string[]) => spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });

const TEXT =
  'The quick brown fox jumps over the lazy dog; then it naps. Done! It was a bright cold day in April, ' +
  'and the clocks were striking thirteen.';

let dir = '';
let runDir = '';
let textPath = '';

beforeAll(async () => {
  dir = tempDir();
  const config = tinyRun(dir, { steps: 4, schedule: { kind: 'constant' }, checkpoint: { every: 0, keep: 1 } });
  runDir = (await train({ config, log: () => {} })).runDir;
  textPath = join(dir, 'text.txt');
  writeFileSync(textPath, TEXT);
}, 300_000);

describe('evaluateCheckpoint', () => {
  it('matches a float64 re-computation on the saved weights and what osp eval prints', async () => {
    const r = await evaluateCheckpoint({ checkpoint: runDir, text: textPath, backend: 'cpu' });
    expect(r.checkpoint).toBe(join(runDir, 'checkpoints/step_00000004'));
    expect(r.step).toBe(4);
    expect(r.tokens).toBe(TEXT.length);
    expect(r.bpb).toBeCloseTo(r.loss / Math.LN2, 12);

    // Oracle: the float64 Llama, windows of maxSeqLen (32) over BOS + bytes, overlapping by one.
    expect(Math.abs(r.loss - textLoss64(TINY_RUN_64, checkpointWeights64(r.checkpoint), TEXT))).toBeLessThan(1e-4);

    // The command is this function plus formatting (the same backend: the same numbers).
    const json = osp('eval', runDir, '--text', textPath, '--json', '--backend', 'cpu');
    expect(json.status, json.stderr).toBe(0);
    expect(json.stdout).toBe(`${JSON.stringify({ loss: r.loss, tokens: r.tokens, bytes: r.bytes, bpb: r.bpb, tokenizer: 'bytes' })}\n`);
    const line = osp('eval', runDir, '--text', textPath, '--backend', 'cpu');
    expect(line.stdout).toBe(`${r.checkpoint}: loss ${r.loss.toFixed(4)} nats/byte, bpb ${r.bpb.toFixed(4)} over ${r.tokens} bytes\n`);
  });

  it('fails on a missing text file before loading anything', async () => {
    await expect(evaluateCheckpoint({ checkpoint: join(dir, 'no-such-run'), text: join(dir, 'none.txt') })).rejects.toThrow(
      /none\.txt: text file/,
    );
  });
});

describe('quantEvalCheckpoint', () => {
  it("16 bits everywhere: the quantized loss is the full-precision loss, which is evaluateCheckpoint's", async () => {
    const ev = await evaluateCheckpoint({ checkpoint: runDir, text: textPath, backend: 'cpu' });
    const logs: string[] = [];
    const r = await quantEvalCheckpoint({
      checkpoint: runDir,
      text: textPath,
      quant: { w: 16, a: 16, kv: 16 },
      backend: 'cpu',
      log: (l) => logs.push(l),
    });
    expect(r.checkpoint).toBe(ev.checkpoint);
    expect(r.step).toBe(4);
    expect(r.text).toBe(textPath);
    expect(r.tokens).toBe(TEXT.length);
    expect(r.fp.loss).toBeCloseTo(ev.loss, 5);
    expect(r.variants.map((v) => v.tag)).toEqual(['w16a16kv16_rtn']);
    expect(r.variants[0]!.quant.loss).toBe(r.fp.loss);
    expect(r.gguf).toEqual([]);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^W16A16KV16 RTN: ppl /);
  });

  it("windows: N evaluates the first N windows; val: the run's validation split", async () => {
    const r = await quantEvalCheckpoint({ checkpoint: runDir, val: true, windows: 2, backend: 'cpu' });
    expect(r.text).toBe("the run's validation split");
    expect(r.tokens).toBe(2 * 32); // maxSeqLen 32
    expect(r.variants.map((v) => v.tag)).toEqual(['w4a4kv4_rtn']);
  });

  it('the JSON and the table of osp quant-eval are its result and quantEvalRows', async () => {
    const r = await quantEvalCheckpoint({ checkpoint: runDir, text: textPath, quant: { rotate: ['none', 'ffn'] }, backend: 'cpu' });
    const rows = quantEvalRows(r);
    expect(rows.map((x) => x.setting)).toEqual(['full precision', 'W4A4KV4 RTN', 'W4A4KV4 RTN + FFN Had']);
    expect(rows[0]).toEqual({
      setting: 'full precision',
      loss: r.fp.loss,
      perplexity: r.fp.perplexity,
      perplexityRatio: 1,
      ratioHalfWidth: null,
    });
    for (const [i, v] of r.variants.entries()) {
      expect(rows[i + 1]!.perplexityRatio).toBeCloseTo(v.quant.perplexity / r.fp.perplexity, 10);
      // 95% interval of the ratio exp(gap) from the paired loss gap's standard error.
      expect(rows[i + 1]!.ratioHalfWidth).toBeCloseTo(Math.exp(v.gap.loss + 1.96 * v.gap.lossStderr!) - Math.exp(v.gap.loss), 10);
    }

    const json = osp('quant-eval', runDir, '--text', textPath, '--rotate', 'none,ffn', '--backend', 'cpu', '--json');
    expect(json.status, json.stderr).toBe(0);
    const j = JSON.parse(json.stdout) as QuantEvalCheckpointResult;
    const noTime = (x: QuantEvalCheckpointResult) => ({ ...x, variants: x.variants.map((v) => ({ ...v, seconds: 0 })) });
    expect(noTime(j)).toEqual(noTime(r));
    expect(Object.keys(j)).toEqual(Object.keys(r));

    const table = osp('quant-eval', runDir, '--text', textPath, '--rotate', 'none,ffn', '--backend', 'cpu');
    expect(table.status, table.stderr).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toBe(`checkpoint ${r.checkpoint} (step 4)`);
    expect(lines[1]).toBe(`text       ${textPath}, ${TEXT.length} tokens`);
    for (const [i, x] of rows.entries()) {
      const cells = lines[3 + i]!.trim().split(/\s{2,}/);
      const half = x.ratioHalfWidth === null ? [] : [`+- ${x.ratioHalfWidth.toFixed(4)}`];
      expect(cells).toEqual([x.setting, x.loss.toFixed(4), x.perplexity.toFixed(3), x.perplexityRatio.toFixed(4), ...half]);
    }
  });

  it('checks its arguments before loading the checkpoint', async () => {
    const missing = join(dir, 'no-such-run');
    await expect(quantEvalCheckpoint({ checkpoint: missing })).rejects.toThrow(OspError);
    await expect(quantEvalCheckpoint({ checkpoint: missing, text: textPath, val: true })).rejects.toThrow(/not both/);
    await expect(quantEvalCheckpoint({ checkpoint: missing, text: textPath, windows: 0 })).rejects.toThrow(
      /windows: expected a positive integer/,
    );
    await expect(quantEvalCheckpoint({ checkpoint: missing, text: textPath, quant: { w: 5 as 4 } })).rejects.toThrow(/quant\.w/);
    const gguf = quantEvalCheckpoint({ checkpoint: missing, text: textPath, gguf: ['q3'] });
    await expect(gguf).rejects.toThrow(ConfigError);
    await expect(gguf).rejects.toThrow(/gguf: unknown value "q3"/);
  });
});

describe('quantEvalRows', () => {
  it('llama.cpp rows: named by type and rotation, ratio to the full-precision perplexity, no interval', () => {
    const fp = { loss: Math.log(20), perplexity: 20 };
    const rows = quantEvalRows({
      fp,
      variants: [],
      gguf: [
        { type: 'q4_0', rotate: false, loss: Math.log(25), perplexity: 25, tokens: 10 },
        { type: 'q8_0', rotate: true, loss: Math.log(21), perplexity: 21, tokens: 10 },
      ],
    });
    expect(rows).toEqual([
      { setting: 'full precision', loss: fp.loss, perplexity: 20, perplexityRatio: 1, ratioHalfWidth: null },
      { setting: 'llama.cpp Q4_0', loss: Math.log(25), perplexity: 25, perplexityRatio: 1.25, ratioHalfWidth: null },
      { setting: 'llama.cpp Q8_0, residual-rotated', loss: Math.log(21), perplexity: 21, perplexityRatio: 1.05, ratioHalfWidth: null },
    ]);
  });
});
