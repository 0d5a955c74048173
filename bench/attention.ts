/**
 * Where a training step's time goes among the parts a fused kernel can replace: attention itself
 * (scores, mask, softmax, product, or the fused kernel), RoPE on q and k, and SwiGLU's elementwise
 * silu(gate) * up, each forward + backward at the bench model's shapes, times the layer count, against
 * one whole training step on the same backend in the same process (partShares: what fusing a part can
 * gain at most, Amdahl); and the fused kernels against their reference ops, part by part and for a
 * whole step (fusionGain).
 *
 *   npx tsx bench/run.ts --only parts,attention
 */
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type ConcreteBackend } from '../src/backend/index.ts';
import { resolveModelConfig } from '../src/model/config.ts';
import { ropeTables } from '../src/model/layers.ts';
import { rope } from '../src/ops/rope.ts';
import { swigluGate } from '../src/ops/swiglu.ts';
import { causalAttention } from '../src/ops/attention.ts';
import { hasKernel, KERNELS, setKernelsEnabled, type KernelName } from '../src/ops/dispatch.ts';
import { Rng } from '../src/utils/rng.ts';
import { alternating, B, stepRunner, stepTime, T, type Row } from './speed.ts';

const LAYERS = 4;

/** Median ms of f (forward + backward of one part); waits for the results (webgpu is asynchronous). */
async function partTime(f: () => tf.Tensor[], reps: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    const out = f();
    await Promise.all(out.map((t) => t.data()));
    tf.dispose(out);
    if (i >= 2) ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)]!;
}

const randn = (shape: number[], seed: number) =>
  tf.tensor(
    Float32Array.from(
      new Rng(seed).normals(
        shape.reduce((a, b) => a * b, 1),
        1,
      ),
    ),
    shape,
  );

/** Gradients of sum(f(inputs) * w) with respect to the inputs, and nothing else kept. */
function fwdBwd(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], w: tf.Tensor): () => tf.Tensor[] {
  return () => tf.tidy(() => tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(inputs));
}

export interface PartShare {
  part: string;
  /** ms of one layer's part, forward + backward. */
  ms: number;
  /** Share of a step: LAYERS x ms / step ms. */
  share: number;
}

/**
 * The parts' shares of one AdamW training step (d = hidden, `heads` heads, 4 layers, B = 16, T = 128).
 * Where the backend has the fused attention kernels (native; webgpu) attention is measured twice: with
 * them and on its reference path.
 */
