/**
 * Norm modules, chosen by name (config `model.norm`); the choice applies to every norm in the model
 * (pre-attention, pre-FFN, final). Both compute y = w * x / sqrt(mean(x^2) + eps) with the fused
 * rmsNorm op; they differ only in the shape of w. Adding a norm = one entry here.
 */
import type { ParamSpec } from './init.ts';

export interface NormModule {
  /** The learnable scale of a norm named `name` over width d. */
  scale(name: string, d: number): ParamSpec;
  doc: string;
}

export const NORMS = {
  rmsnorm: {
    scale: (name, d) => ({ name, shape: [d], init: { kind: 'ones' } }),
    doc: 'RMSNorm with a per-channel scale vector (Llama).',
  },
  ssnorm: {
    // OSP: one scalar per norm. Per-channel gains let single channels grow into outlier features;
    // a shared scalar cannot single out a channel. At export it becomes a vector filled with g.
    scale: (name) => ({ name, shape: [1], init: { kind: 'ones' } }),
    doc: 'Single-Scale RMSNorm (OSP): one learnable scalar, init 1.0.',
  },
} satisfies Record<string, NormModule>;

export type NormName = keyof typeof NORMS;
