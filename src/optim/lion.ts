/**
 * Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the update is the sign of an
 * interpolation between the momentum and the gradient, so every coordinate moves by exactly lr.
 *
 *   c = b1 m + (1 - b1) g;   p <- p (1 - lr wd) - lr sign(c);   m <- b2 m + (1 - b2) g
 *
 * Weight decay is decoupled and scaled by lr (as AdamW's), applied before the signed step. Because the
 * update has RMS 1 (against AdamW's ~0.2), the paper uses an lr 3-10x smaller than AdamW's and a weight
 * decay 3-10x larger. State per parameter: the momentum m ('lion/<param>/exp_avg').
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
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

export const LionConfigSchema = z.strictObject({
  lr: z.number().positive().default(1e-4).describe("Base learning rate; typically 3-10x below AdamW's (every coordinate moves by lr)."),
  betas: z
    .tuple([BetaSchema, BetaSchema])
    .default([0.9, 0.99])
    .describe("(beta1, beta2): beta1 interpolates the update direction, beta2 is the momentum's decay."),
  weightDecay: z.number().min(0).default(0).describe('Decoupled weight decay, scaled by lr: p <- p * (1 - lr * weightDecay).'),
  noDecay: z
    .array(z.string().min(1))
    .default(['*norm*'])
    .describe('Parameter-name patterns exempt from weight decay (globs or /regex/); norm parameters by default.'),
});
export type LionConfig = z.infer<typeof LionConfigSchema>;

/**
 * Lion over a fixed set of parameters.
 * @example
 *   const opt = Lion.from({ lr: 3e-4, weightDecay: 0.1 }, params);
 *   opt.step(params, grads, schedule(step));
 */
export class Lion implements GroupOptimizer {
  readonly name = 'lion';
  private readonly shapes = new Map<string, readonly number[]>();
  private readonly momenta = new Map<string, tf.Variable>();
  private readonly decay = new Set<string>();

  /** Validates `input` (field prefix `optimizer.lion`; missing fields take their defaults) and builds the optimizer. */
  static from(input: unknown, params: ReadonlyMap<string, tf.Variable>): Lion {
    return new Lion(parseConfig(LionConfigSchema, input, 'optimizer.lion'), params);
  }

  /** @param config a validated config (the run config's section, or `Lion.from` for raw input) */
  constructor(
    readonly config: LionConfig,
    params: ReadonlyMap<string, tf.Variable>,
  ) {
    const decays = decayFilter(this.config.noDecay);
    for (const [name, p] of params) {
      this.shapes.set(name, p.shape);
      this.momenta.set(name, zeroState(p));
      if (decays(name)) this.decay.add(name);
    }
  }

  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lrFactor: number): void {
    const {
      betas: [b1, b2],
      weightDecay,
    } = this.config;
    checkLrFactor(this.name, lrFactor);
    const lr = this.config.lr * lrFactor;
    for (const [name, p, g] of pairGrads(this.name, this.shapes, params, grads)) {
      const m = this.momenta.get(name)!;
      tf.tidy(() => {
        const direction = tf.sign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        const decayed = this.decay.has(name) ? tf.mul(p, 1 - lr * weightDecay) : p;
        p.assign(tf.sub(decayed, tf.mul(direction, lr)));
        m.assign(tf.add(tf.mul(m, b2), tf.mul(g, 1 - b2)));
      });
    }
  }

  /** Expected state names and shapes: one momentum per parameter. */
  stateShapes(): Map<string, readonly number[]> {
    return new Map([...this.shapes].map(([name, shape]) => [`lion/${name}/exp_avg`, shape]));
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map([...this.momenta].map(([name, m]) => [`lion/${name}/exp_avg`, tf.clone(m)]));
  }

  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void {
    checkStateDict(this.name, this.stateShapes(), state);
    for (const [name, m] of this.momenta) assignState(m, state.get(`lion/${name}/exp_avg`)!);
  }

  dispose(): void {
    for (const m of this.momenta.values()) m.dispose();
    this.momenta.clear();
  }
}

/** The registry entry of Lion (registry.ts). */
export const LION: OptimizerModule<typeof LionConfigSchema> = {
  doc: 'Lion: the sign of interpolated momentum and gradient; lr 3-10x below AdamW, weight decay 3-10x above.',
  label: 'Lion',
  schema: LionConfigSchema,
  matricesOnly: false,
  create: (config, params) => new Lion(config, params),
};
