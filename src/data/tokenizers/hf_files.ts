/**
 * The Hugging Face tokenizer files every osp-lab tokenizer exports (Tokenizer.hfFiles): tokenizer.json with
 * a post-processor that prepends BOS (training starts every document with it, so inference must too),
 * tokenizer_config.json for PreTrainedTokenizerFast, special_tokens_map.json. The byte tokenizer's are
 * byte-identical to what src/export/hf.ts wrote before tokenizers were pluggable.
 */
import type { HfFilesOptions } from './tokenizer.ts';

/** TemplateProcessing that prepends `bosToken` (id `bosId`) to every sequence (and to the first of a pair). */
export function bosTemplate(bosToken: string, bosId: number): Record<string, unknown> {
  return {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: bosToken, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: bosToken, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [bosToken]: { id: bosToken, ids: [bosId], tokens: [bosToken] } },
  };
}

/**
 * The three files, by name. `tokenizerJson` is written as compact JSON (tokenizer.json files are large);
 * the two small files are indented, each file ends with a newline.
 */
export function hfTokenizerFiles(
  tokenizerJson: Record<string, unknown>,
  bosToken: string,
  eosToken: string,
  opts: HfFilesOptions = {},
): Map<string, string> {
  const config: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: bosToken, eos_token: eosToken };
  if (opts.modelMaxLength !== undefined) config.model_max_length = opts.modelMaxLength;
  config.clean_up_tokenization_spaces = false;
  return new Map([
    ['tokenizer.json', JSON.stringify(tokenizerJson) + '\n'],
    ['tokenizer_config.json', JSON.stringify(config, null, 2) + '\n'],
    ['special_tokens_map.json', JSON.stringify({ bos_token: bosToken, eos_token: eosToken }, null, 2) + '\n'],
  ]);
}
