/**
 * Opening "a model" (export/checkpoint.ts openModelSource): an osp-lab checkpoint or run directory, or a
 * Hugging Face Llama directory, told apart by the files present; config.json's fields mapped to the
 * model config; and every refusal naming the file and the field: what osp-lab's Llama cannot compute
 * (biases, scaled RoPE, another activation or architecture, quantized weights), inconsistent sizes, a
 * missing tensor or shard, a stray tensor. HF directories are written by test/helpers/hf_dir.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FormatError, OspError } from '../../src/errors.ts';
import { evaluateCheckpoint } from '../../src/eval/evaluate_run.ts';
import { quantEvalCheckpoint } from '../../src/eval/quant_eval.ts';
import { openModelSource } from '../../src/export/checkpoint.ts';
import { modelConfigFromHf } from '../../src/model/hf.ts';
import { train } from '../../src/train/run.ts';
import { writeHfDir, type HfDirSpec } from '../helpers/hf_dir.ts';
import { tempDir, tinyRun } from '../helpers/run.ts';

const BASE: HfDirSpec = { hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxSeqLen: 32, dtype: 'f32', seed: 5 };

let root = '';
let n = 0;
/** A fresh HF directory of BASE with `extra` applied. */
const hf = (extra: Partial<HfDirSpec> = {}) => writeHfDir(join(root, `m${n++}`), { ...BASE, ...extra });
/** The error openModelSource throws for a directory. */
function openError(dir: string): Error {
  try {
    openModelSource(dir);
  } catch (e) {
    return e as Error;
  }
  throw new Error(`${dir} opened without an error`);
}

beforeAll(() => {
  root = tempDir('osp-hf-src-');
});

