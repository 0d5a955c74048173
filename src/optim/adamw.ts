/**
 * AdamW with PyTorch's semantics (torch.optim.AdamW, non-fused path): decoupled weight decay applied
 * to the parameter first, then the bias-corrected Adam step, with a step counter per parameter.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
import { OspError } from '../errors.ts';
import { adamwUpdateMulti, type AdamWSlotUpdate } from '../ops/adamw_update.ts';
import {
  assignState,
  checkLrFactor,
  checkStateDict,
  BetaSchema,
  decayFilter,
  pairGrads,
  type GroupOptimizer,
  zeroState,
  type OptimizerModule,
} from './optimizer.ts';

export const AdamWConfigSchema = z.strictObject({
  lr: z.number().positive().default(3e-4).describe("Base learning rate; the schedule's factor multiplies it."),
  betas: z
    .tuple([BetaSchema, BetaSchema])
    .default([0.9, 0.95])
    .describe('(beta1, beta2). 0.95 for beta2 is the usual LLM choice: faster to forget loss spikes than 0.999.'),
  eps: z.number().positive().default(1e-8).describe('Added to the root of the second moment (PyTorch: eps).'),
  weightDecay: z
    .number()
    .min(0)
    .default(0.1)
    .describe('Decoupled weight decay, scaled by lr as in PyTorch: p <- p * (1 - lr * weightDecay).'),
  noDecay: z
    .array(z.string().min(1))
    .default(['*norm*', '*layernorm*'])
    .describe(
      "Parameter-name patterns exempt from weight decay (globs, '*' spans dots, or /regex/). Norm scales are exempt by default: decaying them pulls the gain towards 0 for no regularising benefit.",
    ),
});
export type AdamWConfig = z.infer<typeof AdamWConfigSchema>;

interface AdamWSlot {
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
  step: number;
  decay: boolean;
}

/**
 * AdamW over a fixed set of parameters (state is created for all of them up front).
 * @example
 *   const opt = AdamW.from({ lr: 1e-3 }, params);
 *   opt.step(params, grads, schedule(step));
 */
export class AdamW implements GroupOptimizer {
  readonly name = 'adamw';
  private readonly shapes = new Map<string, readonly number[]>();
  private readonly slots = new Map<string, AdamWSlot>();

  /** Validates `input` (field prefix `optimizer.adamw`; missing fields take their defaults) and builds the optimizer. */
  static from(input: unknown, params: ReadonlyMap<string, tf.Variable>): AdamW {
    return new AdamW(parseConfig(AdamWConfigSchema, input, 'optimizer.adamw'), params);
  }

  /** @param config a validated config (the run config's section, or `AdamW.from` for raw input) */
  constructor(
    readonly config: AdamWConfig,
    params: ReadonlyMap<string, tf.Variable>,
  ) {
    const decays = decayFilter(this.config.noDecay);
    for (const [name, p] of params) {
      this.shapes.set(name, p.shape);
      this.slots.set(name, {
        expAvg: zeroState(p),
        expAvgSq: zeroState(p),
        step: 0,
        decay: decays(name),
      });
    }
  }

  /** True when weight decay applies to this parameter (it matches no `noDecay` pattern). */
  decays(name: string): boolean {
    return this.slots.get(name)?.decay ?? false;
  }

  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lrFactor: number): void {
    const {
      betas: [b1, b2],
      eps,
      weightDecay,
    } = this.config;
    checkLrFactor(this.name, lrFactor);
    const lr = this.config.lr * lrFactor;
    const slots: AdamWSlotUpdate[] = [];
    const stepped: AdamWSlot[] = [];
    for (const [name, p, g] of pairGrads(this.name, this.shapes, params, grads)) {
      const s = this.slots.get(name)!;
      stepped.push(s);
      const t = s.step + 1;
      // Bias corrections in float64 on the host; only the tensor math runs in float32.
      const bc1 = 1 - b1 ** t;
      const bc2Sqrt = Math.sqrt(1 - b2 ** t);
      const decay = s.decay ? 1 - lr * weightDecay : 1;
      slots.push({
        param: p,
        grad: g,
        expAvg: s.expAvg,
        expAvgSq: s.expAvgSq,
        attrs: { lr, beta1: b1, beta2: b2, eps, decay, bc1, bc2Sqrt },
      });
    }
    // All parameters at once: in place, a few per dispatch, where the backend has the multi-tensor kernel.
    adamwUpdateMulti(slots);
    // Counted once the update went through: a refused update leaves the optimizer as it was.
    for (const s of stepped) s.step += 1;
  }

  /** Expected state names and shapes: exp_avg and exp_avg_sq like the parameter, step a scalar. */
  stateShapes(): Map<string, readonly number[]> {
    const out = new Map<string, readonly number[]>();
    for (const [name, shape] of this.shapes) {
      out.set(`adamw/${name}/exp_avg`, shape);
      out.set(`adamw/${name}/exp_avg_sq`, shape);
      out.set(`adamw/${name}/step`, []);
    }
    return out;
  }

  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.slots) {
      out.set(`adamw/${name}/exp_avg`, tf.clone(s.expAvg));
      out.set(`adamw/${name}/exp_avg_sq`, tf.clone(s.expAvgSq));
      out.set(`adamw/${name}/step`, tf.scalar(s.step, 'int32'));
    }
    return out;
  }

  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void {
    checkStateDict(this.name, this.stateShapes(), state);
    // Read every step counter before assigning anything, so a bad checkpoint leaves state untouched.
    const steps = new Map<string, number>();
    for (const name of this.slots.keys()) {
      const key = `adamw/${name}/step`;
      const t = state.get(key)!.dataSync()[0]!;
      if (!Number.isInteger(t) || t < 0) throw new OspError(`adamw: state '${key}' must be a non-negative integer, got ${t}`);
      steps.set(name, t);
    }
    for (const [name, s] of this.slots) {
      assignState(s.expAvg, state.get(`adamw/${name}/exp_avg`)!);
      assignState(s.expAvgSq, state.get(`adamw/${name}/exp_avg_sq`)!);
      s.step = steps.get(name)!;
    }
  }

  dispose(): void {
    for (const s of this.slots.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.slots.clear();
  }
}

/** The registry entry of AdamW (registry.ts). */
export const ADAMW: OptimizerModule<typeof AdamWConfigSchema> = {
  doc: "AdamW with PyTorch's semantics (decoupled weight decay, bias-corrected moments).",
  label: 'AdamW',
  schema: AdamWConfigSchema,
  matricesOnly: false,
  create: (config, params) => new AdamW(config, params),
};
