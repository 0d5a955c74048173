/**
 * The byte-level vocabulary as the tokenizers of other tools spell it: re-exported from the byte
 * tokenizer (src/data/tokenizers/bytes.ts), which owns it, for the modules that import this path.
 * Exporters take the vocabulary from the run's tokenizer (Tokenizer.hfFiles, Tokenizer.ggufVocab).
 */
export { BYTES_BOS_TOKEN as BOS_TOKEN, BYTES_EOS_TOKEN as EOS_TOKEN, bytesToUnicode, byteVocab } from '../data/tokenizer.ts';
