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
import { applyRope, ropeTables, silu } from '../src/model/layers.ts';
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
    const attention = fwdBwd((a, b, d) => causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D), [q, k, v], w);
    const fusedAttention = hasKernel(KERNELS.causalAttention) && hasKernel(KERNELS.causalAttentionGrad);
    const parts: [string, () => tf.Tensor[]][] = [
      [fusedAttention ? 'attention (fused kernel)' : 'attention', attention],
      [
        'RoPE on q and k',
        fwdBwd((a, b) => tf.add(applyRope(a as tf.Tensor4D, cos3, sin3), applyRope(b as tf.Tensor4D, cos3, sin3)), [q, k], w),
      ],
      ['SwiGLU silu(gate) * up', fwdBwd((g, u) => tf.mul(silu(g!), u!), [gate, up], wf)],
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

export interface AttentionGain {
  shape: string;
  /** ms of attention forward + backward, and of one training step: with the fused kernels, and without. */
  attention: { fused: number; reference: number };
  step: { fused: number; reference: number };
  /** Peak MiB of live tensors during one step (tf.profile), with and without. */
  peakMiB: { fused: number; reference: number };
}

/**
 * The fused attention kernels against the reference path on one backend (native: kernels/native/attention.cc):
 * attention forward + backward at the bench model's shapes and one whole AdamW training step, each timed
 * in alternating rounds with the kernel on and off, and the step's peak tensor memory with and without.
 */
export async function attentionGain(backend: ConcreteBackend, hidden: number, heads: number, reps: number, rows: Row[]): Promise<AttentionGain> {
  await startBackend(backend);
  setKernelsEnabled([KERNELS.causalAttention], true);
  const keep: tf.Tensor[] = [];
  const runner = stepRunner({ hidden, heads, optimizer: 'adamw' });
  const settings = ['fused', 'reference'] as const;
  const apply = (s: 'fused' | 'reference') => setKernelsEnabled([KERNELS.causalAttention], s === 'fused');
  try {
    if (!hasKernel(KERNELS.causalAttention) || !hasKernel(KERNELS.causalAttentionGrad)) {
      throw new Error(`attentionGain: ${backend} has no fused attention kernels`);
    }
    const hd = hidden / heads;
    const hold = (t: tf.Tensor) => (keep.push(t), t);
    const [q, k, v, w] = [1, 2, 3, 4].map((seed) => hold(randn([B, T, heads, hd], seed)));
    const f = fwdBwd((a, b, d) => causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, d as tf.Tensor4D), [q!, k!, v!], w!);
    const once = async () => {
      const out = f();
      await Promise.all(out.map((t) => t.data()));
      tf.dispose(out);
    };
    const attention = await alternating(settings, apply, once, reps * 3, 2);
    const step = await alternating(settings, apply, runner.step, reps, 2);
    const peak = async (s: 'fused' | 'reference') => {
      apply(s);
      const info = await tf.profile(async () => {
        await runner.step();
      });
      return info.peakBytes / 2 ** 20;
    };
    const peakMiB = { fused: await peak('fused'), reference: await peak('reference') };
    const shape = `[${B}, ${T}, ${heads}, ${hd}]`;
    rows.push([`fused attention vs reference path (${backend}, d=${hidden}, ${heads} heads, 4 layers)`, 'fused / reference', 'ratio']);
    const row = (what: string, unit: string, r: { fused: number; reference: number }, digits: number) =>
      rows.push([`  ${what}`, `${r.fused.toFixed(digits)} / ${r.reference.toFixed(digits)} ${unit}`, `${(r.reference / r.fused).toFixed(2)}x`]);
    row(`attention fwd+bwd ${shape}`, 'ms', attention, 2);
    row('training step (adamw)', 'ms', step, 1);
    row('step peak tensor memory', 'MiB', peakMiB, 0);
    return { shape, attention, step, peakMiB };
  } finally {
    setKernelsEnabled([KERNELS.causalAttention], true);
    runner.dispose();
    tf.dispose(keep);
    await stopBackend();
  }
}
