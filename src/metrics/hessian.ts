/**
 * Hessian-vector products of a tfjs loss, as a LinearOperator for lanczos.ts (reference/hessian.md).
 *
 * - exact: double backprop, H v = grad_theta(grad_theta(L) . v) with v held constant.
 * - fd:    central differences of the gradient, [g(theta + h v) - g(theta - h v)] / (2 h).
 * - auto:  exact if tfjs can differentiate the loss twice and the result agrees with fd on a random
 *          vector, else fd (the choice and the reason are recorded).
 *
 * tfjs 4.22's nested gradients have a trap that this file works around. When a kernel saves a tensor
 * for its backward pass it records an Identity ("clone") node on the tape, and for saved OUTPUTS
 * (Exp, Sigmoid, Tanh, Softmax, Pow, logSoftmax's custom gradient...) that node is pushed before
 * the node of the kernel that produced the output. The tape is then not in topological order, and
 * the outer gradient's single forward sweep (getFilteredNodesXToY) decides that the saved output does
 * not depend on the parameters: the second derivative through it is silently dropped (SiLU's comes
 * out wrong, exp(x)'s throws "Cannot find a connection"). exactHvp restores topological order before
 * the outer gradient runs; a custom-gradient op that saves a tensor which is neither an input nor an
 * output cannot be repaired and is refused (auto then uses fd).
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, OspError, ShapeError, checkChoice } from '../errors.ts';
import type { Transformer } from '../model/transformer.ts';
import { withReferenceOps } from '../ops/dispatch.ts';
import { Rng } from '../utils/rng.ts';
import type { LinearOperator } from './lanczos.ts';

type TapeNode = ReturnType<typeof tf.engine>['state']['activeTape'][number];

export type HvpMethod = 'exact' | 'fd';

export interface HessianOptions {
  /** Default 'auto'. */
  method?: 'exact' | 'fd' | 'auto';
  /**
   * Finite-difference step: theta is moved by eps along the unit direction v / ||v||, so the step
   * does not depend on the scale of v. 5e-3 balances float32 rounding of the gradients (~1e-7 / eps)
   * against the O(eps^2) truncation error. Default 5e-3.
   */
  eps?: number;
  /** Which parameters the Hessian is taken over (a layer, an optimizer group); default all. */
  select?: (name: string) => boolean;
  /** Seed of auto's probe vector. Default 0. */
  seed?: number;
}

export type HessianOperator = LinearOperator & {
  /** The method apply() uses. */
  method: HvpMethod;
  /** Selected parameter names, in the order their entries appear in the flattened vector. */
  names: string[];
  /** Number of entries of each selected parameter. */
  sizes: number[];
  /** auto only: why exact was not used. */
  fallbackReason?: string;
  /** auto only: ||Hv_exact - Hv_fd|| / ||Hv_fd|| on the probe vector, when exact ran to the end. */
  probeAgreement?: number;
};

/**
 * auto keeps exact only if it agrees with fd to this relative difference on its probe vector. Correct
 * exact HVPs agree with fd to 3e-5..1.4e-4 on small transformers on cpu, wasm and native (measured
 * 2026-12-01, 2 models x 6 seeds x 2 probes each); 1e-2 leaves room for trained and wider models while a
 * dropped second-derivative term worth a few percent is caught (a test plants one of 2%).
 */
const AUTO_TOLERANCE = 1e-2;

interface HvpContext {
  lossFn: () => tf.Scalar;
  vars: tf.Variable[];
  dim: number;
  eps: number;
}

/**
 * The Hessian of `lossFn` with respect to the flattened concatenation of the selected parameters
 * (in Map order), as an operator v -> H v over float64 vectors. Every apply() disposes all tensors
 * it creates; fd restores the parameters to their exact original values, also on error. Calls are
 * serialised (fd moves the shared parameters).
 *
 * @example
 *   const op = await hessianOperator(modelLossFn(model, x, y), model.params, {
 *     select: (name) => name.startsWith('model.layers.0.'),
 *   });
 *   const hv = await op.apply(v); // v: Float64Array of length op.dim
 */
