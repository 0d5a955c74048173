/**
 * The tokenizer is part of a run (`tokenizer` in the run config): the model's vocabulary follows it,
 * the data is tokenized with it, shards of another tokenizer are refused, config.json records it and a
 * resume that would tokenize differently is refused; bits per byte count the text's bytes whatever the
 * tokenizer; osp eval reads text with the run's tokenizer.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gpt2TokenizerJson, loadTokenizer } from '../../src/data/tokenizer.ts';
import { prepareShards, readShardFile, writeShard } from '../../src/data/sources.ts';
import { ConfigError } from '../../src/errors.ts';
import { evaluateCheckpoint } from '../../src/eval/evaluate_run.ts';
import { exportCheckpoint } from '../../src/export/index.ts';
import { resolveRunConfig } from '../../src/train/config.ts';
import { train } from '../../src/train/run.ts';
import { rng } from '../helpers/prng.ts';
import { tinyRun } from '../helpers/run.ts';
import { tempDir } from '../helpers/scratch.ts';

const quiet = () => {};

/** Documents with words, digits, accents and emoji: GPT-2 splits them into multi-byte tokens. */
function documents(n: number): string[] {
  const words = ['the', 'model', 'outlier', 'café', 'naïve', '12345', 'über', '日本', '😀', "don't", 'kurtosis', 'Muon'];
  const r = rng(7);
  return Array.from({ length: n }, () => Array.from({ length: 60 }, () => words[Math.floor(r() * words.length)]).join(' '));
}