export async function partShares(backend: ConcreteBackend, hidden: number, heads: number, reps: number, rows: Row[]) {
  await startBackend(backend);
  // webgpu starts its attention kernel switched off on a software adapter without subgroups; here it is measured.
  if (backend === 'webgpu') setKernelsEnabled([KERNELS.causalAttention], true);
  const keep: tf.Tensor[] = [];
  try {
    const c = resolveModelConfig({ hiddenSize: hidden, numHeads: heads, numLayers: LAYERS, maxSeqLen: T, vocabSize: 256 });
    const hd = c.headDim;
    const stepMs = await stepTime({ hidden, heads, optimizer: 'adamw' }, reps);
    const hold = (t: tf.Tensor) => (keep.push(t), t);
    const q = hold(randn([B, T, heads, hd], 1));
    const k = hold(randn([B, T, heads, hd], 2));
    const v = hold(randn([B, T, heads, hd], 3));
    const w = hold(randn([B, T, heads, hd], 4));
    const { cos, sin } = ropeTables(T, hd, c.ropeTheta);
    const cos3 = hold(tf.reshape(cos, [T, 1, hd])) as tf.Tensor3D;
    const sin3 = hold(tf.reshape(sin, [T, 1, hd])) as tf.Tensor3D;
    tf.dispose([cos, sin]);
    const gate = hold(randn([B * T, c.intermediateSize], 5));
    const up = hold(randn([B * T, c.intermediateSize], 6));
    const wf = hold(randn([B * T, c.intermediateSize], 7));
    const swigluPart = fwdBwd((g, u) => swigluGate(g!, u!), [gate, up], wf);
    const attention = fwdBwd((a, b, d) => causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D), [q, k, v], w);
    const fusedAttention = hasKernel(KERNELS.causalAttention) && hasKernel(KERNELS.causalAttentionGrad);
    const parts: [string, () => tf.Tensor[]][] = [
      [fusedAttention ? 'attention (fused kernel)' : 'attention', attention],
      [
        hasKernel(KERNELS.rope) ? 'RoPE on q and k (fused kernel)' : 'RoPE on q and k',
        fwdBwd((a, b) => tf.add(rope(a as tf.Tensor4D, cos3, sin3), rope(b as tf.Tensor4D, cos3, sin3)), [q, k], w),
      ],
      [hasKernel(KERNELS.swiglu) ? 'SwiGLU silu(gate) * up (fused kernel)' : 'SwiGLU silu(gate) * up', swigluPart],
    ];
    const out: PartShare[] = [];
    const add = (part: string, ms: number) => out.push({ part, ms, share: (LAYERS * ms) / stepMs });
    for (const [part, f] of parts) add(part, await partTime(f, reps));
    if (fusedAttention) {
      setKernelsEnabled([KERNELS.causalAttention], false);
      try {
        add('attention (reference path)', await partTime(attention, reps));
      } finally {
        setKernelsEnabled([KERNELS.causalAttention], true);
      }
    }

    rows.push([`parts of one step (${backend}, d=${hidden}, ${heads} heads, hd=${hd}, adamw)`, `step ${stepMs.toFixed(1)} ms`, 'share']);
    for (const p of out)
      rows.push([
        `  ${p.part}, ${LAYERS} layers x ${p.ms.toFixed(2)} ms`,
        `${(LAYERS * p.ms).toFixed(1)} ms`,
        `${(100 * p.share).toFixed(1)} %`,
      ]);
    return { stepMs, parts: out };
  } finally {
    tf.dispose(keep);
    await stopBackend();
  }
}

type Pair = { fused: number; reference: number };

export interface FusionGain {
  shape: string;
  /** ms of forward + backward of each part alone, with its fused kernels and on its reference ops. */
  parts: Record<string, Pair>;
  /** ms of one training step with every kernel ('all'), without one part's ('no <part>'), and without any ('none'). */
  step: Record<string, number>;
  /** Peak MiB of live tensors during one step (tf.profile), under each of step's settings. */
  peakMiB: Record<string, number>;
}

/**
 * The fused attention, SwiGLU and RoPE kernels against their reference ops on one backend (native:
 * kernels/native/attention.cc, fused.cc): each part's forward + backward at the bench model's shapes,
 * and one whole AdamW training step with every kernel, without each part's, and without any, all timed
 * in alternating rounds; and the step's peak tensor memory under each of those settings.
 */
