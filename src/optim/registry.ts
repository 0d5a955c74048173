/**
 * The optimizer registry: a name to an OptimizerModule (optimizer.ts), i.e. its config section
 * `optimizer.<name>` and its constructor. Routing rules name these keys; the config schema, the routed
 * optimizer, the logged metrics (`train/lr/<name>`, `update/<name>_rms`) and checkpoints follow from the
 * entry. Adding an optimizer = one file and one entry here.
 */
import { ADAMW } from './adamw.ts';
import { LION } from './lion.ts';
import { MUON } from './muon.ts';
import type { OptimizerModule } from './optimizer.ts';

export const OPTIMIZERS = {
  adamw: ADAMW,
  muon: MUON,
  lion: LION,
} satisfies Record<string, OptimizerModule>;

export type OptimizerName = keyof typeof OPTIMIZERS;
export const OPTIMIZER_NAMES = Object.keys(OPTIMIZERS) as [OptimizerName, ...OptimizerName[]];
