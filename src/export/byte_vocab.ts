/**
 * The byte-level vocabulary as the tokenizers of other tools spell it. GPT-2's bytes_to_unicode maps
 * every byte to a printable character (printable Latin-1 bytes to themselves, the others to U+0100
 * onwards in byte order), so a BPE vocabulary without merges is exactly osp-lab's byte tokenizer:
 * token id = byte value, plus BOS (256) and EOS (257).
 */
export const BOS_TOKEN = '<s>';
export const EOS_TOKEN = '</s>';

/** GPT-2's byte -> unicode character table, index = byte. */
export function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : 256 + next++));
  return table;
}

/** Token strings by id: the 256 byte characters, then BOS and EOS. */
export function byteVocab(): string[] {
  return [...bytesToUnicode(), BOS_TOKEN, EOS_TOKEN];
}