export async function fusionGain(backend: ConcreteBackend, hidden: number, heads: number, reps: number, rows: Row[]): Promise<FusionGain> {
  await startBackend(backend);
  const kernels = { attention: KERNELS.causalAttention, SwiGLU: KERNELS.swiglu, RoPE: KERNELS.rope } as const;
  type Part = keyof typeof kernels;
  const all = Object.values(kernels);
  const without = (off: readonly KernelName[]) => {
    setKernelsEnabled(all, true);
    setKernelsEnabled(off, false);
  };
  without([]);
  const keep: tf.Tensor[] = [];
  const runner = stepRunner({ hidden, heads, optimizer: 'adamw' });
  try {
    if (![...all, KERNELS.causalAttentionGrad, KERNELS.swigluGrad, KERNELS.ropeGrad].every(hasKernel)) {
      throw new Error(`fusionGain: ${backend} lacks the fused attention, SwiGLU or RoPE kernels`);
    }
    const c = resolveModelConfig({ hiddenSize: hidden, numHeads: heads, numLayers: LAYERS, maxSeqLen: T, vocabSize: 256 });
    const hd = c.headDim;
    const hold = (t: tf.Tensor) => (keep.push(t), t);
    const [q, k, v, w] = [1, 2, 3, 4].map((seed) => hold(randn([B, T, heads, hd], seed)));
    const [gate, up, wf] = [5, 6, 7].map((seed) => hold(randn([B * T, c.intermediateSize], seed)));
    const { cos, sin } = ropeTables(T, hd, c.ropeTheta);
    const [cos3, sin3] = [cos, sin].map((t) => hold(tf.reshape(t, [T, 1, hd]))) as [tf.Tensor3D, tf.Tensor3D];
    tf.dispose([cos, sin]);
    const shapes: Record<Part, string> = {
      attention: `[${B}, ${T}, ${heads}, ${hd}]`,
      SwiGLU: `[${B * T}, ${c.intermediateSize}]`,
      RoPE: `q and k [${B}, ${T}, ${heads}, ${hd}]`,
    };
    const fns: Record<Part, () => tf.Tensor[]> = {
      attention: fwdBwd((a, b, d) => causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D), [q!, k!, v!], w!),
      SwiGLU: fwdBwd((g, u) => swigluGate(g!, u!), [gate!, up!], wf!),
      RoPE: fwdBwd((a, b) => tf.add(rope(a as tf.Tensor4D, cos3, sin3), rope(b as tf.Tensor4D, cos3, sin3)), [q!, k!], w!),
    };
    const parts = {} as Record<Part, Pair>;
    for (const part of Object.keys(kernels) as Part[]) {
      const timed = async () => {
        const out = fns[part]();
        await Promise.all(out.map((t) => t.data()));
        tf.dispose(out);
      };
      parts[part] = await alternating(
        ['fused', 'reference'] as const,
        (s) => without(s === 'fused' ? [] : [kernels[part]]),
        timed,
        reps * 3,
        2,
      );
    }
    const settings: Record<string, KernelName[]> = { all: [], none: all };
    for (const part of Object.keys(kernels) as Part[]) settings[`no ${part}`] = [kernels[part]];
    const step = await alternating(Object.keys(settings), (s) => without(settings[s]!), runner.step, reps, 2);
    const peakMiB: Record<string, number> = {};
    for (const [name, off] of Object.entries(settings)) {
      without(off);
      const info = await tf.profile(async () => {
        await runner.step();
      });
      peakMiB[name] = info.peakBytes / 2 ** 20;
    }
    rows.push([
      `fused kernels vs reference ops (${backend}, d=${hidden}, ${heads} heads, ${LAYERS} layers, adamw)`,
      'fused / reference',
      'ratio',
    ]);
    const row = (what: string, unit: string, r: Pair, digits: number) =>
      rows.push([
        `  ${what}`,
        `${r.fused.toFixed(digits)} / ${r.reference.toFixed(digits)} ${unit}`,
        `${(r.reference / r.fused).toFixed(2)}x`,
      ]);
    for (const part of Object.keys(kernels) as Part[]) row(`${part} fwd+bwd ${shapes[part]}`, 'ms', parts[part], 2);
    row('training step, every kernel vs none of the three', 'ms', { fused: step.all!, reference: step.none! }, 1);
    for (const part of Object.keys(kernels) as Part[]) {
      row(`training step, every kernel vs all but ${part}'s`, 'ms', { fused: step.all!, reference: step[`no ${part}`]! }, 1);
    }
    row('step peak tensor memory, every kernel vs none of the three', 'MiB', { fused: peakMiB.all!, reference: peakMiB.none! }, 0);
    for (const part of Object.keys(kernels) as Part[]) {
      row(
        `step peak tensor memory, every kernel vs all but ${part}'s`,
        'MiB',
        { fused: peakMiB.all!, reference: peakMiB[`no ${part}`]! },
        0,
      );
    }
    return { shape: shapes.attention, parts, step, peakMiB };
  } finally {
    setKernelsEnabled(all, true);
    runner.dispose();
    tf.dispose(keep);
    await stopBackend();
  }
}
