/**
 * Sends each parameter to one optimizer of the registry (registry.ts) and drives them as one Optimizer.
 * OSP trains hidden matrices and the EmbProj matrices with Muon, everything else with AdamW
 * (shared/reference/osp.md).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
import { ConfigError, OspError } from '../errors.ts';
import { checkStateDict, compilePattern, shapeText, type GroupOptimizer, type Optimizer } from './optimizer.ts';
import { OPTIMIZER_NAMES, OPTIMIZERS, type OptimizerName } from './registry.ts';

export { OPTIMIZER_NAMES, type OptimizerName } from './registry.ts';

export const RoutingRuleSchema = z
  .strictObject({
    match: z.string().min(1).describe("Glob over the parameter name ('*' spans dots, '?' one character) or a /regex/."),
    optimizer: z.enum(OPTIMIZER_NAMES).describe('The optimizer of the registry (optim/registry.ts) the matching parameters go to.'),
  })
  .describe('One rule: parameters whose name matches go to that optimizer.');
export type RoutingRule = z.infer<typeof RoutingRuleSchema>;

type GroupSchemas = { [K in OptimizerName]: z.ZodPrefault<(typeof OPTIMIZERS)[K]['schema']> };
const groupSchemas = Object.fromEntries(
  OPTIMIZER_NAMES.map((n) => [n, (OPTIMIZERS[n].schema as z.ZodObject).prefault({}).describe(OPTIMIZERS[n].doc)]),
) as GroupSchemas;

/** One section per registered optimizer (its settings), and the routing rules. */
export const OptimizerConfigSchema = z.strictObject({
  ...groupSchemas,
  routing: z.array(RoutingRuleSchema).default([]).describe('Checked in order before the default rule; the first matching rule decides.'),
});
export type OptimizerConfig = z.infer<typeof OptimizerConfigSchema>;

/** A routing rule a model module contributes (e.g. EmbProj's matrices to Muon); names are checked. */
export interface ModelRoute {
  match: string;
  optimizer: string;
}

/** What the routed optimizer is built for: the parameters and the model's own default rules. */
export interface RoutableModel {
  readonly params: ReadonlyMap<string, tf.Variable>;
  /** Applied after the user's rules and before defaultRoute (see Transformer.defaultRouting). */
  readonly defaultRouting?: readonly ModelRoute[];
}

/**
 * The generic default rule, applied after the user's rules and the model's: 2-D parameters under
 * 'model.layers.' (attention q/k/v/o, MLP gate/up/down) go to Muon; everything else
 * (model.embed_tokens.weight, lm_head.weight, every norm weight, biases, scalars) goes to AdamW.
 * Embedding and head stay on AdamW because Muon there hurts loss (muon.md, "Known pitfalls").
 * @example defaultRoute('model.layers.0.self_attn.q_proj.weight', [64, 64]) // 'muon'
 */
export function defaultRoute(name: string, shape: readonly number[]): OptimizerName {
  // The norm check only matters for a 2-D norm weight, which should never be orthogonalised.
  if (shape.length !== 2 || name.includes('norm')) return 'adamw';
  return name.startsWith('model.layers.') ? 'muon' : 'adamw';
}

/** The optimizers that take parameters of any shape, as text for messages: 'adamw'. */
function anyShapeOptimizers(): string {
  return OPTIMIZER_NAMES.filter((n) => !OPTIMIZERS[n].matricesOnly).join(' or ');
}

/**
 * Decides the optimizer of every parameter: the user's rules first (first match wins), then the model's
 * default rules (modelRules, e.g. EmbProj's matrices to Muon), then defaultRoute. Throws a ConfigError
 * for a user rule that matches nothing (usually a typo) or that sends a non-2-D parameter to an
 * optimizer of matrices only (Muon).
 */
