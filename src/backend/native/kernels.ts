/**
 * The native backend's kernels: tfjs's cpu kernels with the hot ones replaced by the addon's.
 *
 * Each override handles the float32 cases the addon implements and hands anything else (int32 or
 * bool tensors, complex numbers, a layout it does not cover) to tfjs's own cpu kernel, which computes
 * the same result more slowly: the experiment never changes, only the speed. Shapes, broadcasting
 * and attribute parsing use tfjs's own helpers, so the semantics are tfjs's.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeCpuBackend } from './backend.ts';
import { KERNELS } from '../../ops/dispatch.ts';
import { attentionShapes } from '../../ops/attention.ts';
import { ShapeError } from '../../errors.ts';
import type { NativeAddon } from './addon.ts';

export const NATIVE = 'native';

type TI = tf.TensorInfo;
type KernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }) => TI | TI[];

const { backend_util, util } = tf;

function f32(b: NativeCpuBackend, t: TI): Float32Array {
  return b.data.get(t.dataId).values as Float32Array;
}
function i32(b: NativeCpuBackend, t: TI): Int32Array {
  return b.data.get(t.dataId).values as Int32Array;
}
const size = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);
const isF32 = (...ts: (TI | undefined)[]) => ts.every((t) => t === undefined || t.dtype === 'float32');

/** Row-major strides of `shape` as seen from an output of rank `rank` (0 on broadcast dimensions). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = rank - shape.length + i;
    strides[d] = shape[i] === 1 && outShape[d] !== 1 ? 0 : s;
    s *= shape[i]!;
  }
  return strides;
}

/** Merges adjacent output dimensions that both operands traverse contiguously (fewer, longer loops). */
function coalesce(shape: number[], sa: number[], sb: number[]): [number[], number[], number[]] {
  const S: number[] = [];
  const A: number[] = [];
  const B: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const k = S.length - 1;
    if (k >= 0 && A[k] === sa[d]! * shape[d]! && B[k] === sb[d]! * shape[d]!) {
      S[k] *= shape[d]!;
      A[k] = sa[d]!;
      B[k] = sb[d]!;
    } else {
      S.push(shape[d]!);
      A.push(sa[d]!);
      B.push(sb[d]!);
    }
  }
  if (S.length === 0) return [[1], [0], [0]];
  return [S, A, B];
}

const BINARY: Record<string, number> = {
  [tf.Add]: 0,
  [tf.Sub]: 1,
  [tf.Multiply]: 2,
  [tf.RealDiv]: 3,
  [tf.Maximum]: 4,
  [tf.Minimum]: 5,
  [tf.Pow]: 6,
  [tf.SquaredDifference]: 7,
};

const UNARY: Record<string, number> = {
  [tf.Exp]: 0,
  [tf.Log]: 1,
  [tf.Sqrt]: 2,
  [tf.Rsqrt]: 3,
  [tf.Square]: 4,
  [tf.Neg]: 5,
  [tf.Abs]: 6,
  [tf.Sigmoid]: 7,
  [tf.Relu]: 8,
  [tf.Tanh]: 9,
  [tf.Reciprocal]: 10,
  [tf.Elu]: 11,
  [tf.Relu6]: 12,
  [tf.LeakyRelu]: 13,
  [tf.Softplus]: 14,
  [tf.Log1p]: 15,
};

const REDUCE: Record<string, number> = { [tf.Sum]: 0, [tf.Max]: 1, [tf.Min]: 2, [tf.Mean]: 3, [tf.Prod]: 4 };

const ACTIVATION: Record<string, number> = { linear: 0, relu: 1, relu6: 2, elu: 3, sigmoid: 4, leakyrelu: 5 };

