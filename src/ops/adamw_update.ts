/**
 * One AdamW step on one parameter, PyTorch's semantics (torch.optim.AdamW, non-fused):
 *   p  <- p * decay                      (decay = 1 - lr * weight_decay, or 1)
 *   m  <- beta1 m + (1 - beta1) g
 *   v  <- beta2 v + (1 - beta2) g^2
 *   p  <- p - (lr / bc1) * m / (sqrt(v) / bc2Sqrt + eps)
 * The bias corrections bc1 = 1 - beta1^t and bc2Sqrt = sqrt(1 - beta2^t) are computed by the caller
 * in float64. A fused kernel reads the four tensors once and writes the three results once.
 */
import * as tf from '@tensorflow/tfjs';
import { OspError, ShapeError } from '../errors.ts';
import { KERNELS, hasKernel } from './dispatch.ts';

export interface AdamWUpdateAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Multiplicative weight decay applied to the parameter first: 1 - lr * weightDecay, or 1. */
  decay: number;
  bc1: number;
  bc2Sqrt: number;
}

export interface AdamWUpdated {
  param: tf.Tensor;
  expAvg: tf.Tensor;
  expAvgSq: tf.Tensor;
}

/** Reference in plain tfjs ops, and the oracle for kernels. */
export function adamwUpdateReference(
  param: tf.Tensor,
  grad: tf.Tensor,
  expAvg: tf.Tensor,
  expAvgSq: tf.Tensor,
  a: AdamWUpdateAttrs,
): AdamWUpdated {
  return tf.tidy(() => {
    const m = tf.add(tf.mul(expAvg, a.beta1), tf.mul(grad, 1 - a.beta1));
    const v = tf.add(tf.mul(expAvgSq, a.beta2), tf.mul(tf.square(grad), 1 - a.beta2));
    const denom = tf.add(tf.div(tf.sqrt(v), a.bc2Sqrt), a.eps);
    const decayed = a.decay === 1 ? param : tf.mul(param, a.decay);
    const p = tf.sub(decayed, tf.mul(tf.div(m, denom), a.lr / a.bc1));
    return { param: p, expAvg: m, expAvgSq: v };
  });
}

/** Each of `others` has the parameter's shape; else a ShapeError naming the field (`where` prefixes it). */
function checkLikeParam(op: string, param: tf.Tensor, others: Record<string, tf.Tensor>, where = ''): void {
  for (const [name, t] of Object.entries(others)) {
    if (t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i])) {
      throw new ShapeError(`${op}: ${where}${name} has shape [${t.shape}], the parameter [${param.shape}]`);
    }
  }
}

/**
 * New parameter and moments (fresh tensors: the caller assigns them to its variables and disposes).
 * @example
 *   const u = adamwUpdate(p, g, m, v, { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1 - lr * 0.1, bc1, bc2Sqrt });
 */
export function adamwUpdate(
  param: tf.Tensor,
  grad: tf.Tensor,
  expAvg: tf.Tensor,
  expAvgSq: tf.Tensor,
  attrs: AdamWUpdateAttrs,
): AdamWUpdated {
  checkLikeParam('adamwUpdate', param, { grad, expAvg, expAvgSq });
  if (!hasKernel(KERNELS.adamwUpdate)) return adamwUpdateReference(param, grad, expAvg, expAvgSq, attrs);
  const [p, m, v] = tf.engine().runKernel(KERNELS.adamwUpdate, { param, grad, expAvg, expAvgSq }, { ...attrs }) as tf.Tensor[];
  return { param: p!, expAvg: m!, expAvgSq: v! };
}

/** One parameter of a multi-tensor AdamW step: its variables (given their new values) and this step's attrs. */
export interface AdamWSlotUpdate {
  param: tf.Variable;
  grad: tf.Tensor;
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
  attrs: AdamWUpdateAttrs;
}

/**
 * Makes v the only holder of its data buffer on the active backend (a copy when a clone, reshape or
 * unreleased initial tensor shares it, or when the data lives on another backend, where refCount reads
 * 0), so that an in-place kernel writing v changes nothing else. x * 1 keeps every float32 value, -0 and
 * NaN included (a GPU may flush subnormals to zero).
 */
function ownBuffer(v: tf.Variable): void {
  if (tf.backend().refCount(v.dataId) === 1) return;
  const copy = tf.tidy(() => tf.mul(v, tf.scalar(1, v.dtype)));
  v.assign(copy);
  copy.dispose();
}

/**
 * Multi-tensor AdamW (PyTorch's foreach / fused AdamW): every slot's param, expAvg and expAvgSq
 * variables get adamwUpdate's new values. With the OspAdamWUpdateMulti kernel (webgpu) the update runs
 * in place, as many parameters per dispatch as the device binds; otherwise one adamwUpdate per slot,
 * assigned. Slots must not share variables.
 * @example
 *   adamwUpdateMulti(slots.map((s) => ({ param: s.p, grad: s.g, expAvg: s.m, expAvgSq: s.v, attrs: s.attrs })));
 */
export function adamwUpdateMulti(slots: readonly AdamWSlotUpdate[]): void {
  const written = new Set<tf.Variable>();
  for (const [i, s] of slots.entries()) {
    for (const [field, v] of Object.entries({ param: s.param, expAvg: s.expAvg, expAvgSq: s.expAvgSq })) {
      if (written.has(v)) throw new OspError(`adamwUpdateMulti: slot ${i}'s ${field} is a variable another slot or field also updates`);
      written.add(v);
    }
  }
  if (!hasKernel(KERNELS.adamwUpdateMulti)) {
    for (const s of slots) {
      const u = adamwUpdate(s.param, s.grad, s.expAvg, s.expAvgSq, s.attrs);
      s.expAvg.assign(u.expAvg);
      s.expAvgSq.assign(u.expAvgSq);
      s.param.assign(u.param);
      tf.dispose([u.param, u.expAvg, u.expAvgSq]);
    }
    return;
  }
  const inputs: Record<string, tf.Tensor> = {};
  for (const [i, s] of slots.entries()) {
    checkLikeParam('adamwUpdateMulti', s.param, { grad: s.grad, expAvg: s.expAvg, expAvgSq: s.expAvgSq }, `slot ${i}'s `);
    for (const v of [s.param, s.expAvg, s.expAvgSq]) ownBuffer(v);
    inputs[`param${i}`] = s.param;
    inputs[`grad${i}`] = s.grad;
    inputs[`expAvg${i}`] = s.expAvg;
    inputs[`expAvgSq${i}`] = s.expAvgSq;
  }
  tf.engine().runKernel(KERNELS.adamwUpdateMulti, inputs, { slots: slots.map((s) => ({ ...s.attrs })) } as never);
}