export async function hessianOperator(
  lossFn: () => tf.Scalar,
  params: ReadonlyMap<string, tf.Variable>,
  opts: HessianOptions = {},
): Promise<HessianOperator> {
  const requested = checkChoice('method', opts.method ?? 'auto', ['exact', 'fd', 'auto'] as const);
  const eps = opts.eps ?? 5e-3;
  if (!(eps > 0) || !Number.isFinite(eps)) throw new ConfigError('eps', `must be a finite number > 0, got ${eps}`);
  const select = opts.select ?? (() => true);
  const names = [...params.keys()].filter((name) => select(name));
  if (names.length === 0) {
    const some = [...params.keys()].slice(0, 5).join(', ');
    throw new ConfigError('select', `matches none of the ${params.size} parameters (${some}${params.size > 5 ? ', ...' : ''})`);
  }
  const vars = names.map((name) => params.get(name)!);
  vars.forEach((v, i) => {
    if (!v.trainable) throw new ConfigError('select', `parameter '${names[i]}' is not trainable; tfjs gives it no gradient`);
    if (v.dtype !== 'float32')
      throw new ConfigError('select', `parameter '${names[i]}' is ${v.dtype}; only float32 parameters have a Hessian`);
  });
  const sizes = vars.map((v) => v.size);
  const ctx: HvpContext = { lossFn, vars, dim: sizes.reduce((a, b) => a + b, 0), eps };

  let method: HvpMethod = requested === 'auto' ? 'exact' : requested;
  let fallbackReason: string | undefined;
  let probeAgreement: number | undefined;
  if (requested === 'auto') {
    const probe = new Rng(opts.seed ?? 0).normals(ctx.dim);
    try {
      const exact = await exactHvp(ctx, probe);
      if (exact.some((x) => !Number.isFinite(x))) {
        fallbackReason = 'the exact Hessian-vector product returned non-finite values';
      } else {
        const fd = await fdHvp(ctx, probe);
        let diff = 0;
        let ref = 0;
        for (let i = 0; i < fd.length; i++) {
          diff += (exact[i]! - fd[i]!) ** 2;
          ref += fd[i]! ** 2;
        }
        probeAgreement = Math.sqrt(diff) / Math.max(Math.sqrt(ref), 1e-30);
        // fd resolves ~1e-4 here; a larger gap means one of them is broken. Seen: WebGPU kernels that
        // fail validation return garbage without throwing. fd has fewer ways to fail.
        if (probeAgreement > AUTO_TOLERANCE) {
          fallbackReason = `exact and finite-difference Hessian-vector products disagree on a random vector (relative difference ${probeAgreement.toPrecision(3)} > ${AUTO_TOLERANCE})`;
        }
      }
    } catch (e) {
      fallbackReason = (e as Error).message;
    }
    if (fallbackReason !== undefined) method = 'fd';
  }

  const hvp = method === 'exact' ? exactHvp : fdHvp;
  let queue: Promise<unknown> = Promise.resolve();
  const apply = (v: Float64Array): Promise<Float64Array> => {
    if (v.length !== ctx.dim) {
      return Promise.reject(new ShapeError(`Hessian operator: vector has length ${v.length}, expected ${ctx.dim}`));
    }
    const result = queue.then(() => hvp(ctx, v));
    queue = result.catch(() => undefined);
    return result;
  };
  return { dim: ctx.dim, apply, method, names, sizes, fallbackReason, probeAgreement };
}

/**
 * The mean next-token cross-entropy of `model` on one fixed batch, as a loss function for
 * hessianOperator. It is model.loss: tfjs's logSoftmax has a custom gradient, but it saves only its
 * output, which exactHvp's tape repair reconnects, so the exact method works on it.
 *
 * @example
 *   const op = await hessianOperator(modelLossFn(model, inputs, targets), model.params);
 */
