/**
 * A dataset is one token stream with a name: documents tokenized (BOS + tokens + EOS each, or one
 * <|endoftext|> before each for GPT-2: tokenizeDocuments) and concatenated, or llm.c shards concatenated
 * in name order. `loadDataset` turns the validated `data` section of a config into the train and val
 * streams the Batcher cuts into windows, with the tokenizer it is given (default bytes); shards made
 * with another tokenizer are refused (checkShardTokenizer).
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
import { ConfigError, DataError } from '../errors.ts';
import { loadBrown, splitDocuments, type Document } from './brown.ts';
import {
  describeShardTokenizer,
  readDocuments,
  readShardFile,
  shardTokenizerInfo,
  splitOneDocument,
  type ShardTokenizerInfo,
} from './sources.ts';
import { byteTokenizer, describeTokenizer, tokenizeDocuments, type Tokenizer } from './tokenizer.ts';

/** Options of TokenDataset.fromShards. */
export interface ShardOptions {
  /** Every token id must be below it (e.g. the model's vocabSize). */
  vocabSize?: number;
  /**
   * The tokenizer the run uses: shards recording another one are refused (checkShardTokenizer), and the
   * ids of every shard must be below its vocab size. Without it, the shards need only agree among themselves.
   */
  tokenizer?: Tokenizer;
}

/**
 * One token stream. `name` appears in error messages (e.g. 'brown/val'). `tokenizerInfo` is what made the
 * tokens, as far as known: the tokenizer that encoded the documents, or the one the shards record
 * (undefined for shards that record none).
 */
export class TokenDataset {
  constructor(
    readonly name: string,
    readonly tokens: Uint16Array,
    readonly tokenizerInfo?: ShardTokenizerInfo,
  ) {}

  /** Number of tokens in the stream. */
  get length(): number {
    return this.tokens.length;
  }

  /**
   * Tokenizes documents (BOS + tokens + EOS each) into one stream.
   *
   * @example
   *   TokenDataset.fromDocuments('notes', readTextFile('notes.txt'));
   */
  static fromDocuments(name: string, docs: readonly Document[], tokenizer: Tokenizer = byteTokenizer): TokenDataset {
    return new TokenDataset(
      name,
      tokenizeDocuments(
        docs.map((d) => d.text),
        tokenizer,
      ),
      shardTokenizerInfo(tokenizer),
    );
  }

  /**
   * Concatenates llm.c shards. Each entry is a path or a pattern with `*` / `?` in its file name
   * (e.g. 'data/fineweb_train_*.bin'); all matches are read in sorted path order, each file once.
   * With `vocabSize`, every token id is checked to be below it; with `tokenizer`, every shard must have
   * been made with it (or record no tokenizer) and its ids must be below its vocab size. Shards that
   * record different tokenizers are never mixed. The dataset's `tokenizerInfo` is the one the shards record.
   *
   * @example
   *   TokenDataset.fromShards('train', ['out/data_train_*.bin'], { vocabSize: 258 });
   *   TokenDataset.fromShards('train', ['out/data_train_*.bin'], { tokenizer: loadTokenizer('gpt2') });
   */
  static fromShards(name: string, patterns: readonly string[], opts: ShardOptions = {}): TokenDataset {
    const { tokenizer } = opts;
    const files = [...new Set(patterns.flatMap(expandPattern))].sort();
    if (files.length === 0) throw new DataError(name, 'expected at least one shard file, found none');
    // Ids are checked against the model's vocabulary; a shard that records its tokenizer is checked against
    // the run's, and one that records none must at least hold only ids the run's tokenizer has.
    const vocabSize = opts.vocabSize ?? tokenizer?.vocabSize;
    let recorded: { info: ShardTokenizerInfo; file: string } | undefined;
    const shards = files.map((f) => {
      const shard = readShardFile(f, { vocabSize, tokenizer });
      if (tokenizer && !shard.tokenizer) {
        const max = shard.tokens.reduce((m, t) => (t > m ? t : m), 0);
        if (max >= tokenizer.vocabSize) {
          throw new DataError(
            f,
            `records no tokenizer and holds id ${max}, beyond tokenizer ${describeTokenizer(tokenizer)}: set the run's ` +
              `tokenizer to the one the shards were made with (llm.c's GPT-2 shards: --set tokenizer=gpt2)`,
          );
        }
      }
      if (shard.tokenizer) {
        if (recorded && recorded.info.fingerprint !== shard.tokenizer.fingerprint) {
          throw new DataError(
            f,
            `made with tokenizer ${describeShardTokenizer(shard.tokenizer)}, but ${recorded.file} of the same dataset with ` +
              `${describeShardTokenizer(recorded.info)}: shards of different tokenizers cannot be mixed`,
          );
        }
        recorded ??= { info: shard.tokenizer, file: f };
      }
      return shard.tokens;
    });
    const tokens = new Uint16Array(shards.reduce((n, s) => n + s.length, 0));
    let at = 0;
    for (const s of shards) {
      tokens.set(s, at);
      at += s.length;
    }
    return new TokenDataset(name, tokens, recorded?.info);
  }

