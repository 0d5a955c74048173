/** `osp data prepare`: tokenize text into .bin shards. */
import { prepareShards } from '../../data/sources.ts';
import { describeTokenizer, loadTokenizer } from '../../data/tokenizer.ts';
import { OspError } from '../../errors.ts';
import type { Command } from '../command.ts';

export const data: Command = {
  summary: 'data tools: `osp data prepare` tokenizes text into .bin shards',
  usage:
    'osp data prepare INPUT... --out DIR [--tokenizer NAME|FILE] [--val FILE ...] [--shard-tokens N] ' +
    '[--val-fraction F] [--seed S] [--prefix NAME] [--overwrite]',
  options: {
    out: { type: 'string' },
    tokenizer: { type: 'string' },
    val: { type: 'string', multiple: true },
    overwrite: { type: 'boolean' },
    'shard-tokens': { type: 'string' },
    'val-fraction': { type: 'string' },
    seed: { type: 'string' },
    prefix: { type: 'string' },
  },
  help: {
    'INPUT...': '.txt files (one document each) or .jsonl files (one document per line, field "text")',
    '--out DIR': 'output directory for PREFIX_val_000000.bin, PREFIX_train_000000.bin, ...',
    '--tokenizer NAME|FILE':
      'bytes (default: UTF-8 bytes + BOS 256 / EOS 257), gpt2 (GPT-2 BPE, 50257 ids), or a Hugging Face tokenizer.json; recorded in every shard header',
    '--val FILE': 'validation documents (repeatable); without it val is split from INPUT by document, or by position for one document',
    '--shard-tokens N': 'tokens per shard (default 100000000)',
    '--val-fraction F': 'fraction of documents held out for validation (default 0.05)',
    '--seed S': 'seed of the document split (default 0)',
    '--prefix NAME': 'shard file prefix (default data)',
    '--overwrite': "replace this prefix's shards already in DIR (otherwise they are an error)",
  },
  async run(v, pos) {
    if (pos[0] !== 'prepare') throw new OspError(`unknown subcommand '${pos[0] ?? ''}'; valid: prepare`);
    const inputs = pos.slice(1);
    if (inputs.length === 0) throw new OspError('give at least one INPUT file');
    if (!v.out) throw new OspError('--out DIR is required');
    const num = (name: string) => {
      const raw = v[name] as string | undefined;
      if (raw === undefined) return undefined;
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new OspError(`--${name} must be a number, got '${raw}'`);
      return n;
    };
    const tokenizer = loadTokenizer((v.tokenizer as string | undefined) ?? 'bytes');
    console.log(`tokenizer ${describeTokenizer(tokenizer)}`);
    const written = prepareShards(inputs, v.out as string, {
      tokenizer,
      shardTokens: num('shard-tokens'),
      valFraction: num('val-fraction'),
      seed: num('seed'),
      prefix: v.prefix as string | undefined,
      overwrite: Boolean(v.overwrite),
      val: v.val as string[] | undefined,
      log: (line) => console.log(line),
    });
    for (const f of written) console.log(`${f.path}\t${f.tokens} tokens`);
  },
};