export function modelLossFn(model: Transformer, inputs: tf.Tensor2D, targets: tf.Tensor2D): () => tf.Scalar {
  return () => model.loss(inputs, targets);
}

/** H v by double backprop. */
async function exactHvp(ctx: HvpContext, v: Float64Array): Promise<Float64Array> {
  const { vars, lossFn } = ctx;
  let flat: tf.Tensor1D;
  try {
    flat = tf.tidy(() => {
      const vs = splitVector(ctx, v);
      const { grads } = tf.variableGrads(() => {
        // Reference ops only, forward and backward: a fused kernel's backward is not itself differentiable.
        const inner = withReferenceOps(() => tf.variableGrads(lossFn, vars).grads);
        // g . v with v a constant: its gradient is H v.
        const terms: tf.Scalar[] = [];
        vars.forEach((x, i) => {
          const g = inner[x.name];
          if (g) terms.push(tf.sum(tf.mul(g, vs[i]!)));
        });
        // Pairwise adds, not addN: WebGPU's AddN binds one storage buffer per input and fails (silently:
        // a validation error, not an exception) beyond the adapter's limit, 8 on lavapipe.
        const gv = terms.reduce((a, b) => tf.add(a, b));
        repairTape(vars);
        return gv;
      }, vars);
      return flattenGrads(ctx, grads);
    });
  } catch (e) {
    releaseAbandonedTape();
    throw new OspError(
      `exact Hessian-vector product failed: ${(e as Error).message}. If tfjs cannot differentiate this loss ` +
        `twice, use method 'fd' (or 'auto', which falls back to it)`,
    );
  }
  try {
    return Float64Array.from(await flat.data());
  } finally {
    flat.dispose();
  }
}

/** H v by central differences of the gradient along v / ||v||. */
async function fdHvp(ctx: HvpContext, v: Float64Array): Promise<Float64Array> {
  const { vars, lossFn } = ctx;
  let vNorm = 0;
  for (const x of v) vNorm += x * x;
  vNorm = Math.sqrt(vNorm);
  if (vNorm === 0) return new Float64Array(ctx.dim);
  const h = ctx.eps / vNorm;
  // Clones share the variables' buffers; assigning them back restores the exact original values.
  const originals = vars.map((x) => tf.keep(tf.clone(x)));
  let directions: tf.Tensor[] = [];
  try {
    directions = tf.tidy(() => splitVector(ctx, v).map((t) => tf.keep(t)));
    const gradientAt = async (step: number): Promise<Float32Array> => {
      tf.tidy(() => vars.forEach((x, i) => x.assign(tf.add(originals[i]!, tf.mul(directions[i]!, step)))));
      const flat = tf.tidy(() => flattenGrads(ctx, tf.variableGrads(lossFn, vars).grads));
      try {
        return (await flat.data()) as Float32Array;
      } finally {
        flat.dispose();
      }
    };
    const plus = await gradientAt(h);
    const minus = await gradientAt(-h);
    const hv = new Float64Array(ctx.dim);
    for (let i = 0; i < hv.length; i++) hv[i] = (plus[i]! - minus[i]!) / (2 * h);
    return hv;
  } finally {
    vars.forEach((x, i) => x.assign(originals[i]!));
    tf.dispose(originals);
    tf.dispose(directions);
  }
}

/** v (float64, flat) -> one float32 tensor per selected parameter, in its shape. */
function splitVector(ctx: HvpContext, v: Float64Array): tf.Tensor[] {
  let offset = 0;
  return ctx.vars.map((x) => {
    const part = Float32Array.from(v.subarray(offset, offset + x.size));
    offset += x.size;
    return tf.tensor(part, x.shape, 'float32');
  });
}

