/**
 * Models trained elsewhere: Hugging Face Llama directories (written by test/helpers/hf_dir.ts, not by
 * osp-lab) through `osp eval`, `osp analyze`, `osp quant-eval` and `osp export`. Three layouts: a tied
 * embedding stored as f16, grouped KV heads with an explicit head_dim (q width 64 on a 32-wide stream)
 * stored as f32, and a bf16 checkpoint in two shards with an index (3 layers, rope_theta 500000,
 * rms_norm_eps 1e-5, one KV head for two query heads). Oracles: the float64 Llama of llama64.ts on the
 * values as stored, and llama.cpp (node-llama-cpp) running the GGUF export.
 *
 * Tolerances. osp eval runs in float32 on the cpu backend; the float64 oracle differs by rounding only:
 * measured |diff| <= 2e-7 on these models (losses about 7.5 nats), so 1e-5 leaves a 50x margin while any
 * misread weight or field (a swapped shard, a wrong KV grouping, f16/bf16 decoded wrongly, rope_theta
 * ignored: 3e-3, 300x the tolerance) moves the loss by far more. llama.cpp with a float32 KV cache and no
 * flash attention agrees with osp eval to ~2e-7 here; asserted within 1e-4 (the issue asks 1e-3), which leaves
 * room for its summation order on other CPUs. osp quant-eval's llama.cpp row uses llama.cpp's defaults (f16 KV
 * cache): measured within 2e-4 of the full-precision loss, asserted within 1e-3.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getLlama, type Llama, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantEvalCheckpoint } from '../../src/eval/quant_eval.ts';
import { exportCheckpoint } from '../../src/export/index.ts';
import { readHfCheckpoint } from '../../src/model/hf.ts';
import { writeHfDir, type HfDir, type HfDirSpec } from '../helpers/hf_dir.ts';
import { llama64 } from '../helpers/llama64.ts';
import { tempDir } from '../helpers/run.ts';
import { textLoss64 } from '../helpers/tiny64.ts';
import { ospKurtosis64 } from '../helpers/kurtosis64.ts';

const osp = (...args: string[]) => spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });

const TEXT =
  'It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin nuzzled ' +
  'into his breast in an effort to escape the vile wind, slipped quickly through the glass doors.';
const MAX_SEQ = 64; // three windows of TEXT

const SPECS: Record<string, HfDirSpec> = {
  'tied f16': { hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64, maxSeqLen: MAX_SEQ, tie: true, dtype: 'f16', seed: 1 },
  'grouped-KV f32': {
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    intermediateSize: 64,
    maxSeqLen: MAX_SEQ,
    dtype: 'f32',
    seed: 2,
  },
  'sharded bf16': {
    hiddenSize: 32,
    numLayers: 3,
    numHeads: 2,
    numKvHeads: 1,
    intermediateSize: 96,
    maxSeqLen: MAX_SEQ,
    ropeTheta: 500000,
    normEps: 1e-5,
    dtype: 'bf16',
    shards: 2,
    seed: 3,
  },
};

let root = '';
let textPath = '';
const models = new Map<string, HfDir>();
let llama: Llama;

beforeAll(async () => {
  root = tempDir('osp-hf-');
  textPath = join(root, 'text.txt');
  writeFileSync(textPath, TEXT);
  for (const [name, spec] of Object.entries(SPECS)) models.set(name, writeHfDir(join(root, name.replace(/\W+/g, '_')), spec));
  llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
});

afterAll(async () => {
  await llama?.dispose();
});

/** llama.cpp's mean next-token loss over osp eval's windows: BOS + bytes, maxSeqLen + 1 tokens overlapping by one. */
async function llamaCppLoss(path: string, text: string, maxSeqLen: number): Promise<number> {
  const tokens = [256, ...Buffer.from(text)];
  const model = await llama.loadModel({ modelPath: path });
  // One thread: more spin against the test runner on 2-core machines (test/export/llama_cpp.test.ts).
  // A float32 KV cache without flash attention: llama.cpp's defaults (f16 cache; flash attention rounds
  // Q and the probabilities to f16) move these random models' log-probabilities by up to 8e-3 per token,
  // which would hide a conversion error; with them off the two agree to ~2e-6 per token.
  // One slot more than a window: a full context makes node-llama-cpp shift it before the last token.
  const ctx = await model.createContext({
    contextSize: maxSeqLen + 1,
    batchSize: maxSeqLen,
    threads: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  try {
    const seq = ctx.getSequence();
    let nats = 0;
    let count = 0;
    for (let s = 0; s + 1 < tokens.length; s += maxSeqLen) {
      const win = tokens.slice(s, s + maxSeqLen + 1);
      await seq.clearHistory();
      const out = await seq.controlledEvaluate(win.slice(0, -1).map((t) => [t as Token, { generateNext: { probabilities: true } }]));
      for (let i = 0; i + 1 < win.length; i++) {
        nats -= Math.log(out[i]!.next.probabilities!.get(win[i + 1]! as Token)!);
        count++;
      }
    }
    return nats / count;
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

describe.each(Object.keys(SPECS))('Hugging Face directory: %s', (name) => {
  const m = () => models.get(name)!;
  let evalLoss = NaN;

  it('osp eval: the float64 Llama on the stored values', () => {
    const r = osp('eval', m().dir, '--text', textPath, '--json', '--backend', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { loss: number; tokens: number };
    expect(out.tokens).toBe(TEXT.length);
    const ref = textLoss64(m().config64, m().weights, TEXT, MAX_SEQ);
    expect(Math.abs(out.loss - ref)).toBeLessThan(1e-5);
    evalLoss = out.loss;
  });

  it('osp analyze: per-tap and aggregate kurtosis as the float64 Llama (and the Hessian spans every parameter)', () => {
    const B = 2;
    const T = 24;
    // The Hessian (a worker with its own backend) on one layout only: it reads the same weights.
    const hessian = name === 'grouped-KV f32' ? ['--hessian', '--topk', '2', '--lanczos', '4'] : [];
    const args = ['analyze', m().dir, '--text', textPath, '--batch', String(B), '--seq', String(T), '--kurtosis', ...hessian];
    const r = osp(...args, '--json', '--backend', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.kind).toBe('hf');
    expect(out.step).toBeUndefined();
    expect(out.tokens).toBe(B * T);
    const bytes = [...Buffer.from(TEXT)];
    const rows = [bytes.slice(0, T), bytes.slice(T + 1, 2 * T + 1)];
    const { hidden } = llama64(m().config64, m().weights, rows);
    const d = m().config64.hiddenSize;
    for (const [tap, x] of hidden) expect(out.kurtosis.perTap[tap].ospKurtosis, tap).toBeCloseTo(ospKurtosis64(x, B * T, d), 3);
    // The embedding's massive channel (hf_dir.ts: channel 3) holds its largest |activations|.
    expect(new Set(out.kurtosis.perTap.embed.topKChannel.slice(0, 4))).toEqual(new Set([3]));
    const L = m().config64.numLayers;
    const stream = ['embed', ...Array.from({ length: L - 1 }, (_, i) => `layers.${i}.out`), 'final_norm'];
    const aggregate = stream.reduce((a, tap) => a + ospKurtosis64(hidden.get(tap)!, B * T, d), 0) / stream.length;
    expect(out.kurtosis.ospKurtosis).toBeCloseTo(aggregate, 3);
    if (hessian.length) {
      expect(out.hessian.dim).toBe(m().numParams);
      expect(out.hessian.topk[0]).toBeGreaterThanOrEqual(out.hessian.topk[1]);
    }
  });

  it("osp quant-eval: 16 bits everywhere reproduce the full-precision loss, which is osp eval's; 4 bits runs", async () => {
    const r = await quantEvalCheckpoint({ checkpoint: m().dir, text: textPath, quant: { w: 16, a: 16, kv: 16 }, backend: 'cpu' });
    expect(r.kind).toBe('hf');
    expect(r.tokens).toBe(TEXT.length);
    expect(Math.abs(r.fp.loss - evalLoss)).toBeLessThan(1e-6);
    expect(r.variants[0]!.quant.loss).toBe(r.fp.loss);
    const q = await quantEvalCheckpoint({ checkpoint: m().dir, text: textPath, quant: { rotate: ['none', 'quarot'] }, backend: 'cpu' });
    expect(q.fp.loss).toBe(r.fp.loss);
    for (const v of q.variants) {
      expect(Number.isFinite(v.quant.loss), v.name).toBe(true);
      expect(v.quant.loss, v.name).not.toBe(q.fp.loss);
    }
  });

  it('osp export: the GGUF runs in llama.cpp with the same loss (f32); hf re-exports the same weights', async () => {
    const gguf = join(root, `${name.replace(/\W+/g, '_')}.gguf`);
    const x = osp('export', m().dir, '--format', 'gguf', '--out', gguf);
    expect(x.status, x.stderr).toBe(0);
    const theirs = await llamaCppLoss(gguf, TEXT, MAX_SEQ);
    expect(Math.abs(theirs - evalLoss)).toBeLessThan(1e-4);

    const hf = join(root, `${name.replace(/\W+/g, '_')}-hf`);
    await exportCheckpoint({ checkpoint: m().dir, format: 'hf', out: hf });
    const back = readHfCheckpoint(hf);
    const src = readHfCheckpoint(m().dir);
    expect(back.config).toEqual(src.config);
    for (const [k, w] of src.weights) expect(back.weights.get(k)!.data, k).toEqual(w.data);
    expect(JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')).tie_word_embeddings).toBe(m().config64.tie);
  });
});

describe('osp eval and osp quant-eval on a Hugging Face directory print what they measured', () => {
  it("eval's line; quant-eval's table: W16 = full precision, and llama.cpp's f32 loss of the GGUF export", () => {
    const m = models.get('sharded bf16')!;
    const ev = osp('eval', m.dir, '--text', textPath, '--backend', 'cpu');
    expect(ev.status, ev.stderr).toBe(0);
    const ref = textLoss64(m.config64, m.weights, TEXT, MAX_SEQ);
    const printed = /^(.*): loss (\S+) nats\/byte, bpb (\S+) over (\d+) bytes\n$/.exec(ev.stdout)!;
    expect(printed[1]).toBe(m.dir);
    // Four decimals of the float32 loss: within half a unit of the last digit (and the rounding) of the oracle.
    expect(Math.abs(Number(printed[2]) - ref)).toBeLessThan(5.1e-5);
    expect(Math.abs(Number(printed[3]) - ref / Math.LN2)).toBeLessThan(5.1e-5);
    expect(Number(printed[4])).toBe(TEXT.length);
    const r = osp('quant-eval', m.dir, '--text', textPath, '--w', '16', '--a', '16', '--kv', '16', '--gguf', 'f32', '--backend', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`checkpoint ${m.dir} (Hugging Face)`);
    const loss = (setting: string) =>
      Number(
        lines
          .find((l) => l.trim().startsWith(setting))!
          .trim()
          .split(/\s{2,}/)[1],
      );
    expect(Math.abs(loss('full precision') - ref)).toBeLessThan(5.1e-5);
    expect(loss('W16A16KV16 RTN')).toBe(loss('full precision'));
    // llama.cpp's own number (its default f16 KV cache), printed to 4 decimals.
    expect(Math.abs(loss('llama.cpp F32') - loss('full precision'))).toBeLessThanOrEqual(1e-3);
  });
});