describe('openModelSource tells the kinds apart', () => {
  it('a Hugging Face directory: kind hf, its config and float32 weights, no step, backend or BOS', () => {
    const m = hf({ numKvHeads: 1, tie: true, ropeTheta: 500000, normEps: 1e-5, dtype: 'bf16', shards: 2 });
    const s = openModelSource(m.dir);
    expect(s.kind).toBe('hf');
    expect(s.dir).toBe(m.dir);
    expect([s.step, s.backend, s.bos, s.seed, s.runConfig]).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(s.config).toEqual({
      vocabSize: 258,
      hiddenSize: 16,
      numLayers: 2,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 8,
      intermediateSize: 32,
      maxSeqLen: 32,
      ropeTheta: 500000,
      normEps: 1e-5,
      tieEmbeddings: true,
      initStd: 0.02,
      norm: 'rmsnorm',
      embedding: 'plain',
    });
    expect([...s.weights.keys()].sort()).toEqual([...m.weights.keys()].sort());
    for (const [k, w] of m.weights) expect(Array.from(s.weights.get(k)!.data), k).toEqual(Array.from(w));
  });

  it("an osp-lab run directory: its newest checkpoint, with the run's step, backend, seed and BOS", async () => {
    const dir = tempDir();
    const config = tinyRun(dir, {
      steps: 1,
      schedule: { kind: 'constant' },
      checkpoint: { every: 0, keep: 1 },
      batch: { size: 2, seqLen: 32, bos: true },
    });
    const { runDir } = await train({ config, log: () => {} });
    const s = openModelSource(runDir);
    expect(s.kind).toBe('osp');
    expect(s.dir).toBe(join(runDir, 'checkpoints/step_00000001'));
    expect([s.step, s.backend, s.bos, s.seed]).toEqual([1, 'cpu', 256, 3]);
    expect(s.config.norm).toBe('ssnorm');
    expect(openModelSource(s.dir).weights).toEqual(s.weights);
  });

  it('anything else is refused, saying what a model path may be', () => {
    const none = join(root, 'none');
    expect(openError(none).message).toMatch(
      /none: no such directory; expected an osp-lab checkpoint directory .* or a Hugging Face Llama directory \(config\.json \+ model\.safetensors/,
    );
    const file = join(root, 'file.txt');
    writeFileSync(file, 'x');
    expect(openError(file).message).toMatch(/file\.txt: is a file; expected .*Hugging Face Llama directory/);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect(openError(empty).message).toMatch(/empty: not a model; expected .*run directory.*Hugging Face Llama directory/);
    // config.json without weights: an HF directory of PyTorch .bin files, or a run that saved nothing.
    const bin = hf();
    rmSync(join(bin.dir, 'model.safetensors'));
    writeFileSync(join(bin.dir, 'pytorch_model.bin'), 'x');
    expect(openError(bin.dir).message).toMatch(
      /has config\.json but neither model\.safetensors nor model\.safetensors\.index\.json .*not pytorch_model\.bin/,
    );
  });
});

describe('config.json: what changes the function is refused, naming the field', () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    [
      'attention_bias',
      { attention_bias: true },
      /config\.json: attention_bias must be false \(osp-lab's Llama has no biases\), found true/,
    ],
    ['mlp_bias', { mlp_bias: true }, /config\.json: mlp_bias must be false/],
    [
      'rope_scaling',
      { rope_scaling: { type: 'linear', factor: 2 } },
      /config\.json: rope_scaling \{"type":"linear","factor":2\} is not supported.*found rope_type "linear"/,
    ],
    [
      'rope_scaling (llama3)',
      { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
      /config\.json: rope_scaling .* is not supported: osp-lab's Llama has plain RoPE only/,
    ],
    [
      'rope_parameters',
      { rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4 } },
      /config\.json: rope_parameters .* found rope_type "yarn"/,
    ],
    [
      'hidden_act',
      { hidden_act: 'gelu_pytorch_tanh' },
      /config\.json: hidden_act must be 'silu' \(osp-lab's SwiGLU\), found "gelu_pytorch_tanh"/,
    ],
    ['model_type', { model_type: 'mistral' }, /config\.json: model_type must be 'llama' \(a LlamaForCausalLM\), found "mistral"/],
    ['architectures', { architectures: ['LlamaForSequenceClassification'] }, /config\.json: architectures must include 'LlamaForCausalLM'/],
    ['quantization_config', { quantization_config: { quant_method: 'gptq', bits: 4 } }, /config\.json: quantization_config is set/],
    ['head_dim (odd)', { head_dim: 7 }, /config\.json: head_dim must be even \(RoPE rotates pairs\), found 7/],
    ['num_key_value_heads', { num_key_value_heads: 3 }, /config\.json: num_attention_heads 2 must be a multiple of num_key_value_heads 3/],
    [
      'hidden_size (indivisible)',
      { hidden_size: 15 },
      /config\.json: hidden_size 15 is not divisible by num_attention_heads 2, and head_dim is not given/,
    ],
    ['num_hidden_layers (missing)', { num_hidden_layers: undefined }, /config\.json: num_hidden_layers is missing/],
    ['vocab_size (not an integer)', { vocab_size: 258.5 }, /config\.json: vocab_size must be a positive integer, found 258\.5/],
    ['rms_norm_eps', { rms_norm_eps: -1 }, /config\.json: rms_norm_eps: /],
    [
      'rope_theta (contradiction)',
      { rope_parameters: { rope_type: 'default', rope_theta: 500000 } },
      /config\.json: rope_theta 10000 contradicts rope_parameters\.rope_theta 500000/,
    ],
    ['tie_word_embeddings', { tie_word_embeddings: 'yes' }, /config\.json: tie_word_embeddings must be true or false, found "yes"/],
  ];
  it.each(refused)('%s', (_field, config, message) => {
    const err = openError(hf({ config }).dir);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toMatch(message);
  });

  it('what does not change it is accepted: pretraining_tp, attention_dropout, default RoPE spelled out, transformers 5 rope_parameters, absent defaults', () => {
    const plain = modelConfigFromHf(hf().dir);
    for (const config of [
      { pretraining_tp: 2, attention_dropout: 0.1, torch_dtype: 'bfloat16' },
      { rope_scaling: { rope_type: 'default' } },
      { rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 10000 } },
      { architectures: undefined, hidden_act: 'swish', attention_bias: undefined, mlp_bias: undefined },
    ]) {
      expect(modelConfigFromHf(hf({ config }).dir), JSON.stringify(config)).toEqual(plain);
    }
    // LlamaConfig's defaults for what config.json leaves out.
    const bare = modelConfigFromHf(
      hf({ config: { num_key_value_heads: undefined, rope_theta: undefined, rms_norm_eps: undefined, tie_word_embeddings: undefined } })
        .dir,
    );
    expect(bare).toEqual({ ...plain, numKvHeads: 2, ropeTheta: 10000, normEps: 1e-6, tieEmbeddings: false });
    const noMax = modelConfigFromHf(hf({ config: { max_position_embeddings: undefined } }).dir);
    expect(noMax.maxSeqLen).toBe(2048);
    // rope_parameters alone carries the base.
    expect(
      modelConfigFromHf(
        hf({ ropeTheta: 500000, config: { rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 500000 } } }).dir,
      ).ropeTheta,
    ).toBe(500000);
  });

  it('invalid JSON and a missing config.json name the file', () => {
    const bad = hf();
    writeFileSync(join(bad.dir, 'config.json'), '{"model_type": "llama",');
    expect(openError(bad.dir).message).toMatch(/config\.json: invalid JSON/);
    rmSync(join(bad.dir, 'config.json'));
    expect(openError(bad.dir).message).toMatch(/config\.json: file not found/);
  });
});