/** Concatenates per-variable gradients into one flat vector; a parameter the loss ignores gets zeros. */
function flattenGrads(ctx: HvpContext, grads: tf.NamedTensorMap): tf.Tensor1D {
  const parts = ctx.vars.map((x) => {
    const g = grads[x.name];
    return g ? tf.reshape(g, [-1]) : tf.zeros([x.size]);
  });
  return (parts.length === 1 ? parts[0]! : tf.concat(parts)) as tf.Tensor1D;
}

/**
 * Puts the active tape back into topological order (see the file comment) and refuses tapes whose
 * second derivatives would still be wrong. Called at the end of the outer gradient's function, i.e.
 * after the inner gradient was recorded and before the outer one filters the tape.
 */
function repairTape(xs: tf.Tensor[]): void {
  const tape = tf.engine().state.activeTape;
  const producer = new Map<number, number>();
  tape.forEach((node, i) => node.outputs.forEach((t) => producer.set(t.id, i)));
  const producerNode = new Map<number, TapeNode>();
  tape.forEach((node) => node.outputs.forEach((t) => producerNode.set(t.id, node)));

  // Stable topological sort: nodes keep their order unless an input comes from a later node, in
  // which case they wait until it has been emitted (in practice: clones move behind their source).
  const waitingOn = new Array<number>(tape.length).fill(0);
  const dependents = new Map<number, number[]>();
  let disordered = false;
  tape.forEach((node, i) => {
    for (const t of Object.values(node.inputs)) {
      const p = producer.get(t.id);
      if (p === undefined || p === i) continue;
      if (p > i) disordered = true;
      waitingOn[i]!++;
      const list = dependents.get(p) ?? [];
      list.push(i);
      dependents.set(p, list);
    }
  });
  if (disordered) {
    const order: TapeNode[] = [];
    const emitted = new Array<boolean>(tape.length).fill(false);
    for (let scan = 0; scan < tape.length; scan++) {
      if (waitingOn[scan] !== 0 || emitted[scan]) continue;
      const stack = [scan];
      while (stack.length > 0) {
        const i = stack.pop()!;
        emitted[i] = true;
        order.push(tape[i]!);
        for (const d of dependents.get(i) ?? []) {
          // Dependents ahead of the scan are emitted when the scan reaches them.
          if (--waitingOn[d]! === 0 && d < scan && !emitted[d]) stack.push(d);
        }
      }
    }
    if (order.length !== tape.length) throw new OspError('exact HVP: the gradient tape has a cycle');
    // In place (the engine holds this array); element-wise, as a spread of a large tape would
    // overflow the call stack.
    order.forEach((node, i) => (tape[i] = node));
  }

  // A custom-gradient op may save a tensor computed inside it (neither an input nor an output). The
  // tape never saw how that tensor depends on the inputs, so the second derivative through it would
  // be silently lost: refuse, on the path from the parameters only. (A saved tensor is a clone; the
  // clone node's input is what was saved.)
  const fromX = new Set(xs.map((x) => x.id));
  for (const node of tape) {
    const inputs = Object.values(node.inputs);
    if (!inputs.some((t) => fromX.has(t.id))) continue;
    node.outputs.forEach((t) => fromX.add(t.id));
    const own = new Set([...inputs, ...node.outputs].map((t) => t.id));
    for (const saved of node.saved ?? []) {
      const clone = producerNode.get(saved.id);
      for (const source of clone ? Object.values(clone.inputs) : []) {
        if (!own.has(source.id)) {
          throw new OspError(
            `'${node.kernelName}' (a custom-gradient op) saves a tensor that is neither its input nor its output, ` +
              'so tfjs would drop its second derivative',
          );
        }
      }
    }
  }
}

/**
 * After a failed nested gradient the outer tape is abandoned with the tensors its nodes saved still
 * kept (tfjs frees them only when a top-level gradient completes); free them.
 */
function releaseAbandonedTape(): void {
  const state = tf.engine().state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;
  for (const node of state.activeTape) {
    for (const t of node.saved ?? []) t.dispose();
    node.saved = [];
  }
}