export function assignOptimizers(
  rules: readonly RoutingRule[],
  shapes: ReadonlyMap<string, readonly number[]>,
  modelRules: readonly ModelRoute[] | undefined,
): Map<string, OptimizerName> {
  const compiled = rules.map((rule, i) => {
    try {
      return compilePattern(rule.match);
    } catch (e) {
      throw new ConfigError(`optimizer.routing.${i}.match`, `invalid pattern '${rule.match}': ${(e as Error).message}`);
    }
  });
  const fromModel = (modelRules ?? []).map((rule) => {
    if (!(OPTIMIZER_NAMES as readonly string[]).includes(rule.optimizer)) {
      throw new OspError(
        `model routing rule '${rule.match}' names optimizer '${rule.optimizer}', which is not registered (${OPTIMIZER_NAMES.join(', ')})`,
      );
    }
    return { matches: compilePattern(rule.match), optimizer: rule.optimizer as OptimizerName, match: rule.match };
  });
  const assignment = new Map<string, OptimizerName>();
  for (const [name, shape] of shapes) {
    const i = compiled.findIndex((matches) => matches(name));
    if (i < 0) {
      const m = fromModel.find((r) => r.matches(name));
      if (m && OPTIMIZERS[m.optimizer].matricesOnly && shape.length !== 2) {
        throw new OspError(
          `model routing rule '${m.match}' sends '${name}' (shape ${shapeText(shape)}) to ${m.optimizer}, which only updates 2-D matrices`,
        );
      }
      assignment.set(name, m?.optimizer ?? defaultRoute(name, shape));
      continue;
    }
    const chosen = rules[i]!.optimizer;
    if (OPTIMIZERS[chosen].matricesOnly && shape.length !== 2) {
      throw new ConfigError(
        `optimizer.routing.${i}`,
        `'${rules[i]!.match}' sends '${name}' (shape ${shapeText(shape)}) to ${chosen}, which only updates 2-D ` +
          `matrices; narrow the pattern or add an earlier rule sending it to ${anyShapeOptimizers()}`,
      );
    }
    assignment.set(name, chosen);
  }
  const unused = compiled.findIndex((matches) => ![...shapes.keys()].some(matches));
  if (unused >= 0) {
    const examples = [...shapes.keys()]
      .slice(0, 4)
      .map((n) => `'${n}'`)
      .join(', ');
    throw new ConfigError(
      `optimizer.routing.${unused}.match`,
      `'${rules[unused]!.match}' matches no parameter; names look like ${examples}`,
    );
  }
  return assignment;
}

/**
 * The registered optimizers that own parameters (groups), each over its subset, driven as one
 * Optimizer. Groups appear in registry order; an optimizer no parameter is routed to has no group.
 */
export class RoutedOptimizer implements Optimizer {
  readonly name = 'routed';

  constructor(
    readonly config: OptimizerConfig,
    readonly assignment: ReadonlyMap<string, OptimizerName>,
    readonly groups: ReadonlyMap<OptimizerName, GroupOptimizer>,
  ) {}

  /** The group of `name`; an error when no parameter is routed to it. */
  group(name: OptimizerName): GroupOptimizer {
    const g = this.groups.get(name);
    if (!g) throw new OspError(`optimizer: no parameter is routed to ${name} (groups: ${[...this.groups.keys()].join(', ')})`);
    return g;
  }

  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lrFactor: number): void {
    const split = new Map<OptimizerName, Map<string, tf.Tensor>>([...this.groups.keys()].map((n) => [n, new Map()]));
    for (const [name, g] of grads) {
      const which = this.assignment.get(name);
      if (!which) throw new OspError(`optimizer: got a gradient for unknown parameter '${name}'`);
      split.get(which)!.set(name, g);
    }
    for (const [name, group] of this.groups) group.step(params, split.get(name)!, lrFactor);
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map([...this.groups.values()].flatMap((g) => [...g.stateDict()]));
  }

  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void {
    // The groups are told apart by their key prefix; check all before loading any.
    const expected = new Map([...this.groups.values()].flatMap((g) => [...g.stateShapes()]));
    checkStateDict(this.name, expected, state);
    for (const [name, group] of this.groups) group.loadStateDict(new Map([...state].filter(([k]) => k.startsWith(`${name}/`))));
  }

  dispose(): void {
    for (const g of this.groups.values()) g.dispose();
  }
}

/**
 * Validates the `optimizer` config section and builds the routed optimizer for a model: its parameters
 * and its default rules (pass the Transformer itself, or `{ params }` for a bare parameter map).
 * @example
 *   const opt = createOptimizer({ muon: { lr: 5e-4 }, routing: [{ match: 'lm_head.weight', optimizer: 'muon' }] }, model);
 *   opt.assignment.get('model.layers.0.mlp.up_proj.weight'); // 'muon'
 */
export function createOptimizer(config: unknown, model: RoutableModel): RoutedOptimizer {
  return buildOptimizer(parseConfig(OptimizerConfigSchema, config, 'optimizer'), model);
}

/** createOptimizer for an already validated `optimizer` section (the run config's): nothing is parsed again. */
export function buildOptimizer(parsed: OptimizerConfig, model: RoutableModel): RoutedOptimizer {
  const params = model.params;
  const shapes = new Map([...params].map(([name, p]) => [name, p.shape] as const));
  const assignment = assignOptimizers(parsed.routing, shapes, model.defaultRouting);
  const groups = new Map<OptimizerName, GroupOptimizer>();
  for (const name of OPTIMIZER_NAMES) {
    const subset = new Map([...params].filter(([p]) => assignment.get(p) === name));
    if (subset.size > 0) groups.set(name, OPTIMIZERS[name].create(parsed[name] as never, subset));
  }
  return new RoutedOptimizer(parsed, assignment, groups);
}
