/**
 * Sends each parameter to Muon or AdamW and drives both as one Optimizer. OSP trains hidden
 * matrices and the EmbProj matrices with Muon, everything else with AdamW (shared/reference/osp.md).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseConfig } from '../config/parse.ts';
import { ConfigError, OspError } from '../errors.ts';
import { AdamW, AdamWConfigSchema } from './adamw.ts';
import { Muon, MuonConfigSchema } from './muon.ts';
import { checkStateDict, compilePattern, shapeText, type Optimizer } from './optimizer.ts';

export const OPTIMIZER_NAMES = ['muon', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

export const RoutingRuleSchema = z.strictObject({
  /** Glob over the parameter name ('*' spans dots, '?' one character) or a /regex/. */
  match: z.string().min(1),
  optimizer: z.enum(OPTIMIZER_NAMES),
});
export type RoutingRule = z.infer<typeof RoutingRuleSchema>;

export const OptimizerConfigSchema = z.strictObject({
  adamw: AdamWConfigSchema.prefault({}),
  muon: MuonConfigSchema.prefault({}),
  /** Checked in order before the default rule; the first matching rule decides. */
  routing: z.array(RoutingRuleSchema).default([]),
});
export type OptimizerConfig = z.infer<typeof OptimizerConfigSchema>;

/** The EmbProj matrices of OSP: square, orthogonally initialised, trained by Muon. */
const EMBPROJ_NAMES = new Set(['model.embed_proj.weight', 'model.head_proj.weight']);

/**
 * The default rule, applied after user rules: 2-D parameters under 'model.layers.' (attention
 * q/k/v/o, MLP gate/up/down) and the EmbProj matrices 'model.embed_proj.weight' and
 * 'model.head_proj.weight' go to Muon; everything else (model.embed_tokens.weight, lm_head.weight,
 * every norm weight, biases, scalars) goes to AdamW. Embedding and head stay on AdamW because Muon
 * there hurts loss (muon.md, "Known pitfalls").
 * @example defaultRoute('model.layers.0.self_attn.q_proj.weight', [64, 64]) // 'muon'
 */
export function defaultRoute(name: string, shape: readonly number[]): OptimizerName {
  // The norm check only matters for a 2-D norm weight, which should never be orthogonalised.
  if (shape.length !== 2 || name.includes('norm')) return 'adamw';
  return name.startsWith('model.layers.') || EMBPROJ_NAMES.has(name) ? 'muon' : 'adamw';
}

/**
 * Decides the optimizer of every parameter: user rules first (first match wins), then defaultRoute.
 * Throws a ConfigError for a rule that matches nothing (usually a typo) or that sends a non-2-D
 * parameter to Muon.
 */
export function assignOptimizers(
  rules: readonly RoutingRule[],
  shapes: ReadonlyMap<string, readonly number[]>,
): Map<string, OptimizerName> {
  const compiled = rules.map((rule, i) => {
    try {
      return compilePattern(rule.match);
    } catch (e) {
      throw new ConfigError(`optimizer.routing.${i}.match`, `invalid pattern '${rule.match}': ${(e as Error).message}`);
    }
  });
  const assignment = new Map<string, OptimizerName>();
  for (const [name, shape] of shapes) {
    const i = compiled.findIndex((matches) => matches(name));
    if (i < 0) {
      assignment.set(name, defaultRoute(name, shape));
      continue;
    }
    if (rules[i]!.optimizer === 'muon' && shape.length !== 2) {
      throw new ConfigError(
        `optimizer.routing.${i}`,
        `'${rules[i]!.match}' sends '${name}' (shape ${shapeText(shape)}) to muon, which only updates 2-D ` +
          `matrices; narrow the pattern or add an earlier rule sending it to adamw`,
      );
    }
    assignment.set(name, rules[i]!.optimizer);
  }
  const unused = compiled.findIndex((matches) => ![...shapes.keys()].some(matches));
  if (unused >= 0) {
    const examples = [...shapes.keys()].slice(0, 4).map((n) => `'${n}'`).join(', ');
    throw new ConfigError(
      `optimizer.routing.${unused}.match`,
      `'${rules[unused]!.match}' matches no parameter; names look like ${examples}`,
    );
  }
  return assignment;
}

/** Muon and AdamW over their parameter subsets, driven as one Optimizer. */
export class RoutedOptimizer implements Optimizer {
  readonly name = 'routed';

  constructor(
    readonly config: OptimizerConfig,
    readonly assignment: ReadonlyMap<string, OptimizerName>,
    readonly adamw: AdamW,
    readonly muon: Muon,
  ) {}

  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lrFactor: number): void {
    const split = { adamw: new Map<string, tf.Tensor>(), muon: new Map<string, tf.Tensor>() };
    for (const [name, g] of grads) {
      const which = this.assignment.get(name);
      if (!which) throw new OspError(`optimizer: got a gradient for unknown parameter '${name}'`);
      split[which].set(name, g);
    }
    this.adamw.step(params, split.adamw, lrFactor);
    this.muon.step(params, split.muon, lrFactor);
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map([...this.adamw.stateDict(), ...this.muon.stateDict()]);
  }

  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void {
    // The two halves are told apart by their key prefix; check both before loading either.
    const expected = new Map([...this.adamw.stateShapes(), ...this.muon.stateShapes()]);
    checkStateDict(this.name, expected, state);
    const part = (prefix: string) => new Map([...state].filter(([k]) => k.startsWith(prefix)));
    this.adamw.loadStateDict(part('adamw/'));
    this.muon.loadStateDict(part('muon/'));
  }

  dispose(): void {
    this.adamw.dispose();
    this.muon.dispose();
  }
}

/**
 * Validates the `optimizer` config section and builds the routed Muon + AdamW optimizer.
 * @example
 *   const opt = createOptimizer({ muon: { lr: 5e-4 }, routing: [{ match: 'lm_head.weight', optimizer: 'muon' }] }, params);
 *   opt.assignment.get('model.layers.0.mlp.up_proj.weight'); // 'muon'
 */
export function createOptimizer(config: unknown, params: ReadonlyMap<string, tf.Variable>): RoutedOptimizer {
  const parsed = parseConfig(OptimizerConfigSchema, config, 'optimizer');
  const shapes = new Map([...params].map(([name, p]) => [name, p.shape] as const));
  const assignment = assignOptimizers(parsed.routing, shapes);
  const subset = (which: OptimizerName) => new Map([...params].filter(([name]) => assignment.get(name) === which));
  return new RoutedOptimizer(parsed, assignment, new AdamW(parsed.adamw, subset('adamw')), new Muon(parsed.muon, subset('muon')));
}
