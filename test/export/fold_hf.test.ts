/**
 * Folding OSP's modules into a plain Llama keeps the logits (relative 1e-5), and a Hugging Face
 * export reads back bit-exactly; --init-from starts training from it with the same loss.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { ConfigError, FormatError } from '../../src/errors.ts';
import { bytesToUnicode } from '../../src/export/byte_vocab.ts';
import { foldToLlama, modelWeights } from '../../src/model/fold.ts';
import { writeHfCheckpoint } from '../../src/export/hf.ts';
import { readHfCheckpoint } from '../../src/model/hf.ts';
import { decodeSafetensors } from '../../src/io/safetensors.ts';
import { Transformer, createModel } from '../../src/model/transformer.ts';
import { train } from '../../src/train/run.ts';
import { Rng } from '../../src/utils/rng.ts';
import { normRelErr, tokens } from '../helpers/model.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const tiny = { vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 4, maxSeqLen: 16, initStd: 0.2 };
/** An exported model's vocabulary must hold its tokenizer's ids (the byte tokenizer's 258 by default). */
const tinyHf = { ...tiny, vocabSize: 258 };

function logitsOf(model: Transformer, toks: number[][]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(toks, undefined, 'int32')).logits.dataSync() as Float32Array);
}

describe('folding into a plain Llama', () => {
  for (const v of [
    { norm: 'ssnorm', embedding: 'embproj' },
    { norm: 'ssnorm', embedding: 'plain' },
    { norm: 'rmsnorm', embedding: 'embproj', tieEmbeddings: true },
    { norm: 'rmsnorm', embedding: 'plain', tieEmbeddings: true },
  ] as const) {
    it(`${JSON.stringify(v)}: same logits`, async () => {
      const model = createModel({ ...tiny, ...v }, { seed: 4 });
      // Train-like weights: SSNorm scalars away from 1.
      for (const [name, p] of model.params) if (name.includes('norm')) p.assign(tf.mul(p, 1.7));
      const folded = foldToLlama(model.config, await modelWeights(model));
      expect(folded.config.norm).toBe('rmsnorm');
      expect(folded.config.embedding).toBe('plain');
      expect(folded.config.tieEmbeddings).toBe(v.tieEmbeddings === true && v.embedding === 'plain');
      const plain = new Transformer(folded.config, new Rng(0));
      expect([...plain.params.keys()].sort()).toEqual([...folded.weights.keys()].sort());
      for (const [name, p] of plain.params) p.assign(tf.tensor(folded.weights.get(name)!.data, p.shape));
      const toks = tokens(2, 9, tiny.vocabSize, 3);
      expect(normRelErr(logitsOf(plain, toks), logitsOf(model, toks))).toBeLessThan(1e-5);
      model.dispose();
      plain.dispose();
    });
  }
});

describe('Hugging Face export and import', () => {
  it('writes config, weights and tokenizer files that read back bit-exactly', async () => {
    const model = createModel({ ...tinyHf, numKvHeads: 2 }, { seed: 5 });
    const folded = foldToLlama(model.config, await modelWeights(model));
    const dir = join(tempDir(), 'hf');
    writeHfCheckpoint(dir, folded.config, folded.weights, 'f32');
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: 258,
      hidden_size: 16,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 4,
      hidden_act: 'silu',
      max_position_embeddings: 16,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: null,
      tie_word_embeddings: false,
      attention_bias: false,
      mlp_bias: false,
      torch_dtype: 'float32',
    });
    const st = decodeSafetensors(readFileSync(join(dir, 'model.safetensors')));
    expect(st.metadata.format).toBe('pt');
    expect(st.tensors.get('model.layers.1.self_attn.k_proj.weight')!.shape).toEqual([8, 16]);
    expect(st.tensors.get('lm_head.weight')!.dtype).toBe('F32');
    const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    expect(tok.model.type).toBe('BPE');
    expect(tok.model.merges).toEqual([]);
    expect(tok.model.vocab['Ġ']).toBe(32); // GPT-2's character for the space byte
    expect(tok.model.vocab['a']).toBe(97);
    expect(Object.keys(tok.model.vocab)).toHaveLength(258);
    expect(existsSync(join(dir, 'generation_config.json'))).toBe(true);
    // bytes_to_unicode is a bijection onto 256 distinct characters.
    expect(new Set(bytesToUnicode()).size).toBe(256);

    const back = readHfCheckpoint(dir);
    expect(back.config).toEqual(folded.config);
    for (const [name, w] of folded.weights) expect(back.weights.get(name)!.data, name).toEqual(w.data);
    model.dispose();
  });

  it('f16 and bf16 exports read back at their precision', async () => {
    const model = createModel(tinyHf, { seed: 6 });
    const folded = foldToLlama(model.config, await modelWeights(model));
    for (const dtype of ['f16', 'bf16'] as const) {
      const dir = join(tempDir(), dtype);
      writeHfCheckpoint(dir, folded.config, folded.weights, dtype);
      const back = readHfCheckpoint(dir);
      const w = folded.weights.get('model.layers.0.mlp.up_proj.weight')!.data;
      const b = back.weights.get('model.layers.0.mlp.up_proj.weight')!.data;
      const tol = dtype === 'f16' ? 2 ** -11 : 2 ** -8;
      w.forEach((x, i) => expect(Math.abs(b[i]! - x)).toBeLessThanOrEqual(Math.abs(x) * tol + 1e-7));
    }
    model.dispose();
  });

  it('refuses a non-empty output directory and rejects bad checkpoints clearly', async () => {
    const model = createModel(tinyHf, { seed: 7 });
    const folded = foldToLlama(model.config, await modelWeights(model));
    const dir = join(tempDir(), 'hf');
    writeHfCheckpoint(dir, folded.config, folded.weights);
    const before = readFileSync(join(dir, 'model.safetensors'));
    expect(() => writeHfCheckpoint(dir, folded.config, folded.weights)).toThrow(/exists and is not empty/);
    expect(readFileSync(join(dir, 'model.safetensors'))).toEqual(before);
    // A shape that contradicts config.json.
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 32 }));
    expect(() => readHfCheckpoint(dir)).toThrow(/'model.layers.0.mlp.gate_proj.weight' has shape \[64,16\], config.json implies \[32,16\]/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2' }));
    expect(() => readHfCheckpoint(dir)).toThrow(FormatError);
    model.dispose();
  });
});