  /** The Brown corpus split by document into train and val (see splitDocuments), tokenized with `tokenizer` (default bytes). */
  static brown(opts: { valFraction?: number; seed?: number; tokenizer?: Tokenizer } = {}): { train: TokenDataset; val: TokenDataset } {
    const { tokenizer, ...split } = opts;
    const { train, val } = splitDocuments(loadBrown(), { ...split, source: 'brown' });
    return {
      train: TokenDataset.fromDocuments('brown/train', train, tokenizer),
      val: TokenDataset.fromDocuments('brown/val', val, tokenizer),
    };
  }
}

/**
 * Expands `*` and `?` in the file-name part of a path (not in folders: shard sets live in one folder).
 * A plain path is returned as it is (readShard reports it if missing); a pattern matching nothing is an error.
 */
function expandPattern(pattern: string): string[] {
  const name = basename(pattern);
  const dir = dirname(pattern);
  if (/[*?]/.test(dir)) {
    throw new DataError(pattern, 'wildcards are supported in the file name only, not in folder names');
  }
  if (!/[*?]/.test(name)) return [pattern];
  const re = new RegExp(
    `^${name
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    throw new DataError(pattern, `folder not found: ${dir}`);
  }
  const matches = entries.filter((e) => re.test(e)).map((e) => join(dir, e));
  if (matches.length === 0) throw new DataError(pattern, 'no files match this pattern');
  return matches;
}

const DATA_SOURCES = ['brown', 'text', 'jsonl', 'shards'] as const;

/** The `data` section of a config. */
/** One file (a string) or a list of files: `"train": "a.txt"` means `["a.txt"]`. */
const fileList = z.union([
  z
    .string()
    .min(1)
    .transform((f) => [f]),
  z.array(z.string().min(1)).min(1),
]);

export const DataConfigSchema = z
  .strictObject({
    source: z
      .enum(DATA_SOURCES)
      .default('brown')
      .describe(
        "Where tokens come from: 'brown' (the embedded Brown corpus), 'text' (.txt files, one document each), 'jsonl' (a `text` field per line), 'shards' (llm.c .bin shards).",
      ),
    train: fileList.optional().describe("Input files (text, jsonl) or shard paths/patterns (shards); required unless source is 'brown'."),
    val: fileList
      .optional()
      .describe(
        'Validation files; if absent, val is split from train by document, or by position when train is a single document (required for shards).',
      ),
    valFraction: z
      .number()
      .gt(0)
      .lt(1)
      .default(0.05)
      .describe('Expected fraction of documents held out for val when val is split from train.'),
    splitSeed: z
      .number()
      .int()
      .min(0)
      .max(0xffffffff)
      .default(0)
      .describe('Seed of the split by document (changing it gives a different split).'),
    seed: z
      .number()
      .int()
      .min(0)
      .max(0xffffffff)
      .optional()
      .describe(
        "Seed of the training data order (the batcher's shuffle); absent = the run's `seed`, so one seed moves init and data order together, and setting this one separates the two sources of variance.",
      ),
  })
  .superRefine((c, ctx) => {
    // Cross-field rules live in the schema so the config system reports them when it validates the config.
    if (c.source === 'brown') {
      for (const key of ['train', 'val'] as const) {
        if (c[key] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: "not used with source 'brown' (the embedded corpus); remove it or set source to 'text', 'jsonl' or 'shards'",
          });
        }
      }
    } else {
      if (c.train === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['train'],
          message: `required when source is '${c.source}': a list of input files`,
        });
      }
      if (c.source === 'shards' && c.val === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['val'],
          message: "required when source is 'shards' (shards hold no document boundaries to split by), " + 'e.g. ["out/data_val_*.bin"]',
        });
      }
    }
  });

export type DataSpecInput = z.input<typeof DataConfigSchema>;
export type DataSpec = z.output<typeof DataConfigSchema>;

/** Options of loadDataset / openDataset. */
export interface DatasetOptions {
  /** The model's vocabSize: shard ids must be below it, and it must hold an explicitly given tokenizer's ids. */
  vocabSize?: number;
  /**
   * The run's tokenizer. Brown, text and jsonl documents are tokenized with it (default: bytes); shards
   * must have been made with it (or record none; see TokenDataset.fromShards). Without it, shards are
   * read as they are, checked against vocabSize only.
   */
  tokenizer?: Tokenizer;
}

/**
 * Validates the `data` config section and loads the train and val streams. Without `val`, the train
 * documents are split by document (valFraction, splitSeed). For shards, `vocabSize` (e.g. the model's)
 * checks every token id, and `tokenizer` refuses shards made with another tokenizer.
 *
 * @example
 *   const { train, val } = loadDataset({});                                   // Brown, 5% val
 *   loadDataset({ source: 'jsonl', train: ['a.jsonl'], valFraction: 0.1 });
 *   loadDataset({ source: 'shards', train: ['out/data_train_*.bin'], val: ['out/data_val_*.bin'] });
 *   loadDataset({ source: 'text', train: ['a.txt'] }, { tokenizer: loadTokenizer('gpt2'), vocabSize: 50304 });
 */
export function loadDataset(spec: DataSpecInput | DataSpec = {}, opts: DatasetOptions = {}): { train: TokenDataset; val: TokenDataset } {
  return openDataset(parseConfig(DataConfigSchema, spec, 'data'), opts);
}

/** loadDataset for an already validated `data` section (the run config's): nothing is parsed again. */
export function openDataset(c: DataSpec, opts: DatasetOptions = {}): { train: TokenDataset; val: TokenDataset } {
  if (opts.tokenizer && opts.vocabSize !== undefined && opts.vocabSize < opts.tokenizer.vocabSize) {
    throw new ConfigError(
      'model.vocabSize',
      `expected at least ${opts.tokenizer.vocabSize} (the ids of tokenizer ${describeTokenizer(opts.tokenizer)}), found ${opts.vocabSize}`,
    );
  }
  const tokenizer = opts.tokenizer ?? byteTokenizer;
  const split = { valFraction: c.valFraction, seed: c.splitSeed };
  // After validation, train is present for every source but brown.
  const trainFiles = c.train ?? [];
  switch (c.source) {
    case 'brown':
      return TokenDataset.brown({ ...split, tokenizer });
    case 'shards':
      return {
        train: TokenDataset.fromShards('shards/train', trainFiles, opts),
        val: TokenDataset.fromShards('shards/val', c.val ?? [], opts),
      };
    case 'text':
    case 'jsonl': {
      // readDocuments picks the reader by extension; the source says which one the user meant, so a
      // file of the other kind is reported instead of silently read another way.
      const ext = c.source === 'text' ? '.txt' : '.jsonl';
      for (const f of [...trainFiles, ...(c.val ?? [])]) {
        if (!f.toLowerCase().endsWith(ext)) {
          throw new DataError(f, `source is '${c.source}', so expected a ${ext} file`);
        }
      }
      const trainDocs = readDocuments(trainFiles);
      const name = (s: string) => `${c.source}/${s}`;
      if (c.val !== undefined) {
        return {
          train: TokenDataset.fromDocuments(name('train'), trainDocs, tokenizer),
          val: TokenDataset.fromDocuments(name('val'), readDocuments(c.val), tokenizer),
        };
      }
      const { train, val } =
        trainDocs.length === 1
          ? splitOneDocument(trainDocs[0]!, split.valFraction)
          : splitDocuments(trainDocs, { ...split, source: trainFiles.join(', ') });
      return {
        train: TokenDataset.fromDocuments(name('train'), train, tokenizer),
        val: TokenDataset.fromDocuments(name('val'), val, tokenizer),
      };
    }
  }
}
