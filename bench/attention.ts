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
import { KERNELS, setKernelsEnabled } from '../src/ops/dispatch.ts';
import { Rng } from '../src/utils/rng.ts';
import { B, stepTime, T, type Row } from './speed.ts';

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
 * On webgpu attention is measured twice: with the fused kernel and on its reference path.
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
    const parts: [string, () => tf.Tensor[]][] = [
      [backend === 'webgpu' ? 'attention (fused kernel)' : 'attention', attention],
      [
        'RoPE on q and k',
        fwdBwd((a, b) => tf.add(applyRope(a as tf.Tensor4D, cos3, sin3), applyRope(b as tf.Tensor4D, cos3, sin3)), [q, k], w),
      ],
      ['SwiGLU silu(gate) * up', fwdBwd((g, u) => tf.mul(silu(g!), u!), [gate, up], wf)],
    ];
    const out: PartShare[] = [];
    const add = (part: string, ms: number) => out.push({ part, ms, share: (LAYERS * ms) / stepMs });
    for (const [part, f] of parts) add(part, await partTime(f, reps));
    if (backend === 'webgpu') {
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