describe('osp train --init-from', () => {
  it('starts from the exported weights', async () => {
    const out = tempDir();
    const base = tinyRun(out, {
      steps: 4,
      schedule: { kind: 'constant' },
      model: { hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 32 },
    });
    const src = await train({ config: { ...base, name: 'src' }, log: () => {} });
    // Export the trained source as HF, then start a new run from it.
    const { openCheckpoint } = await import('../../src/train/checkpoint.ts');
    const { toFloat32 } = await import('../../src/io/safetensors.ts');
    const { checkpoint } = openCheckpoint(src.runDir);
    const cfg = (checkpoint.state.config as { model: Parameters<typeof foldToLlama>[0] }).model;
    const weights = new Map([...checkpoint.model].map(([k, v]) => [k, { shape: v.shape, data: toFloat32(v) }]));
    const folded = foldToLlama(cfg, weights);
    writeHfCheckpoint(join(out, 'hf'), folded.config, folded.weights);
    // A run of the same config and seed sees the same first batch; with a negligible lr its weights
    // stay the exported ones.
    const lines: string[] = [];
    const init = await train({
      config: { ...base, name: 'init', optimizer: { muon: { lr: 1e-12 }, adamw: { lr: 1e-12 } } },
      initFrom: join(out, 'hf'),
      log: (l) => lines.push(l),
    });
    expect(lines.join('\n')).toContain(`initialised from ${join(out, 'hf')}`);
    const first = readMetrics(init.runDir)[0]!['train/loss']!;
    const fresh = readMetrics(src.runDir)[0]!['train/loss']!;
    // Trained weights give a clearly lower loss on the first batch than the random init did.
    expect(first).toBeLessThan(fresh - 0.3);
    // And the init run's weights are the exported ones (lr ~ 0: unchanged after 4 steps up to 1e-6).
    const initCkpt = openCheckpoint(init.runDir).checkpoint;
    const a = toFloat32(initCkpt.model.get('model.layers.1.mlp.down_proj.weight')!);
    const b = folded.weights.get('model.layers.1.mlp.down_proj.weight')!.data;
    expect(normRelErr(a, b)).toBeLessThan(1e-6);
  });

  it('a mismatching model config names each difference and the fix; nothing is written', async () => {
    const out = tempDir();
    const model = createModel({ vocabSize: 258, hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 32 }, { seed: 1 });
    const folded = foldToLlama(model.config, await modelWeights(model));
    writeHfCheckpoint(join(out, 'hf'), folded.config, folded.weights);
    const cfg = tinyRun(out, { model: { hiddenSize: 32, numLayers: 3, numHeads: 4, maxSeqLen: 32, norm: 'ssnorm' } });
    const err = await train({ config: cfg, initFrom: join(out, 'hf'), log: () => {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('model.numLayers is 3, the checkpoint has 2');
    expect((err as Error).message).toContain('model.norm is "ssnorm", the checkpoint has "rmsnorm"');
    expect((err as Error).message).toContain('--set model.numLayers=2');
    expect(existsSync(join(out, 'tiny'))).toBe(false);
    model.dispose();
  });
});