/** The addon's kernel functions, by tfjs kernel name; `base(name)` is tfjs's cpu kernel for a fallback. */
export function nativeKernels(addon: NativeAddon, base: (name: string) => KernelFunc): Map<string, KernelFunc> {
  const k = new Map<string, KernelFunc>();

  // out = x transposed by perm (float32), as a new TensorInfo.
  const transposeTo = (b: NativeCpuBackend, x: TI, perm: number[]): TI => {
    const out = b.f32Out(size(x.shape));
    addon.transpose(f32(b, x), out, Int32Array.from(x.shape), Int32Array.from(perm));
    return b.makeTensorInfo(
      perm.map((p) => x.shape[p]!),
      'float32',
      out,
    );
  };

  // --- elementwise -----------------------------------------------------------------------
  for (const [name, op] of Object.entries(BINARY)) {
    const fallback = base(name);
    k.set(name, (args) => {
      const { a, b: bb } = args.inputs as { a: TI; b: TI };
      if (!isF32(a, bb)) return fallback(args);
      const be = args.backend as NativeCpuBackend;
      const outShape = backend_util.assertAndGetBroadcastShape(a.shape, bb.shape);
      const out = be.f32Out(size(outShape));
      if (out.length > 0) {
        const [S, A, B] = coalesce(outShape, broadcastStrides(a.shape, outShape), broadcastStrides(bb.shape, outShape));
        addon.binary(op, f32(be, a), f32(be, bb), out, Int32Array.from(S), Int32Array.from(A), Int32Array.from(B));
      }
      return be.makeTensorInfo(outShape, 'float32', out);
    });
  }

  for (const [name, op] of Object.entries(UNARY)) {
    const fallback = base(name);
    k.set(name, (args) => {
      const { x } = args.inputs as { x: TI };
      if (!isF32(x)) return fallback(args);
      const be = args.backend as NativeCpuBackend;
      const out = be.f32Out(size(x.shape));
      addon.unary(op, f32(be, x), out, Number(args.attrs?.alpha ?? 0));
      return be.makeTensorInfo(x.shape, 'float32', out);
    });
  }

  // --- reductions ---------------------------------------------------------------------------
  for (const [name, op] of Object.entries(REDUCE)) {
    const fallback = base(name);
    k.set(name, (args) => {
      const { x } = args.inputs as { x: TI };
      if (!isF32(x)) return fallback(args);
      const be = args.backend as NativeCpuBackend;
      // Max and Min name their axes reductionIndices; Sum, Mean and Prod call them axis.
      const {
        axis: ax,
        reductionIndices,
        keepDims,
      } = args.attrs as { axis?: number | number[]; reductionIndices?: number | number[]; keepDims: boolean };
      const axis = ax ?? reductionIndices!;
      let axes = util.parseAxisParam(axis, x.shape);
      const perm = backend_util.getAxesPermutation(axes, x.shape.length);
      let input = x;
      if (perm !== null) {
        input = transposeTo(be, x, perm);
        axes = backend_util.getInnerMostAxes(axes.length, x.shape.length);
      }
      const [outShape, reduceShape] = backend_util.computeOutAndReduceShapes(input.shape, axes);
      const inner = size(reduceShape);
      const outer = size(outShape);
      const out = be.f32Out(outer);
      if (inner === 0) out.fill(op === 0 ? 0 : op === 4 ? 1 : op === 3 ? NaN : op === 1 ? -Infinity : Infinity);
      else addon.reduce(op, f32(be, input), out, outer, inner);
      if (input !== x) be.disposeIntermediateTensorInfo(input);
      const shape = keepDims ? backend_util.expandShapeToKeepDim(outShape, util.parseAxisParam(axis, x.shape)) : outShape;
      return be.makeTensorInfo(shape, 'float32', out);
    });
  }

  k.set(tf.Softmax, (args) => {
    const { logits } = args.inputs as { logits: TI };
    const { dim } = args.attrs as { dim: number };
    const rank = logits.shape.length;
    if (!isF32(logits) || (dim !== -1 && dim !== rank - 1)) return base(tf.Softmax)(args);
    const be = args.backend as NativeCpuBackend;
    const n = logits.shape[rank - 1]!;
    const out = be.f32Out(size(logits.shape));
    if (n > 0) addon.softmax(f32(be, logits), out, out.length / n, n);
    return be.makeTensorInfo(logits.shape, 'float32', out);
  });

  k.set(KERNELS.softmaxGrad, (args) => {
    const { dy, y } = args.inputs as { dy: TI; y: TI };
    const be = args.backend as NativeCpuBackend;
    const n = y.shape[y.shape.length - 1]!;
    const dx = be.f32Out(size(y.shape));
    if (n > 0) addon.softmaxGrad(f32(be, y), f32(be, dy), dx, dx.length / n, n);
    return be.makeTensorInfo(y.shape, 'float32', dx);
  });

  // --- layout -------------------------------------------------------------------------------
  k.set(tf.Transpose, (args) => {
    const { x } = args.inputs as { x: TI };
    if (!isF32(x) || x.shape.length > 8) return base(tf.Transpose)(args);
    return transposeTo(args.backend as NativeCpuBackend, x, (args.attrs as { perm: number[] }).perm);
  });

  const copyable = (t: TI) => t.dtype === 'float32' || t.dtype === 'int32';
  const alloc = (be: NativeCpuBackend, dtype: tf.DataType, n: number) => (dtype === 'int32' ? new Int32Array(n) : be.f32Out(n));
  const values = (be: NativeCpuBackend, t: TI) => be.data.get(t.dataId).values as Float32Array | Int32Array;

  // Slices that cut one dimension only (the others whole) are a strided row copy.
  const sliceOne = (be: NativeCpuBackend, x: TI, begin: number[], sz: number[]): TI | undefined => {
    const partial = x.shape.map((d, i) => begin[i] !== 0 || sz[i] !== d).flatMap((p, i) => (p ? [i] : []));
    if (partial.length > 1) return undefined;
    const out = alloc(be, x.dtype, size(sz));
    if (out.length > 0) {
      if (partial.length === 0) out.set(values(be, x));
      else {
        const p = partial[0]!;
        const inner = size(x.shape.slice(p + 1));
        addon.copyRows(
          values(be, x),
          begin[p]! * inner,
          x.shape[p]! * inner,
          out,
          0,
          sz[p]! * inner,
          size(x.shape.slice(0, p)),
          sz[p]! * inner,
        );
      }
    }
    return be.makeTensorInfo(sz, x.dtype, out);
  };

  k.set(tf.Slice, (args) => {
    const { x } = args.inputs as { x: TI };
    if (!copyable(x)) return base(tf.Slice)(args);
    const { begin, size: sz } = args.attrs as { begin: number | number[]; size: number | number[] };
    const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, sz);
    return sliceOne(args.backend as NativeCpuBackend, x, b, s) ?? base(tf.Slice)(args);
  });

  k.set(tf.SplitV, (args) => {
    const { x } = args.inputs as { x: TI };
    if (!copyable(x)) return base(tf.SplitV)(args);
    const be = args.backend as NativeCpuBackend;
    const { numOrSizeSplits, axis } = args.attrs as { numOrSizeSplits: number | number[]; axis: number };
    const ax = util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const sz = [...x.shape];
      sz[ax] = s;
      const out = sliceOne(be, x, [...begin], sz)!;
      begin[ax] += s;
      return out;
    });
  });

  k.set(tf.Concat, (args) => {
    const inputs = args.inputs as unknown as TI[];
    const { axis } = args.attrs as { axis: number };
    const dtype = inputs[0]?.dtype;
    if (inputs.length === 0 || !inputs.every((t) => copyable(t) && t.dtype === dtype)) return base(tf.Concat)(args);
    const be = args.backend as NativeCpuBackend;
    const ax = util.parseAxisParam(axis, inputs[0]!.shape)[0]!;
    const outShape = backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      ax,
    );
    const out = alloc(be, dtype!, size(outShape));
    const outer = size(outShape.slice(0, ax));
    const width = size(outShape.slice(ax));
    let col = 0;
    for (const t of inputs) {
      const w = size(t.shape.slice(ax));
      if (w > 0 && outer > 0) addon.copyRows(values(be, t), 0, w, out, col, width, outer, w);
      col += w;
    }
    return be.makeTensorInfo(outShape, dtype!, out);
  });

  // --- gathers and scatters -----------------------------------------------------------------
  k.set(tf.GatherV2, (args) => {
    const { x, indices } = args.inputs as { x: TI; indices: TI };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    if (!isF32(x) || indices.dtype !== 'int32' || batchDims !== 0) return base(tf.GatherV2)(args);
    const be = args.backend as NativeCpuBackend;
    const ax = util.parseAxisParam(axis, x.shape)[0]!;
    const outShape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
    const out = be.f32Out(size(outShape));
    addon.gather(f32(be, x), i32(be, indices), out, size(x.shape.slice(0, ax)), x.shape[ax]!, size(x.shape.slice(ax + 1)));
    return be.makeTensorInfo(outShape, 'float32', out);
  });

  k.set(tf.UnsortedSegmentSum, (args) => {
    const { x, segmentIds } = args.inputs as { x: TI; segmentIds: TI };
    const { numSegments } = args.attrs as { numSegments: number };
    const lead = segmentIds.shape.length;
    if (!isF32(x) || segmentIds.dtype !== 'int32' || !segmentIds.shape.every((d, i) => d === x.shape[i])) {
      return base(tf.UnsortedSegmentSum)(args);
    }
    const be = args.backend as NativeCpuBackend;
    const innerShape = x.shape.slice(lead);
    const out = be.f32Out(numSegments * size(innerShape));
    addon.segmentSum(f32(be, x), i32(be, segmentIds), out, size(innerShape), numSegments);
    return be.makeTensorInfo([numSegments, ...innerShape], 'float32', out);
  });

  // --- matrix products ----------------------------------------------------------------------
  // op(a) [..., M, K] @ op(b) [..., K, N], batch dimensions broadcast.
  const matmul = (be: NativeCpuBackend, a: TI, b: TI, ta: boolean, tb: boolean): TI => {
    const ra = a.shape.length;
    const rb = b.shape.length;
    const M = ta ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const K = ta ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const K2 = tb ? b.shape[rb - 1]! : b.shape[rb - 2]!;
    const N = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!;
    if (K !== K2)
      throw new Error(`Error in matMul: inner shapes (${K}) and (${K2}) of Tensors with shapes ${a.shape} and ${b.shape} must match`);
    const batchA = a.shape.slice(0, -2);
    const batchB = b.shape.slice(0, -2);
    const batchShape = backend_util.assertAndGetBroadcastShape(batchA, batchB);
    const batch = size(batchShape);
    const sa = broadcastStrides(batchA, batchShape);
    const sb = broadcastStrides(batchB, batchShape);
    const aOff = new Int32Array(batch);
    const bOff = new Int32Array(batch);
    for (let i = 0; i < batch; i++) {
      let rem = i;
      let oa = 0;
      let ob = 0;
      for (let d = batchShape.length - 1; d >= 0; d--) {
        const idx = rem % batchShape[d]!;
        rem = Math.floor(rem / batchShape[d]!);
        oa += idx * sa[d]!;
        ob += idx * sb[d]!;
      }
      aOff[i] = oa * M * K;
      bOff[i] = ob * K * N;
    }
    const out = be.f32Out(batch * M * N);
    if (out.length > 0) addon.gemm(f32(be, a), f32(be, b), out, batch, M, N, K, ta ? 1 : 0, tb ? 1 : 0, aOff, bOff);
    return be.makeTensorInfo([...batchShape, M, N], 'float32', out);
  };

  k.set(tf.BatchMatMul, (args) => {
    const { a, b } = args.inputs as { a: TI; b: TI };
    if (!isF32(a, b) || a.shape.length < 2 || b.shape.length < 2) return base(tf.BatchMatMul)(args);
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    return matmul(args.backend as NativeCpuBackend, a, b, transposeA, transposeB);
  });

  k.set(tf._FusedMatMul, (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as { a: TI; b: TI; bias?: TI; preluActivationWeights?: TI };
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as {
      transposeA: boolean;
      transposeB: boolean;
      activation: string;
      leakyreluAlpha?: number;
    };
    const act = ACTIVATION[activation ?? 'linear'];
    const N = transposeB ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!;
    const biasOk =
      bias === undefined || (bias.dtype === 'float32' && (size(bias.shape) === N || size(bias.shape) === 1) && bias.shape.length <= 1);
    if (!isF32(a, b) || preluActivationWeights || act === undefined || !biasOk || a.shape.length < 2 || b.shape.length < 2) {
      return base(tf._FusedMatMul)(args);
    }
    const be = args.backend as NativeCpuBackend;
    const out = matmul(be, a, b, transposeA, transposeB);
    const values = f32(be, out);
    if (values.length > 0 && (bias || act !== 0)) {
      addon.biasAct(values, bias ? f32(be, bias) : null, values.length / N, N, act, leakyreluAlpha ?? 0.2);
    }
    return out;
  });

  // --- the fused ops of src/ops ---------------------------------------------------------------
  k.set(KERNELS.rmsNorm, (args) => {
    const { x, weight } = args.inputs as { x: TI; weight: TI };
    const be = args.backend as NativeCpuBackend;
    const d = x.shape[x.shape.length - 1]!;
    const y = be.f32Out(size(x.shape));
    addon.rmsNorm(f32(be, x), f32(be, weight), y, y.length / d || 0, d, size(weight.shape), Number(args.attrs!.eps));
    return be.makeTensorInfo(x.shape, 'float32', y);
  });

  k.set(KERNELS.rmsNormGrad, (args) => {
    const { dy, x, weight } = args.inputs as { dy: TI; x: TI; weight: TI };
    const be = args.backend as NativeCpuBackend;
    const d = x.shape[x.shape.length - 1]!;
    const dx = be.f32Out(size(x.shape));
    const dw = be.f32Out(size(weight.shape));
    addon.rmsNormGrad(f32(be, dy), f32(be, x), f32(be, weight), dx, dw, dx.length / d || 0, d, dw.length, Number(args.attrs!.eps));
    return [be.makeTensorInfo(x.shape, 'float32', dx), be.makeTensorInfo(weight.shape, 'float32', dw)];
  });

  k.set(KERNELS.crossEntropy, (args) => {
    const { logits, targets } = args.inputs as { logits: TI; targets: TI };
    const be = args.backend as NativeCpuBackend;
    const [N, V] = logits.shape as [number, number];
    const loss = be.f32Out(N);
    addon.crossEntropy(f32(be, logits), i32(be, targets), loss, N, V);
    return be.makeTensorInfo([N], 'float32', loss);
  });

  k.set(KERNELS.crossEntropyGrad, (args) => {
    const { dloss, logits, targets } = args.inputs as { dloss: TI; logits: TI; targets: TI };
    const be = args.backend as NativeCpuBackend;
    const [N, V] = logits.shape as [number, number];
    const g = be.f32Out(N * V);
    addon.crossEntropyGrad(f32(be, dloss), f32(be, logits), i32(be, targets), g, N, V);
    return be.makeTensorInfo([N, V], 'float32', g);
  });

  k.set(KERNELS.adamwUpdate, (args) => {
    const { param, grad, expAvg, expAvgSq } = args.inputs as { param: TI; grad: TI; expAvg: TI; expAvgSq: TI };
    const a = args.attrs as { lr: number; beta1: number; beta2: number; eps: number; decay: number; bc1: number; bc2Sqrt: number };
    const be = args.backend as NativeCpuBackend;
    const n = size(param.shape);
    const [p, m, v] = [be.f32Out(n), be.f32Out(n), be.f32Out(n)];
    addon.adamw(
      f32(be, param),
      f32(be, grad),
      f32(be, expAvg),
      f32(be, expAvgSq),
      p,
      m,
      v,
      a.lr,
      a.beta1,
      a.beta2,
      a.eps,
      a.decay,
      a.bc1,
      a.bc2Sqrt,
    );
    return [p, m, v].map((values) => be.makeTensorInfo(param.shape, 'float32', values));
  });

  k.set(KERNELS.newtonSchulz, (args) => {
    const { x } = args.inputs as { x: TI };
    const a = args.attrs as { steps: number; a: number[]; b: number[]; c: number[]; normScale: number; normEps: number };
    const be = args.backend as NativeCpuBackend;
    const [m, n] = x.shape as [number, number];
    const out = be.f32Out(m * n);
    addon.newtonSchulz(
      f32(be, x),
      out,
      m,
      n,
      a.steps,
      Float32Array.from(a.a),
      Float32Array.from(a.b),
      Float32Array.from(a.c),
      a.normScale,
      a.normEps,
    );
    return be.makeTensorInfo([m, n], 'float32', out);
  });

  k.set(KERNELS.channelMoments, (args) => {
    const { x } = args.inputs as { x: TI };
    const be = args.backend as NativeCpuBackend;
    const [N, d] = x.shape as [number, number];
    const token = be.f32Out(N * 4);
    const channel = be.f32Out(d * 4);
    addon.channelMoments(f32(be, x), token, channel, N, d);
    return [be.makeTensorInfo([N, 4], 'float32', token), be.makeTensorInfo([d, 4], 'float32', channel)];
  });

  for (const [name, grad] of [
    [KERNELS.rope, false],
    [KERNELS.ropeGrad, true],
  ] as const) {
    k.set(name, (args) => {
      const { cos, sin } = args.inputs as { cos: TI; sin: TI };
      const x = (grad ? args.inputs.dy : args.inputs.x) as TI;
      const be = args.backend as NativeCpuBackend;
      const [, T, heads, hd] = x.shape as [number, number, number, number];
      if (x.shape.length !== 4 || !isF32(x, cos, sin) || size(cos.shape) !== T * hd || size(sin.shape) !== T * hd || hd % 2 !== 0) {
        throw new ShapeError(`${name} (native): ${grad ? 'dy' : 'x'} must be float32 [B, T, heads, hd] (hd even) and cos, sin [T, 1, hd]`);
      }
      const out = be.f32Out(size(x.shape));
      (grad ? addon.ropeGrad : addon.rope)(f32(be, x), f32(be, cos), f32(be, sin), out, out.length / hd, T, heads, hd);
      return be.makeTensorInfo(x.shape, 'float32', out);
    });
  }

  k.set(KERNELS.swiglu, (args) => {
    const { gate, up } = args.inputs as { gate: TI; up: TI };
    const be = args.backend as NativeCpuBackend;
    if (!isF32(gate, up) || !util.arraysEqual(gate.shape, up.shape)) {
      throw new ShapeError(`${KERNELS.swiglu} (native): gate and up must be float32 of one shape, got [${gate.shape}] and [${up.shape}]`);
    }
    const h = be.f32Out(size(gate.shape));
    addon.swiglu(f32(be, gate), f32(be, up), h, h.length);
    return be.makeTensorInfo(gate.shape, 'float32', h);
  });

  k.set(KERNELS.swigluGrad, (args) => {
    const { dh, gate, up } = args.inputs as { dh: TI; gate: TI; up: TI };
    const be = args.backend as NativeCpuBackend;
    if (!isF32(dh, gate, up) || !util.arraysEqual(gate.shape, up.shape) || !util.arraysEqual(dh.shape, gate.shape)) {
      throw new ShapeError(`${KERNELS.swigluGrad} (native): dh, gate and up must be float32 of one shape`);
    }
    const n = size(gate.shape);
    const [dg, du] = [be.f32Out(n), be.f32Out(n)];
    addon.swigluGrad(f32(be, dh), f32(be, gate), f32(be, up), dg, du, n);
    return [be.makeTensorInfo(gate.shape, 'float32', dg), be.makeTensorInfo(gate.shape, 'float32', du)];
  });

  /** The attention kernels' sizes; float32 only (the op never hands them anything else). */
  const attentionSizes = (name: string, q: TI, k: TI, v: TI, ...more: TI[]) => {
    const sizes = attentionShapes(`${name} (native)`, q, k, v);
    if (!isF32(q, k, v, ...more)) throw new ShapeError(`${name} (native): every input must be float32`);
    return sizes;
  };

  k.set(KERNELS.causalAttention, (args) => {
    const { q, k: key, v } = args.inputs as { q: TI; k: TI; v: TI };
    const be = args.backend as NativeCpuBackend;
    const { B, T, H, Hkv, hd } = attentionSizes(KERNELS.causalAttention, q, key, v);
    const fwd = be.f32Out(B * T * (H * hd + H));
    addon.causalAttention(f32(be, q), f32(be, key), f32(be, v), fwd, B, T, H, Hkv, hd, Number(args.attrs!.scale));
    return be.makeTensorInfo([B * T, H * hd + H], 'float32', fwd);
  });

  k.set(KERNELS.causalAttentionGrad, (args) => {
    const { dy, q, k: key, v, fwd } = args.inputs as { dy: TI; q: TI; k: TI; v: TI; fwd: TI };
    const be = args.backend as NativeCpuBackend;
    const { B, T, H, Hkv, hd } = attentionSizes(KERNELS.causalAttentionGrad, q, key, v, dy, fwd);
    if (size(dy.shape) !== size(q.shape) || size(fwd.shape) !== B * T * (H * hd + H)) {
      throw new ShapeError(`${KERNELS.causalAttentionGrad} (native): dy must have q's size and fwd be [${B * T}, ${H * hd + H}]`);
    }
    const [dq, dk, dv] = [be.f32Out(size(q.shape)), be.f32Out(size(key.shape)), be.f32Out(size(v.shape))];
    const g = (t: TI) => f32(be, t);
    addon.causalAttentionGrad(g(dy), g(q), g(key), g(v), g(fwd), dq, dk, dv, B, T, H, Hkv, hd, Number(args.attrs!.scale));
    return [
      be.makeTensorInfo(q.shape, 'float32', dq),
      be.makeTensorInfo(key.shape, 'float32', dk),
      be.makeTensorInfo(v.shape, 'float32', dv),
    ];
  });

  return k;
}
