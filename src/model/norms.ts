/**
 * The norm registry (config `model.norm`): a name to a NormModule (norms/module.ts), which provides its
 * parameters, its forward pass and its fold into a plain Llama. The choice applies to every norm in the
 * model (pre-attention, pre-FFN, final). Adding a norm = one file under norms/ and one entry here; the
 * config's choices, the forward pass, export and quantization follow from the entry.
 */
import { LAYER_NORMS } from './norms/layernorm.ts';
import type { NormModule } from './norms/module.ts';
import { RMSNORM, SSNORM } from './norms/rmsnorm.ts';

export type { NormModule } from './norms/module.ts';
export { normPrefixes } from './norms/module.ts';

export const NORMS = {
  rmsnorm: RMSNORM,
  ssnorm: SSNORM,
  ...LAYER_NORMS,
} satisfies Record<string, NormModule>;

export type NormName = keyof typeof NORMS;
