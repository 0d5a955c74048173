/**
 * RMSNorm (Llama) and Single-Scale RMSNorm (OSP): y = w * x / sqrt(mean(x^2) + eps) through the fused
 * rmsNorm op; they differ only in the shape of w. Per-channel gains let single channels grow into outlier
 * features; SSNorm's one shared scalar cannot single out a channel. At export SSNorm's g becomes a
 * vector filled with g (exactly equivalent).
 */
import { rmsNorm } from '../../ops/rms_norm.ts';
import { weight } from '../weights.ts';
import type { NormModule } from './module.ts';

export const RMSNORM: NormModule = {
  doc: 'RMSNorm with a per-channel scale vector (Llama).',
  params: (prefix, d) => [{ name: `${prefix}.weight`, shape: [d], init: { kind: 'ones' } }],
  forward: (x, p, prefix, eps) => rmsNorm(x, p(`${prefix}.weight`), eps),
  fold: () => {},
};

export const SSNORM: NormModule = {
  doc: 'Single-Scale RMSNorm (OSP): one learnable scalar per norm, init 1.0.',
  params: (prefix) => [{ name: `${prefix}.weight`, shape: [1], init: { kind: 'ones' } }],
  forward: (x, p, prefix, eps) => rmsNorm(x, p(`${prefix}.weight`), eps),
  fold: (w, c, prefixes) => {
    for (const prefix of prefixes) {
      const g = weight(w, `${prefix}.weight`).data[0]!;
      w.set(`${prefix}.weight`, { shape: [c.hiddenSize], data: new Float32Array(c.hiddenSize).fill(g) });
    }
  },
};
