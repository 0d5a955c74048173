/**
 * The embedding registry (config `model.embedding`): a name to an EmbeddingModule (embeddings/module.ts),
 * which may add parameters and transform the residual stream right after the token embedding and right
 * before the LM head, and provides its fold into a plain Llama and its default optimizer routing.
 * Adding an embedding = one file under embeddings/ and one entry here.
 */
import { EMBPROJ } from './embeddings/embproj.ts';
import type { EmbeddingModule } from './embeddings/module.ts';

export type { DefaultRoute, EmbeddingModule } from './embeddings/module.ts';

const PLAIN: EmbeddingModule = {
  doc: 'Token embedding straight into block 0; final norm straight into the head.',
  params: () => [],
  afterEmbed: (x) => x,
  beforeHead: (x) => x,
  fold: () => {},
  defaultRouting: [],
};

export const EMBEDDINGS = {
  plain: PLAIN,
  embproj: EMBPROJ,
} satisfies Record<string, EmbeddingModule>;

export type EmbeddingName = keyof typeof EMBEDDINGS;
