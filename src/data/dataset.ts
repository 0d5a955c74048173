/**
 * A dataset is one token stream with a name: documents tokenized BOS + bytes + EOS and concatenated, or
 * llm.c shards concatenated in name order. `loadDataset` turns the validated `data` section of a config
 * into the train and val streams the Batcher cuts into windows.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
import { DataError } from '../errors.ts';
import { loadBrown, splitDocuments, type Document } from './brown.ts';
import { readDocuments, readShard, splitOneDocument } from './sources.ts';
import { byteTokenizer, tokenizeDocuments, type Tokenizer } from './tokenizer.ts';

/** One token stream. `name` appears in error messages (e.g. 'brown/val'). */
export class TokenDataset {
  constructor(
    readonly name: string,
    readonly tokens: Uint16Array,
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
    );
  }

  /**
   * Concatenates llm.c shards. Each entry is a path or a pattern with `*` / `?` in its file name
   * (e.g. 'data/fineweb_train_*.bin'); all matches are read in sorted path order, each file once.
   * With `vocabSize`, every token id is checked to be below it.
   *
   * @example
   *   TokenDataset.fromShards('train', ['out/data_train_*.bin'], { vocabSize: 258 });
   */
  static fromShards(name: string, patterns: readonly string[], opts: { vocabSize?: number } = {}): TokenDataset {
    const files = [...new Set(patterns.flatMap(expandPattern))].sort();
    if (files.length === 0) throw new DataError(name, 'expected at least one shard file, found none');
    const shards = files.map((f) => readShard(f, opts));
    const tokens = new Uint16Array(shards.reduce((n, s) => n + s.length, 0));
    let at = 0;
    for (const s of shards) {
      tokens.set(s, at);
      at += s.length;
    }
    return new TokenDataset(name, tokens);
  }

  /** The Brown corpus split by document into train and val (see splitDocuments). */
  static brown(opts: { valFraction?: number; seed?: number } = {}): { train: TokenDataset; val: TokenDataset } {
    const { train, val } = splitDocuments(loadBrown(), { ...opts, source: 'brown' });
    return {
      train: TokenDataset.fromDocuments('brown/train', train),
      val: TokenDataset.fromDocuments('brown/val', val),
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

/**
 * Validates the `data` config section and loads the train and val streams. Without `val`, the train
 * documents are split by document (valFraction, splitSeed). For shards, `vocabSize` (e.g. the model's)
 * checks every token id.
 *
 * @example
 *   const { train, val } = loadDataset({});                                   // Brown, 5% val
 *   loadDataset({ source: 'jsonl', train: ['a.jsonl'], valFraction: 0.1 });
 *   loadDataset({ source: 'shards', train: ['out/data_train_*.bin'], val: ['out/data_val_*.bin'] });
 */
export function loadDataset(
  spec: DataSpecInput | DataSpec = {},
  opts: { vocabSize?: number } = {},
): { train: TokenDataset; val: TokenDataset } {
  return openDataset(parseConfig(DataConfigSchema, spec, 'data'), opts);
}

/** loadDataset for an already validated `data` section (the run config's): nothing is parsed again. */
export function openDataset(c: DataSpec, opts: { vocabSize?: number } = {}): { train: TokenDataset; val: TokenDataset } {
  const split = { valFraction: c.valFraction, seed: c.splitSeed };
  // After validation, train is present for every source but brown.
  const trainFiles = c.train ?? [];
  switch (c.source) {
    case 'brown':
      return TokenDataset.brown(split);
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
          train: TokenDataset.fromDocuments(name('train'), trainDocs),
          val: TokenDataset.fromDocuments(name('val'), readDocuments(c.val)),
        };
      }
      const { train, val } =
        trainDocs.length === 1
          ? splitOneDocument(trainDocs[0]!, split.valFraction)
          : splitDocuments(trainDocs, { ...split, source: trainFiles.join(', ') });
      return {
        train: TokenDataset.fromDocuments(name('train'), train),
        val: TokenDataset.fromDocuments(name('val'), val),
      };
    }
  }
}