describe('the weights: tensors and shards checked against config.json', () => {
  it('a missing tensor names the tensor and the file (single file, or the shard weight_map names)', () => {
    const one = hf({ drop: ['model.layers.1.mlp.up_proj.weight'] });
    expect(openError(one.dir).message).toBe(
      `${join(one.dir, 'model.safetensors')}: missing tensor 'model.layers.1.mlp.up_proj.weight' (required by config.json)`,
    );
    const untied = hf({ drop: ['lm_head.weight'] });
    expect(openError(untied.dir).message).toMatch(
      /missing tensor 'lm_head\.weight' \(required by config\.json: tie_word_embeddings is false\)/,
    );
    const sharded = hf({ shards: 2, dtype: 'bf16', drop: ['model.norm.weight'] });
    expect(openError(sharded.dir).message).toBe(
      `${join(sharded.dir, 'model.safetensors.index.json')}: weight_map: missing tensor 'model.norm.weight' (required by config.json)`,
    );
  });

  it('a missing shard names the shard and the index', () => {
    const m = hf({ shards: 2, dtype: 'bf16' });
    rmSync(join(m.dir, 'model-00002-of-00002.safetensors'));
    const err = openError(m.dir);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toMatch(
      /model\.safetensors\.index\.json: shard 'model-00002-of-00002\.safetensors' is missing from .* \(weight_map puts \d+ tensors there, e\.g\. 'model\.layers\.\d\./,
    );
  });

  it('a bias tensor, a shape that contradicts config.json, and a tied head that differs from the embedding are refused', () => {
    const bias = hf({ extra: { 'model.layers.0.self_attn.q_proj.bias': { shape: [16], data: new Float32Array(16) } } });
    expect(openError(bias.dir).message).toMatch(
      /model\.safetensors: unexpected tensor 'model\.layers\.0\.self_attn\.q_proj\.bias' for a Llama of this config \(biases are not part of osp-lab's Llama\)/,
    );
    const shape = hf({ config: { intermediate_size: 48 } });
    expect(openError(shape.dir).message).toMatch(
      /model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[32,16\], config\.json implies \[48,16\]/,
    );
    // A tied model whose exporter also wrote lm_head.weight: fine when it is the embedding, refused otherwise.
    const tied = hf({ tie: true });
    const E = tied.weights.get('model.embed_tokens.weight')!;
    const same = hf({ tie: true, extra: { 'lm_head.weight': { shape: [258, 16], data: E } } });
    expect(openModelSource(same.dir).weights.has('lm_head.weight')).toBe(false);
    const other = hf({ tie: true, extra: { 'lm_head.weight': { shape: [258, 16], data: E.map((x) => -x) } } });
    expect(openError(other.dir).message).toMatch(
      /tensor 'lm_head\.weight' differs from 'model\.embed_tokens\.weight', but config\.json has tie_word_embeddings true/,
    );
  });
});

describe('the commands on a Hugging Face directory', () => {
  it('osp eval: a refused config.json is one line naming the file and field, exit status 2', () => {
    const m = hf({ config: { rope_scaling: { type: 'dynamic', factor: 2 } } });
    writeFileSync(join(root, 't.txt'), 'hello');
    const r = spawnSync(process.execPath, ['bin/osp.mjs', 'eval', m.dir, '--text', join(root, 't.txt')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`osp eval: ${join(m.dir, 'config.json')}: rope_scaling {"type":"dynamic","factor":2} is not supported`);
  });

  it("a vocabulary without osp-lab's byte tokens is refused before anything runs", async () => {
    const m = hf({ vocabSize: 200 });
    writeFileSync(join(root, 'v.txt'), 'hello');
    await expect(evaluateCheckpoint({ checkpoint: m.dir, text: join(root, 'v.txt') })).rejects.toThrow(
      /no tokenizer\.json, and its 200-token vocabulary is not osp-lab's byte tokenizer; put the model's tokenizer\.json in the directory/,
    );
  });

  it('quant-eval: no run, so no --val and no default GPTQ calibration', async () => {
    const m = hf();
    writeFileSync(join(root, 'q.txt'), 'hello there');
    await expect(quantEvalCheckpoint({ checkpoint: m.dir, val: true })).rejects.toThrow(
      /is a Hugging Face directory: it has no run and so no validation split/,
    );
    const gptq = quantEvalCheckpoint({ checkpoint: m.dir, text: join(root, 'q.txt'), quant: { method: ['gptq'] } });
    await expect(gptq).rejects.toThrow(OspError);
    await expect(gptq).rejects.toThrow(/GPTQ needs calibration text \(--calib FILE\)/);
  });
});
