/**
 * The tokenizer registry. A tokenizer is chosen by a spec string:
 * - 'bytes' (the default): osp-lab's byte tokenizer, 256 byte ids + BOS 256 + EOS 257 (bytes.ts);
 * - 'gpt2': GPT-2's BPE, 50257 ids, <|endoftext|> = 50256 both BOS and EOS (gpt2.ts);
 * - anything else: the path of a Hugging Face tokenizer.json (or of a folder holding one), with BOS/EOS
 *   from a tokenizer_config.json next to it or the file's own special tokens (hf.ts).
 * Every tokenizer but 'bytes' runs on @huggingface/tokenizers; all ids must be below 65536 (uint16 shards).
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, DataError } from '../../errors.ts';
import { byteTokenizer } from './bytes.ts';
import { loadGpt2 } from './gpt2.ts';
import { loadTokenizerFile } from './hf.ts';
import type { Tokenizer } from './tokenizer.ts';

export * from './tokenizer.ts';
export { tokenizeDocuments } from './documents.ts';
export {
  BYTES_BOS_TOKEN,
  BYTES_EOS_TOKEN,
  BYTES_FINGERPRINT,
  ByteTokenizer,
  byteTokenizer,
  bytesToUnicode,
  bytesTokenizerJson,
  byteVocab,
} from './bytes.ts';
export { GPT2_EOT, GPT2_EOT_TOKEN, GPT2_VOCAB_SIZE, gpt2FilesDir, gpt2TokenizerJson, loadGpt2 } from './gpt2.ts';
export { BOS_CANDIDATES, EOS_CANDIDATES, HfTokenizer, findSpecials, ggufPre, loadTokenizerFile, type HfTokenizerOptions } from './hf.ts';
export { canonicalJson, parseMerges, tokenizerFingerprint, tokenizerIdentity, type TokenizerJson } from './fingerprint.ts';

/** The built-in tokenizers by name. */
const BUILTIN: Record<string, () => Tokenizer> = {
  bytes: () => byteTokenizer,
  gpt2: loadGpt2,
};

// A tokenizer.json takes up to a second to build (GPT-2-sized); a sweep validates every trial's config.
// Files are cached by path, size and modification time, so an edited file is read again.
const files = new Map<string, { key: string; tokenizer: Tokenizer }>();

function cachedFile(spec: string): Tokenizer {
  let key: string | undefined;
  try {
    const path = statSync(spec).isDirectory() ? join(spec, 'tokenizer.json') : spec;
    const st = statSync(path);
    const config = join(dirname(path), 'tokenizer_config.json');
    const cst = existsSync(config) ? statSync(config) : undefined;
    key = `${resolve(path)}|${st.size}|${st.mtimeMs}|${cst ? `${cst.size}|${cst.mtimeMs}` : ''}`;
  } catch {
    return loadTokenizerFile(spec); // a missing file: its own error
  }
  const hit = files.get(resolve(spec));
  if (hit?.key === key) return hit.tokenizer;
  const tokenizer = loadTokenizerFile(spec);
  files.set(resolve(spec), { key, tokenizer });
  return tokenizer;
}

/** Names of the built-in tokenizers ('bytes', 'gpt2'); any other spec is a tokenizer.json path. */
export const TOKENIZER_NAMES = Object.keys(BUILTIN);

// Built-ins are immutable and GPT-2 takes ~0.5 s to build: one instance per process. Files are read
// again on every call (the file may have changed).
const builtins = new Map<string, Tokenizer>();

/**
 * The tokenizer a spec names: 'bytes' (default), 'gpt2', or the path of a tokenizer.json file or of a
 * folder with one. An unknown name is a ConfigError listing the valid ones; a bad file a DataError
 * naming it.
 *
 * @example
 *   loadTokenizer().vocabSize;                                 // 258
 *   loadTokenizer('gpt2').encode('Hello world');               // Uint16Array [15496, 995]
 *   loadTokenizer('tokenizers/my-bpe/tokenizer.json').spec;   // the file's absolute path
 */
export function loadTokenizer(spec = 'bytes'): Tokenizer {
  const make = Object.hasOwn(BUILTIN, spec) ? BUILTIN[spec] : undefined;
  if (make) {
    let t = builtins.get(spec);
    if (!t) builtins.set(spec, (t = make()));
    return t;
  }
  if (spec.trim() === '')
    throw new ConfigError(
      'tokenizer',
      `expected ${TOKENIZER_NAMES.map((n) => `'${n}'`).join(', ')} or a tokenizer.json path, found an empty string`,
    );
  const looksLikePath = /[/\\]/.test(spec) || spec.toLowerCase().endsWith('.json');
  try {
    return cachedFile(spec);
  } catch (e) {
    // A bare word that is no file was most likely meant as a built-in name.
    if (!looksLikePath && e instanceof DataError && /file not found/.test(e.message)) {
      throw new ConfigError(
        'tokenizer',
        `unknown tokenizer ${JSON.stringify(spec)}: expected ${TOKENIZER_NAMES.map((n) => `'${n}'`).join(', ')} or the path of a Hugging Face tokenizer.json (no such file)`,
      );
    }
    throw e;
  }
}
