/**
 * Muon (see shared/reference/muon.md): momentum SGD whose update direction is orthogonalised by
 * Newton-Schulz, for 2-D hidden matrices only. Parameters use PyTorch's [out, in] layout, so
 * rows = shape[0] = fan_out, cols = shape[1] = fan_in.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
import { ShapeError } from '../errors.ts';
import { newtonSchulz, NS_COEFFICIENT_KINDS } from '../ops/newton_schulz.ts';
import {
  assignState,
  checkLrFactor,
  checkStateDict,
  pairGrads,
  shapeText,
  type GroupOptimizer,
  zeroState,
  type OptimizerModule,
} from './optimizer.ts';

export const MUON_SCALES = ['moonlight', 'keller'] as const;
export type MuonScale = (typeof MUON_SCALES)[number];

export const MuonConfigSchema = z.strictObject({
  lr: z
    .number()
    .positive()
    .default(1e-3)
    .describe("Base learning rate. Typical: 1e-3..5e-4 with 'moonlight' (OSP: 5e-4), ~0.02 with 'keller'."),
  momentum: z.number().min(0).lt(1).default(0.95).describe('Momentum coefficient mu of the buffer M <- mu M + g.'),
  nesterov: z.boolean().default(true).describe('Nesterov look-ahead u = g + mu*M (true) or plain momentum u = M (false).'),
  nsSteps: z.number().int().min(1).max(100).default(5).describe('Newton-Schulz iterations orthogonalising the update.'),
  nsCoefficients: z
    .enum(NS_COEFFICIENT_KINDS)
    .default('quintic')
    .describe(
      "Newton-Schulz polynomial: 'quintic' (3.4445, -4.7750, 2.0315), 'polar_express' (per-step coefficients), 'convergent' (2, -1.5, 0.5).",
    ),
  scale: z
    .enum(MUON_SCALES)
    .default('moonlight')
    .describe(
      "'moonlight' (OSP): update RMS matched to AdamW's, so AdamW's lr and wd carry over; 'keller': Keller Jordan's original sqrt(max(1, rows/cols)) scale.",
    ),
  weightDecay: z.number().min(0).default(0.01).describe('Decoupled weight decay, multiplied by lr in both scale modes.'),
});
export type MuonConfig = z.infer<typeof MuonConfigSchema>;

/**
 * Muon over a fixed set of 2-D parameters.
 * @example
 *   const opt = Muon.from({ lr: 5e-4, weightDecay: 0.01 }, hiddenMatrices);
 *   opt.step(hiddenMatrices, grads, schedule(step));
 */
export class Muon implements GroupOptimizer {
  readonly name = 'muon';
  private readonly shapes = new Map<string, readonly number[]>();
  private readonly momenta = new Map<string, tf.Variable>();

  /** Validates `input` (field prefix `optimizer.muon`; missing fields take their defaults) and builds the optimizer. */
  static from(input: unknown, params: ReadonlyMap<string, tf.Variable>): Muon {
    return new Muon(parseConfig(MuonConfigSchema, input, 'optimizer.muon'), params);
  }

  /** @param config a validated config (the run config's section, or `Muon.from` for raw input) */
  constructor(
    readonly config: MuonConfig,
    params: ReadonlyMap<string, tf.Variable>,
  ) {
    for (const [name, p] of params) {
      if (p.rank !== 2) {
        throw new ShapeError(
          `muon: parameter '${name}' has shape ${shapeText(p.shape)}; Muon only updates 2-D matrices ` +
            `(route it to adamw, or reshape it to 2-D)`,
        );
      }
      this.shapes.set(name, p.shape);
      this.momenta.set(name, zeroState(p));
    }
  }

  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lrFactor: number): void {
    const { momentum: mu, nesterov, nsSteps, nsCoefficients, scale, weightDecay: wd } = this.config;
    checkLrFactor(this.name, lrFactor);
    const lr = this.config.lr * lrFactor;
    for (const [name, p, g] of pairGrads(this.name, this.shapes, params, grads)) {
      const buf = this.momenta.get(name)!;
      const [rows, cols] = p.shape as [number, number];
      tf.tidy(() => {
        const m = buf.mul(mu).add(g);
        buf.assign(m);
        const u = (nesterov ? g.add(m.mul(mu)) : m) as tf.Tensor2D;
        const o = newtonSchulz(u, { steps: nsSteps, coefficients: nsCoefficients });
        if (scale === 'moonlight') {
          // 0.2*sqrt(max dim) gives the update an RMS of ~0.2, like AdamW's, so its lr/wd transfer.
          const k = 0.2 * Math.sqrt(Math.max(rows, cols));
          p.assign(p.sub(o.mul(k).add(p.mul(wd)).mul(lr)));
        } else {
          const k = Math.sqrt(Math.max(1, rows / cols));
          p.assign(p.mul(1 - lr * wd).sub(o.mul(lr * k)));
        }
      });
    }
  }

  /** Expected state names and shapes: one momentum buffer per parameter. */
  stateShapes(): Map<string, readonly number[]> {
    return new Map([...this.shapes].map(([name, shape]) => [`muon/${name}/momentum`, shape]));
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map([...this.momenta].map(([name, m]) => [`muon/${name}/momentum`, tf.clone(m)]));
  }

  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void {
    checkStateDict(this.name, this.stateShapes(), state);
    for (const [name, m] of this.momenta) assignState(m, state.get(`muon/${name}/momentum`)!);
  }

  dispose(): void {
    for (const m of this.momenta.values()) m.dispose();
    this.momenta.clear();
  }
}

/** The registry entry of Muon (registry.ts). */
export const MUON: OptimizerModule<typeof MuonConfigSchema> = {
  doc: 'Muon: momentum orthogonalised by Newton-Schulz, for 2-D matrices only.',
  label: 'Muon',
  schema: MuonConfigSchema,
  matricesOnly: true,
  create: (config, params) => new Muon(config, params),
};
