/**
 * Tokenizer fingerprints: CRC-32C of a canonical JSON of what decides the ids a text becomes (vocabulary,
 * merges, the model's options, added tokens, normalizer, pre-tokenizer, BOS and EOS). Canonical means:
 * object keys sorted at every level, merges as [left, right] pairs whichever way the file spells them,
 * BPE options with their defaults filled in, and fields that only shape offsets or decoding left out
 * (trim_offsets, decoder, post_processor). So the same tokenizer serialized twice, or by two tools, has
 * one fingerprint, and any change to the ids it produces gives another (up to CRC collisions: 1 in 2^32).
 */
import { crc32c } from '../../io/crc32c.ts';
import { DataError } from '../../errors.ts';

/** The parts of a Hugging Face tokenizer.json that osp-lab reads (the file has more). */
export interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  model: ModelJson;
  [key: string]: unknown;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

export interface ModelJson {
  type?: string;
  vocab?: unknown;
  merges?: unknown;
  unk_token?: string | null;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  byte_fallback?: boolean;
  ignore_merges?: boolean;
  fuse_unk?: boolean;
  dropout?: number | null;
  [key: string]: unknown;
}

/** JSON text with object keys sorted at every level (arrays keep their order) and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * A BPE model's merges as [left, right] pairs: tokenizer.json spells them "left right" (older files) or
 * ["left", "right"] (newer ones). Anything else is a DataError naming the file and the merge.
 */
export function parseMerges(merges: unknown, file: string): [string, string][] {
  if (merges === undefined) return [];
  if (!Array.isArray(merges)) throw new DataError(file, `model.merges: expected a list, found ${typeof merges}`);
  return merges.map((m, i) => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length === 2 && parts[0] !== '' && parts[1] !== '') return [parts[0]!, parts[1]!];
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      return [m[0], m[1]];
    }
    throw new DataError(file, `model.merges[${i}]: expected "left right" or ["left", "right"], found ${JSON.stringify(m)}`);
  });
}

/** Drops `trim_offsets` (it moves offsets, never ids) everywhere in a normalizer / pre-tokenizer tree. */
function withoutOffsets(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(withoutOffsets);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (k !== 'trim_offsets') out[k] = withoutOffsets(v);
  return out;
}

/** The model section in canonical form: BPE options with defaults filled in, merges as pairs. */
function canonicalModel(model: ModelJson, file: string): unknown {
  if (model.type !== 'BPE') {
    const { dropout: _dropout, ...rest } = model;
    return rest;
  }
  return {
    type: 'BPE',
    vocab: model.vocab,
    merges: parseMerges(model.merges, file),
    unk_token: model.unk_token ?? null,
    continuing_subword_prefix: model.continuing_subword_prefix || null,
    end_of_word_suffix: model.end_of_word_suffix || null,
    byte_fallback: model.byte_fallback ?? false,
    ignore_merges: model.ignore_merges ?? false,
    fuse_unk: model.fuse_unk ?? false,
  };
}

/**
 * What decides the ids: the canonical object whose JSON is fingerprinted. Special added tokens count by
 * id and text only (osp-lab never matches them inside text); other added tokens with the flags that
 * change how text is split around them.
 */
export function tokenizerIdentity(json: TokenizerJson, bos: number, eos: number, file: string): unknown {
  const added = [...(json.added_tokens ?? [])]
    .sort((a, b) => a.id - b.id)
    .map((t) =>
      t.special
        ? { id: t.id, content: t.content, special: true }
        : {
            id: t.id,
            content: t.content,
            special: false,
            single_word: t.single_word ?? false,
            lstrip: t.lstrip ?? false,
            rstrip: t.rstrip ?? false,
            normalized: t.normalized ?? true,
          },
    );
  return {
    format: 'osp-lab tokenizer fingerprint 1',
    normalizer: withoutOffsets(json.normalizer ?? null),
    pre_tokenizer: withoutOffsets(json.pre_tokenizer ?? null),
    model: canonicalModel(json.model, file),
    added_tokens: added,
    bos,
    eos,
  };
}

/** CRC-32C of the canonical identity of a tokenizer.json with its BOS and EOS ids; never 0. */
export function tokenizerFingerprint(json: TokenizerJson, bos: number, eos: number, file: string): number {
  const crc = crc32c(new TextEncoder().encode(canonicalJson(tokenizerIdentity(json, bos, eos, file))));
  return crc === 0 ? 1 : crc; // 0 means "no tokenizer recorded" in a shard header
}