function jsonl(dir: string, name: string, docs: readonly string[]): string {
  const path = join(dir, name);
  writeFileSync(path, docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  return path;
}

/** A small GPT-2-tokenized run on .jsonl documents (d=16, one layer: the 50257-row embedding dominates). */
function gpt2Run(out: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const train = jsonl(out, 'train.jsonl', documents(40));
  const val = jsonl(out, 'val.jsonl', documents(8));
  return tinyRun(out, {
    // wasm: tfjs's pure-JS cpu backend takes ~9 s a step over a 50257-row embedding, wasm ~0.2 s.
    backend: 'wasm',
    tokenizer: 'gpt2',
    steps: 4,
    model: { hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 32, norm: 'ssnorm', embedding: 'embproj' },
    data: { source: 'jsonl', train: [train], val: [val] },
    batch: { size: 2, seqLen: 32 },
    eval: { every: 0, batches: 2 },
    checkpoint: { every: 2, keep: 5 },
    ...extra,
  });
}

describe('the run config', () => {
  it('model.vocabSize follows the tokenizer unless set; set, it must hold the ids', () => {
    const out = tempDir('osp-tok-');
    expect(resolveRunConfig(tinyRun(out)).model.vocabSize).toBe(258);
    const gpt2 = resolveRunConfig({ ...tinyRun(out), tokenizer: 'gpt2' });
    expect(gpt2.tokenizer).toBe('gpt2');
    expect(gpt2.model.vocabSize).toBe(50257);
    const padded = resolveRunConfig({ ...tinyRun(out), tokenizer: 'gpt2', model: { vocabSize: 50304 } });
    expect(padded.model.vocabSize).toBe(50304);
    const small = () => resolveRunConfig({ ...tinyRun(out), tokenizer: 'gpt2', model: { vocabSize: 258 } });
    expect(small).toThrow(ConfigError);
    expect(small).toThrow(/model\.vocabSize: 258 cannot hold the ids of tokenizer 'gpt2' \(50257 ids/);
  });

  it('an unknown tokenizer names the field and the choices; a tokenizer.json path resolves to its absolute path', () => {
    const out = tempDir('osp-tok-');
    expect(() => resolveRunConfig({ ...tinyRun(out), tokenizer: 'gpt3' })).toThrow(/tokenizer: unknown tokenizer "gpt3".*'bytes', 'gpt2'/);
    const file = join(out, 'tokenizer.json');
    writeFileSync(file, JSON.stringify(gpt2TokenizerJson()));
    const rel = resolveRunConfig({ ...tinyRun(out), tokenizer: file.replace(`${process.cwd()}/`, '') });
    expect(rel.tokenizer).toBe(resolve(file));
    expect(rel.model.vocabSize).toBe(50257);
  });
});

describe('bytes per token (bits per byte of any tokenizer)', () => {
  it('the tokens of a text stand for exactly its UTF-8 bytes, for bytes and for gpt2', () => {
    for (const spec of ['bytes', 'gpt2']) {
      const tok = loadTokenizer(spec);
      for (const text of [...documents(5), 'tabs\t\tand  spaces\n', '👨‍👩‍👧 e\u0301', '']) {
        const ids = tok.encode(text);
        const bytes = ids.reduce((a, id) => a + tok.byteLength(id), 0);
        expect(bytes, `${spec}: ${JSON.stringify(text.slice(0, 20))}`).toBe(Buffer.byteLength(text));
      }
      expect(tok.byteLength(tok.bos)).toBe(0);
      expect(tok.byteLength(tok.eos)).toBe(0);
    }
  });
});

describe('a GPT-2 run', () => {
  it('trains on tokenized documents, records its tokenizer, and osp eval reads text with it', async () => {
    const out = tempDir('osp-tok-');
    const s = await train({ config: gpt2Run(out), log: quiet });
    const saved = JSON.parse(readFileSync(join(s.runDir, 'config.json'), 'utf8')) as {
      tokenizer: unknown;
      resolved: { model: { vocabSize: number } };
    };
    const gpt2 = loadTokenizer('gpt2');
    expect(saved.tokenizer).toEqual({ spec: 'gpt2', fingerprint: gpt2.fingerprint, vocabSize: 50257 });
    expect(saved.resolved.model.vocabSize).toBe(50257);
    // The untrained model predicts almost uniformly over 50257 ids: the first loss is near ln 50257.
    const first = JSON.parse(readFileSync(join(s.runDir, 'metrics.jsonl'), 'utf8').split('\n')[0]!) as Record<string, number>;
    expect(first['train/loss']).toBeGreaterThan(Math.log(50257) - 0.1);
    expect(first['train/loss']).toBeLessThan(Math.log(50257) + 0.1);
    // The final eval's bits per byte: the val windows' nats over the bytes their targets stand for.
    expect(s.eval!.bitsPerByte).toBeLessThan(s.eval!.loss / Math.LN2); // GPT-2 tokens are more than a byte each

    const textPath = join(out, 'eval.txt');
    const text = documents(1)[0]!;
    writeFileSync(textPath, text);
    const r = await evaluateCheckpoint({ checkpoint: s.runDir, text: textPath, backend: 'wasm' });
    expect(r.tokenizer).toBe('gpt2');
    // Every token of the text predicted once (BOS first), and they stand for all of its bytes.
    expect(r.tokens).toBe(gpt2.encode(text).length);
    expect(r.bytes).toBe(Buffer.byteLength(text));
    expect(r.bpb).toBeCloseTo((r.loss * r.tokens) / Math.LN2 / r.bytes, 12);

    // Its Hugging Face export brings GPT-2's tokenizer.json: a run starting from it must use that tokenizer.
    const hf = join(out, 'hf');
    await exportCheckpoint({ checkpoint: s.runDir, format: 'hf', out: hf });
    const plain = { hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 32, norm: 'rmsnorm', embedding: 'plain' };
    const from = (tokenizer: string, name: string) =>
      train({
        config: gpt2Run(out, { name, tokenizer, steps: 1, schedule: { kind: 'constant' }, model: { ...plain, vocabSize: 50257 } }),
        initFrom: hf,
        log: quiet,
      });
    await expect(from('bytes', 'b')).rejects.toThrow(
      /--init-from: .*hf was trained with tokenizer '.*tokenizer\.json' \(50257 ids.*the run's is 'bytes'/,
    );
    expect((await from('gpt2', 'g')).steps).toBe(1);
  });

  it('shards written with another tokenizer are refused, naming the shard', async () => {
    const out = tempDir('osp-tok-');
    const docs = jsonl(out, 'docs.jsonl', documents(40));
    const val = jsonl(out, 'val.jsonl', documents(8));
    const shards = prepareShards([docs], join(out, 'shards'), { tokenizer: loadTokenizer('gpt2'), val: [val], log: quiet });
    const trainShard = shards.find((f) => f.path.includes('_train_'))!.path;
    const valShard = shards.find((f) => f.path.includes('_val_'))!.path;
    const config = {
      ...tinyRun(out),
      backend: 'wasm',
      steps: 2,
      schedule: { kind: 'constant' },
      model: { vocabSize: 50257, hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 32 },
      data: { source: 'shards', train: [trainShard], val: [valShard] },
    };
    // The run says bytes (vocabulary padded to hold the ids): the shards say gpt2.
    await expect(train({ config, log: quiet })).rejects.toThrow(trainShard);
    await expect(train({ config, log: quiet })).rejects.toThrow(/gpt2/);
    // With the tokenizer the shards were made with, the same data trains.
    const ok = await train({ config: { ...config, tokenizer: 'gpt2', name: 'ok' }, log: quiet });
    expect(ok.steps).toBe(2);
    // Shards that record no tokenizer (llm.c's own): ids beyond the run's tokenizer are refused with the fix,
    // and with that fix they train.
    const bare = (f: string) => {
      const path = f.replace('.bin', '-bare.bin');
      writeShard(path, readShardFile(f).tokens);
      return path;
    };
    const unrecorded = { ...config, name: 'bare', data: { source: 'shards', train: [bare(trainShard)], val: [bare(valShard)] } };
    await expect(train({ config: unrecorded, log: quiet })).rejects.toThrow(
      /records no tokenizer and holds id \d+, beyond tokenizer 'bytes'.*--set tokenizer=gpt2/,
    );
    expect((await train({ config: { ...unrecorded, tokenizer: 'gpt2' }, log: quiet })).steps).toBe(2);
  });

  it("a resume tokenizes with the run's copy of its tokenizer.json; a different tokenizer is refused", async () => {
    const out = tempDir('osp-tok-');
    const file = join(out, 'tok', 'tokenizer.json');
    const json = gpt2TokenizerJson() as { model: { merges: unknown[] } };
    mkdirSync(join(out, 'tok'));
    writeFileSync(file, JSON.stringify(json));
    const s = await train({ config: gpt2Run(out, { tokenizer: file }), log: quiet });
    const original = loadTokenizer(file).fingerprint;
    expect(loadTokenizer(join(s.runDir, 'tokenizer')).fingerprint).toBe(original);
    // Swap the first two merges: another tokenizer under the same path.
    const merges = json.model.merges;
    [merges[0], merges[1]] = [merges[1], merges[0]];
    writeFileSync(file, JSON.stringify(json));
    // Named explicitly, the edited file is refused, and nothing is written.
    const refused = () => train({ resume: s.runDir, overrides: ['steps=6', `tokenizer=${file}`], log: quiet });
    await expect(refused()).rejects.toThrow(ConfigError);
    await expect(refused()).rejects.toThrow(
      /tokenizer: .* was trained with tokenizer .*; the config now gives .*A resumed run must tokenize/,
    );
    const saved = JSON.parse(readFileSync(join(s.runDir, 'config.json'), 'utf8')) as { resolved: { steps: number } };
    expect(saved.resolved.steps).toBe(4);
    // A plain resume uses the run's copy: the original file's edit (or move) does not matter.
    const resumed = await train({ resume: s.runDir, overrides: ['steps=6'], extendSchedule: true, log: quiet });
    expect(resumed.steps).toBe(6);
    const after = JSON.parse(readFileSync(join(s.runDir, 'config.json'), 'utf8')) as { resolved: { tokenizer: string } };
    expect(loadTokenizer(after.resolved.tokenizer).fingerprint).toBe(original);
  });
});
