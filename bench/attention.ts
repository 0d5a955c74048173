/**
 * Where a training step's time goes among the parts a fused kernel could replace: attention itself
 * (scores, mask, softmax, product; or the fused kernel on webgpu), RoPE on q and k, and SwiGLU's
 * elementwise silu(gate) * up, each forward + backward at the bench model's shapes, times the layer
 * count, against one whole training step on the same backend in the same process. A part's share
 * bounds what fusing it can gain (Amdahl): fusing a part that takes 5% of a step saves at most 5%.
 *
 *   npx tsx bench/run.ts --only parts [--backend native|wasm|webgpu]
 */
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type ConcreteBackend } from '../src/backend/index.ts';
import { resolveModelConfig } from '../src/model/config.ts';
import { applyRope, ropeTables } from '../src/model/layers.ts';
import { swigluGate } from '../src/ops/swiglu.ts';
import { causalAttention } from '../src/ops/attention.ts';
import { hasKernel, KERNELS, setKernelsEnabled } from '../src/ops/dispatch.ts';
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
  // webgpu starts its attention kernel switched off on a software adapter; here it is measured.
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
        'RoPE on q and k',
        fwdBwd((a, b) => tf.add(applyRope(a as tf.Tensor4D, cos3, sin3), applyRope(b as tf.Tensor4D, cos3, sin3)), [q, k], w),
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
    if (hasKernel(KERNELS.swiglu)) {
      setKernelsEnabled([KERNELS.swiglu], false);
      try {
        add('SwiGLU silu(gate) * up (reference ops)', await partTime(swigluPart, reps));
      } finally {
        setKernelsEnabled([KERNELS.swiglu], true);
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
  /** ms of forward + backward of the part alone, with its fused kernels and on its reference ops. */
  attention: Pair;
  swiglu: Pair;
  /** ms of one training step with every kernel (fused) against the step without one or both of the two. */
  step: { fused: number; noAttention: number; noSwiglu: number; neither: number };
  /** Peak MiB of live tensors during one step (tf.profile), with and without the attention kernel. */
  peakMiB: Pair;
}

/**
 * The fused attention and SwiGLU kernels against their reference ops on one backend (native:
 * kernels/native/attention.cc, fused.cc): each part's forward + backward at the bench model's shapes,
 * and one whole AdamW training step with both, without one, and without either, all timed in
 * alternating rounds; and the step's peak tensor memory with and without the attention kernel.
 */
export async function fusionGain(backend: ConcreteBackend, hidden: number, heads: number, reps: number, rows: Row[]): Promise<FusionGain> {
  await startBackend(backend);
  const both = [KERNELS.causalAttention, KERNELS.swiglu];
  setKernelsEnabled(both, true);
  const keep: tf.Tensor[] = [];
  const runner = stepRunner({ hidden, heads, optimizer: 'adamw' });
  const only = (name: (typeof both)[number]) => (s: 'fused' | 'reference') => {
    setKernelsEnabled(both, true);
    setKernelsEnabled([name], s === 'fused');
  };
  try {
    if (![...both, KERNELS.causalAttentionGrad, KERNELS.swigluGrad].every(hasKernel)) {
      throw new Error(`fusionGain: ${backend} lacks the fused attention or SwiGLU kernels`);
    }
    const c = resolveModelConfig({ hiddenSize: hidden, numHeads: heads, numLayers: LAYERS, maxSeqLen: T, vocabSize: 256 });
    const hd = c.headDim;
    const hold = (t: tf.Tensor) => (keep.push(t), t);
    const [q, k, v, w] = [1, 2, 3, 4].map((seed) => hold(randn([B, T, heads, hd], seed)));
    const [gate, up, wf] = [5, 6, 7].map((seed) => hold(randn([B * T, c.intermediateSize], seed)));
    const timed = (f: () => tf.Tensor[]) => async () => {
      const out = f();
      await Promise.all(out.map((t) => t.data()));
      tf.dispose(out);
    };
    const pair = ['fused', 'reference'] as const;
    const attention = await alternating(
      pair,
      only(KERNELS.causalAttention),
      timed(fwdBwd((a, b, d) => causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D), [q!, k!, v!], w!)),
      reps * 3,
      2,
    );
    const swiglu = await alternating(pair, only(KERNELS.swiglu), timed(fwdBwd((g, u) => swigluGate(g!, u!), [gate!, up!], wf!)), reps * 3, 2);
    const settings = { fused: [], noAttention: [KERNELS.causalAttention], noSwiglu: [KERNELS.swiglu], neither: both } as const;
    const step = await alternating(
      Object.keys(settings) as (keyof typeof settings)[],
      (s) => {
        setKernelsEnabled(both, true);
        setKernelsEnabled(settings[s], false);
      },
      runner.step,
      reps,
      2,
    );
    const peak = async (s: 'fused' | 'reference') => {
      only(KERNELS.causalAttention)(s);
      const info = await tf.profile(async () => {
        await runner.step();
      });
      return info.peakBytes / 2 ** 20;
    };
    const peakMiB = { fused: await peak('fused'), reference: await peak('reference') };
    const shape = `[${B}, ${T}, ${heads}, ${hd}]`;
    rows.push([`fused attention and SwiGLU vs reference ops (${backend}, d=${hidden}, ${heads} heads, ${LAYERS} layers)`, 'fused / reference', 'ratio']);
    const row = (what: string, unit: string, r: Pair, digits: number) =>
      rows.push([`  ${what}`, `${r.fused.toFixed(digits)} / ${r.reference.toFixed(digits)} ${unit}`, `${(r.reference / r.fused).toFixed(2)}x`]);
    row(`attention fwd+bwd ${shape}`, 'ms', attention, 2);
    row(`SwiGLU silu(gate) * up fwd+bwd [${B * T}, ${c.intermediateSize}]`, 'ms', swiglu, 2);
    row('training step (adamw), both vs neither', 'ms', { fused: step.fused, reference: step.neither }, 1);
    row('training step, both vs all but attention', 'ms', { fused: step.fused, reference: step.noAttention }, 1);
    row('training step, both vs all but SwiGLU', 'ms', { fused: step.fused, reference: step.noSwiglu }, 1);
    row('step peak tensor memory, attention kernel vs not', 'MiB', peakMiB, 0);
    return { shape, attention, swiglu, step, peakMiB };
  } finally {
    setKernelsEnabled(both, true);
    runner.dispose();
    tf.dispose(keep);
    await stopBackend();
  }
}
