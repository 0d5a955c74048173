/**
 * The interface every optimizer shares, plus the small helpers they have in common: name patterns
 * (routing rules, weight-decay exemptions) and state-dict checks.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { OspError, ShapeError } from '../errors.ts';

export interface Optimizer {
  readonly name: string;
  /**
   * One update. A parameter absent from grads is not touched at all (no momentum drift, no weight
   * decay). lrFactor multiplies every group's base lr (from the schedule).
   */
  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lrFactor: number): void;
  /**
   * Named state tensors for checkpoints (copies the caller owns), e.g. 'adamw/<param>/exp_avg',
   * '.../exp_avg_sq', '.../step', 'muon/<param>/momentum'.
   */
  stateDict(): Map<string, tf.Tensor>;
  /**
   * Restores state from stateDict() output; validates names and shapes with clear errors. Does not
   * take ownership of the given tensors.
   */
  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void;
  dispose(): void;
}

/** One optimizer over a fixed set of parameters: a group of the routed optimizer (routing.ts). */
export interface GroupOptimizer extends Optimizer {
  /** Its validated config section; `lr` is the base learning rate the schedule's factor multiplies. */
  readonly config: { readonly lr: number };
  /** Expected state names (each prefixed '<name>/') and shapes, for checkpoint checks. */
  stateShapes(): Map<string, readonly number[]>;
}

/**
 * A registry entry (registry.ts): the optimizer's config section `optimizer.<name>` (every field with a
 * default) and how to build it over a set of parameters.
 */
export interface OptimizerModule<S extends z.ZodType = z.ZodType> {
  /** One line for the config reference and `--help`. */
  doc: string;
  /** Its name in plot titles and tables ('AdamW'). */
  label: string;
  schema: S;
  /** True when it can only update 2-D matrices (Muon): routing refuses to send anything else to it. */
  matricesOnly: boolean;
  create(config: z.output<S>, params: ReadonlyMap<string, tf.Variable>): GroupOptimizer;
}

/** One moment decay rate (beta1 or beta2 of AdamW and Lion): in [0, 1). */
export const BetaSchema = z.number().min(0).lt(1);

/**
 * Whether weight decay applies to a parameter: it matches none of the `noDecay` patterns.
 * @example decayFilter(['*norm*'])('model.norm.weight') // false
 */
export function decayFilter(noDecay: readonly string[]): (name: string) => boolean {
  const exempt = noDecay.map(compilePattern);
  return (name) => !exempt.some((m) => m(name));
}

/**
 * Compiles a parameter-name pattern. A glob matches the whole name: '*' any run of characters
 * (dots included, so '*norm*' reaches 'model.layers.3.input_layernorm.weight'), '?' one character.
 * A pattern written /.../ is a regular expression, unanchored, as written.
 * @example compilePattern('model.layers.*.mlp.*')('model.layers.0.mlp.up_proj.weight') // true
 */
export function compilePattern(pattern: string): (name: string) => boolean {
  if (pattern.length >= 2 && pattern.startsWith('/') && pattern.endsWith('/')) {
    const re = new RegExp(pattern.slice(1, -1));
    return (name) => re.test(name);
  }
  const body = [...pattern].map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  const re = new RegExp(`^${body}$`, 's');
  return (name) => re.test(name);
}

/** Shape as text for messages: [64, 128]. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Checks that every gradient belongs to a parameter this optimizer owns and has its shape, and
 * returns (variable, gradient) pairs. Parameters without a gradient are simply not listed.
 */
export function pairGrads(
  optimizer: string,
  owned: ReadonlyMap<string, readonly number[]>,
  params: ReadonlyMap<string, tf.Variable>,
  grads: ReadonlyMap<string, tf.Tensor>,
): [name: string, param: tf.Variable, grad: tf.Tensor][] {
  const pairs: [string, tf.Variable, tf.Tensor][] = [];
  for (const [name, grad] of grads) {
    const shape = owned.get(name);
    if (!shape) throw new OspError(`${optimizer}: got a gradient for '${name}', which this optimizer does not own`);
    const param = params.get(name);
    if (!param) throw new OspError(`${optimizer}: gradient for '${name}' but no such entry in params`);
    if (!sameShape(grad.shape, shape) || !sameShape(param.shape, shape)) {
      throw new ShapeError(
        `${optimizer}: '${name}' expects shape ${shapeText(shape)}; ` +
          `got param ${shapeText(param.shape)}, gradient ${shapeText(grad.shape)}`,
      );
    }
    pairs.push([name, param, grad]);
  }
  return pairs;
}

/** Rejects a NaN, infinite or negative lr factor, which would silently corrupt every parameter. */
export function checkLrFactor(optimizer: string, lrFactor: number): void {
  if (!Number.isFinite(lrFactor) || lrFactor < 0) {
    throw new OspError(`${optimizer}: lrFactor must be a finite number >= 0, got ${lrFactor}`);
  }
}

/**
 * Checks a state dict against the expected names and shapes: no key missing, none unknown, every
 * shape equal. Throws one error listing what is wrong.
 */
export function checkStateDict(
  optimizer: string,
  expected: ReadonlyMap<string, readonly number[]>,
  state: ReadonlyMap<string, tf.Tensor>,
): void {
  const missing = [...expected.keys()].filter((k) => !state.has(k));
  const unknown = [...state.keys()].filter((k) => !expected.has(k));
  const list = (ks: string[]) => ks.slice(0, 5).join(', ') + (ks.length > 5 ? `, ... (${ks.length} in all)` : '');
  if (missing.length > 0 || unknown.length > 0) {
    const parts = [missing.length ? `missing: ${list(missing)}` : '', unknown.length ? `unknown: ${list(unknown)}` : ''];
    throw new OspError(`${optimizer}: state dict does not match the parameters; ${parts.filter(Boolean).join('; ')}`);
  }
  for (const [key, shape] of expected) {
    const t = state.get(key)!;
    if (!sameShape(t.shape, shape)) {
      throw new ShapeError(`${optimizer}: state '${key}' expects shape ${shapeText(shape)}, got ${shapeText(t.shape)}`);
    }
  }
}

/**
 * A non-trainable zero variable shaped like p: an optimizer's initial state. tf.variable shares the
 * initial tensor's buffer, so that tensor is released here (kept, it would hold the zeros alive after
 * the first step replaced the variable's data).
 */
export function zeroState(p: tf.Tensor): tf.Variable {
  const zeros = tf.zerosLike(p);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

/** Copies `value` into a state variable without taking ownership of `value`. */
export function assignState(variable: tf.Variable, value: tf.Tensor): void {
  // assign() shares the data buffer and bumps its refcount, so the caller may dispose `value` later.
  if (value.dtype === variable.dtype) variable.assign(value);
  else {
    const cast = tf.cast(value, variable.dtype);
    variable.assign(cast);
    cast.dispose();
  }
}
