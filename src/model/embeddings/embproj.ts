/**
 * OSP's learnable embedding projection: x0 = P1 E[t]; logits = W_head P2 norm(x_L). Orthogonal init makes
 * both identity-like in scale. No biases, so both fold exactly into a plain Llama at export:
 * E' = E P1^T (row t: P1 E[t]) and W' = W_head P2, products in float64 rounded once to float32. The
 * folded embedding and head differ, so a tied model comes out untied. Muon trains P1 and P2 by default.
 */
import { linear } from '../layers.ts';
import { matmul, matmulBT, weight } from '../weights.ts';
import type { EmbeddingModule } from './module.ts';

const IN = 'model.embed_proj.weight';
const OUT = 'model.head_proj.weight';

export const EMBPROJ: EmbeddingModule = {
  doc: 'OSP EmbProj: two d x d matrices (orthogonal init) after the embedding and before the head.',
  params: (d) => [
    { name: IN, shape: [d, d], init: { kind: 'orthogonal' } },
    { name: OUT, shape: [d, d], init: { kind: 'orthogonal' } },
  ],
  afterEmbed: (x, p) => linear(x, p(IN)),
  beforeHead: (x, p) => linear(x, p(OUT)),
  fold: (w, c) => {
    const d = c.hiddenSize;
    const V = c.vocabSize;
    const E = weight(w, 'model.embed_tokens.weight').data;
    const head = weight(w, 'lm_head.weight').data;
    w.set('model.embed_tokens.weight', { shape: [V, d], data: matmulBT(E, V, d, weight(w, IN).data, d) });
    w.set('lm_head.weight', { shape: [V, d], data: matmul(head, V, d, weight(w, OUT).data, d) });
    w.delete(IN);
    w.delete(OUT);
  },
  defaultRouting: [
    { match: IN, optimizer: 'muon' },
    { match: OUT, optimizer: 'muon' },
  ],
};
