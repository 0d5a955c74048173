/**
 * Fused WGSL kernels (kernels/wgsl) against the ops' plain-tfjs reference paths, both on the webgpu
 * backend in the same process: one row per kernel at the shapes of the bench model, plus one whole
 * training step (forward, backward, Muon + AdamW update) with every kernel on against every kernel
 * off (setKernelsEnabled('all', false), which includes the software adapters' BatchMatMul). On a
 * software adapter the BatchMatMul rows compare batch_matmul.wgsl with tfjs's own kernel at the
 * model's product shapes (GFLOP/s printed as well).
 *
 * tfjs-webgpu is asynchronous: a timed run queues `inner` calls and then waits for the last output
 * with `await t.data()`, so the host-device round trip is paid once per run; after `warmup` runs
 * (pipeline compilation, buffer pools) the median of `reps` runs is reported, per call.
 *
 * On Mesa's lavapipe (a software Vulkan adapter running the shaders on the CPU) ratios say how much
 * memory traffic and dispatch overhead the fusion removes on that adapter; they are not GPU ratios.
 *
 *   npx tsx bench/kernels_webgpu.ts [--quick] [--hidden-size D] [--heads H]
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { currentBackend, startBackend, stopBackend } from '../src/backend/index.ts';
import { resolveModelConfig } from '../src/model/config.ts';
import { createModel } from '../src/model/transformer.ts';
import { adamwUpdate, adamwUpdateMulti, type AdamWSlotUpdate } from '../src/ops/adamw_update.ts';
import { causalAttention } from '../src/ops/attention.ts';
import { channelMoments } from '../src/ops/channel_moments.ts';
import { crossEntropyBackwardReference, crossEntropyRowsReference } from '../src/ops/cross_entropy.ts';
import { hasKernel, KERNELS, setKernelsEnabled, type KernelName } from '../src/ops/dispatch.ts';
import { newtonSchulz } from '../src/ops/newton_schulz.ts';
import { rmsNorm, rmsNormBackwardReference } from '../src/ops/rms_norm.ts';
import { softmaxGradReference } from '../src/ops/softmax_grad.ts';
import { createOptimizer } from '../src/optim/routing.ts';
import { trainStep } from '../src/train/step.ts';
import { Rng } from '../src/utils/rng.ts';

export interface KernelBenchRow {
  kernel: string;
  shape: string;
  /** What fused and reference measure: ms per call (median), or the peak MiB of live tensors. */
  unit: 'ms' | 'MiB';
  /** With the fused kernel. */
  fused: number;
  /** On the reference path (plain tfjs ops) on the same backend. */
  reference: number;
  /** reference / fused: above 1 the kernel is faster (or needs less memory). */
  ratio: number;
  /** Floating-point operations per call, where counted (matrix products): GFLOP/s = flop / ms / 1e6. */
  flop?: number;
}

/**
 * The bench model: by default d = 128, 4 layers, 4 heads, T = 128, B = 16 (configs/tiny.json at batch
 * 16); `hiddenSize` and `numHeads` can be set (scripts/gpu-bench.sh runs d = 256 and 512).
 */
const BASE_MODEL = { hiddenSize: 128, numLayers: 4, numHeads: 4, maxSeqLen: 128, norm: 'ssnorm', embedding: 'embproj' } as const;
const B = 16;
const T = 128;
const VOCAB = 258;

function randn(shape: number[], seed: number, std = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from(new Rng(seed).normals(n, std)), shape);
}

function randInts(shape: number[], max: number, seed: number): tf.Tensor {
  const r = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Int32Array.from({ length: n }, () => r.int(max)),
    shape,
    'int32',
  );
}

interface Timing {
  warmup: number;
  reps: number;
  inner: number;
}

/**
 * One timed run: `inner` queued calls of f (which returns the tensors it created; all are disposed),
 * then the last call's outputs read back. Returns ms per call.
 */
export async function queuedRun(f: () => tf.Tensor[], inner: number): Promise<number> {
  const t0 = performance.now();
  let last: tf.Tensor[] = [];
  for (let i = 0; i < inner; i++) {
    tf.dispose(last);
    last = f();
  }
  await Promise.all(last.map((x) => x.data()));
  tf.dispose(last);
  return (performance.now() - t0) / inner;
}

/** Median ms per call of f (which returns the tensors it created; all are disposed). */
async function timePerCall(f: () => tf.Tensor[], t: Timing): Promise<number> {
  for (let i = 0; i < t.warmup; i++) await queuedRun(f, t.inner);
  const ms: number[] = [];
  for (let i = 0; i < t.reps; i++) ms.push(await queuedRun(f, t.inner));
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)]!;
}

async function row(
  kernel: string,
  shape: string,
  fused: () => tf.Tensor[],
  reference: () => tf.Tensor[],
  t: Timing,
): Promise<KernelBenchRow> {
  const fusedMs = await timePerCall(fused, t);
  const referenceMs = await timePerCall(reference, t);
  return { kernel, shape, unit: 'ms', fused: fusedMs, reference: referenceMs, ratio: referenceMs / fusedMs };
}

/** Runs f with one kernel switched off (the op takes its reference path). */
function without<T>(name: KernelName, f: () => T): () => T {
  return () => {
    setKernelsEnabled([name], false);
    try {
      return f();
    } finally {
      setKernelsEnabled([name], true);
    }
  };
}

/**
 * Fused vs reference timings on the webgpu backend. Starts webgpu (and afterwards restarts the
 * backend that was running before, if any).
 */
export async function benchWebgpuKernels(
  opts: { quick?: boolean; hiddenSize?: number; numHeads?: number } = {},
): Promise<KernelBenchRow[]> {
  const MODEL = { ...BASE_MODEL, hiddenSize: opts.hiddenSize ?? BASE_MODEL.hiddenSize, numHeads: opts.numHeads ?? BASE_MODEL.numHeads };
  const previous = currentBackend();
  await startBackend('webgpu');
  const t: Timing = opts.quick ? { warmup: 1, reps: 3, inner: 3 } : { warmup: 2, reps: 7, inner: 5 };
  const rows: KernelBenchRow[] = [];
  const keep: tf.Tensor[] = [];
  const hold = <X extends tf.Tensor>(x: X): X => {
    keep.push(x);
    return x;
  };
  try {
    setKernelsEnabled('all', true);
    const N = B * T;
    const d = MODEL.hiddenSize;
    const eps = 1e-6;

    // RMSNorm / SSNorm over the residual stream [B*T, d].
    const h = hold(randn([N, d], 1));
    const w = hold(tf.add(randn([d], 2, 0.1), 1));
    const s = hold(tf.tensor1d([1.2]));
    const dy = hold(randn([N, d], 3));
    for (const [label, weight] of [
      ['[d]', w],
      ['[1]', s],
    ] as const) {
      rows.push(
        await row(
          `${KERNELS.rmsNorm} weight ${label}`,
          `[${N}, ${d}]`,
          () => [rmsNorm(h, weight, eps)],
          without(KERNELS.rmsNorm, () => [rmsNorm(h, weight, eps)]),
          t,
        ),
      );
      rows.push(
        await row(
          `${KERNELS.rmsNormGrad} weight ${label}`,
          `[${N}, ${d}]`,
          () => tf.engine().runKernel(KERNELS.rmsNormGrad, { dy, x: h, weight }, { eps }) as tf.Tensor[],
          () => rmsNormBackwardReference(dy, h, weight, eps),
          t,
        ),
      );
    }

    // Cross-entropy over the logits [B*T, V].
    const logits = hold(randn([N, VOCAB], 4, 2)) as tf.Tensor2D;
    const targets = hold(randInts([N], VOCAB, 5)) as tf.Tensor1D;
    const dloss = hold(tf.fill([N], 1 / N)) as tf.Tensor1D;
    rows.push(
      await row(
        KERNELS.crossEntropy,
        `[${N}, ${VOCAB}]`,
        () => [tf.engine().runKernel(KERNELS.crossEntropy, { logits, targets }, {}) as tf.Tensor],
        () => [crossEntropyRowsReference(logits, targets)],
        t,
      ),
    );
    rows.push(
      await row(
        KERNELS.crossEntropyGrad,
        `[${N}, ${VOCAB}]`,
        () => [tf.engine().runKernel(KERNELS.crossEntropyGrad, { dloss, logits, targets }, {}) as tf.Tensor],
        () => [crossEntropyBackwardReference(dloss, logits, targets)],
        t,
      ),
    );

    // AdamW on the embedding matrix [V, d] and an MLP matrix [4d, d].
    for (const shape of [
      [VOCAB, d],
      [4 * d, d],
    ]) {
      const [p, g, m] = [hold(randn(shape, 6)), hold(randn(shape, 7)), hold(randn(shape, 8, 0.1))];
      const v = hold(tf.square(randn(shape, 9, 0.1)));
      const attrs = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1 - 3e-5, bc1: 0.5, bc2Sqrt: 0.3 };
      const call = () => {
        const u = adamwUpdate(p, g, m, v, attrs);
        return [u.param, u.expAvg, u.expAvgSq];
      };
      rows.push(await row(KERNELS.adamwUpdate, `[${shape}]`, call, without(KERNELS.adamwUpdate, call), t));
    }

    // The AdamW group of the bench model's optimizer (Muon + AdamW; then every parameter on AdamW) in one
    // multi-tensor update, in place, against one OspAdamWUpdate (three programs) per parameter.
    {
      const model = createModel({ ...MODEL, vocabSize: VOCAB }, { seed: 0 });
      const groups: [string, unknown][] = [
        ['Muon + AdamW', { muon: {}, adamw: {} }],
        ['all AdamW', { routing: [{ match: '*', optimizer: 'adamw' }] }],
      ];
      for (const [label, config] of groups) {
        const optimizer = createOptimizer(config, model);
        const shapes = [...model.params].filter(([n]) => optimizer.assignment.get(n) === 'adamw').map(([, p]) => p.shape);
        optimizer.dispose();
        const attrs = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1 - 3e-5, bc1: 0.5, bc2Sqrt: 0.3 };
        // A variable that alone holds its data (the update would otherwise copy it first, once).
        const own = (x: tf.Tensor, trainable = true) => {
          const v = tf.variable(x, trainable);
          x.dispose();
          return hold(v);
        };
        const slots: AdamWSlotUpdate[] = shapes.map((shape, i) => ({
          param: own(randn(shape, 30 + i)),
          grad: hold(randn(shape, 31 + i)),
          expAvg: own(randn(shape, 32 + i, 0.1), false),
          expAvgSq: own(
            tf.tidy(() => tf.square(randn(shape, 33 + i, 0.1))),
            false,
          ),
          attrs,
        }));
        const last = slots[slots.length - 1]!.param;
        const call = () => {
          adamwUpdateMulti(slots);
          return [tf.clone(last)];
        };
        const elements = shapes.reduce((a, sh) => a + sh.reduce((x, y) => x * y, 1), 0);
        const r = await row(
          KERNELS.adamwUpdateMulti,
          `${label}: ${shapes.length} params, ${elements} elements`,
          call,
          without(KERNELS.adamwUpdateMulti, call),
          t,
        );
        rows.push({ ...r, kernel: `${KERNELS.adamwUpdateMulti} vs ${KERNELS.adamwUpdate} per param` });
      }
      model.dispose();
    }

    // Newton-Schulz (5 quintic steps) on attention [d, d] and MLP [4d, d] matrices.
    for (const shape of [
      [d, d],
      [4 * d, d],
    ]) {
      const gm = hold(randn(shape, 10, 0.02)) as tf.Tensor2D;
      const call = () => [newtonSchulz(gm, { steps: 5, coefficients: 'quintic' })];
      rows.push(await row(KERNELS.newtonSchulz, `[${shape}], 5 steps`, call, without(KERNELS.newtonSchulz, call), t));
    }

    // Channel moments of one residual-stream tap [B*T, d].
    {
      const call = () => {
        const r = channelMoments(h as tf.Tensor2D);
        return [r.token, r.channel];
      };
      rows.push(await row(KERNELS.channelMoments, `[${N}, ${d}]`, call, without(KERNELS.channelMoments, call), t));
    }

    // Softmax gradient over the attention probabilities [B, H, T, T].
    {
      const shape = [B, MODEL.numHeads, T, T];
      const probs = hold(tf.softmax(randn(shape, 13)));
      const dp = hold(randn(shape, 14));
      rows.push(
        await row(
          KERNELS.softmaxGrad,
          `[${shape}]`,
          () => [tf.engine().runKernel(KERNELS.softmaxGrad, { dy: dp, y: probs }, {}) as tf.Tensor],
          () => [softmaxGradReference(dp, probs)],
          t,
        ),
      );
    }

    // Causal attention at the model's shapes, q [B, T, H, hd], k, v alike: the fused kernels
    // (online softmax; backward from the saved log-sum-exp) against the reference path (scores, mask,
    // softmax, product as plain tfjs ops, with OspSoftmaxGrad and batch_matmul.wgsl where registered).
    {
      const H = MODEL.numHeads;
      const hd = d / H;
      const shape = [B, T, H, hd];
      const [q, k, v, w] = [15, 16, 17, 18].map((seed) => hold(randn(shape, seed) as tf.Tensor4D));
      const forward = () => [causalAttention(q!, k!, v!)];
      const both = () =>
        tf.tidy(() =>
          tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
            tf.sum(tf.mul(causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D), w!)),
          )([q!, k!, v!]),
        );
      rows.push(await row(`${KERNELS.causalAttention} (forward)`, `[${shape}]`, forward, without(KERNELS.causalAttention, forward), t));
      rows.push(
        await row(`${KERNELS.causalAttention} (forward + backward)`, `[${shape}]`, both, without(KERNELS.causalAttention, both), t),
      );
    }

    // BatchMatMul on a software adapter: batch_matmul.wgsl against tfjs's own kernel (the
    // OspBatchMatMul switch) at the model's product shapes: projections x W^T, the MLP's gate/up
    // product (intermediate size 352), a weight gradient dy^T x, and the attention products.
    if (hasKernel(KERNELS.batchMatMul)) {
      const H = MODEL.numHeads;
      const hd = d / H;
      const F = resolveModelConfig({ ...MODEL, vocabSize: VOCAB }).intermediateSize;
      const cases: [number[], number[], boolean, boolean][] = [
        [[N, d], [d, d], false, true],
        [[N, d], [F, d], false, true],
        [[N, F], [N, d], true, false],
        [[B * H, T, hd], [B * H, T, hd], false, true],
        [[B * H, T, T], [B * H, T, hd], false, false],
      ];
      for (const [sa, sb, ta, tb] of cases) {
        const [a, b] = [hold(randn(sa, 20 + sa.length)), hold(randn(sb, 21 + sb[0]!))];
        const K = ta ? sa[sa.length - 2]! : sa[sa.length - 1]!;
        const outer = [...sa.slice(0, -2), ta ? sa[sa.length - 1]! : sa[sa.length - 2]!, tb ? sb[sb.length - 2]! : sb[sb.length - 1]!];
        const call = () => [tf.matMul(a, b, ta, tb)];
        const r = await row(
          'BatchMatMul',
          `[${sa}]${ta ? '^T' : ''} x [${sb}]${tb ? '^T' : ''}`,
          call,
          without(KERNELS.batchMatMul, call),
          t,
        );
        rows.push({ ...r, flop: 2 * K * outer.reduce((x, y) => x * y, 1) });
      }
    }

    // One whole training step of the bench model, every kernel on vs every kernel off.
    {
      const model = createModel({ ...MODEL, vocabSize: VOCAB }, { seed: 0 });
      const optimizer = createOptimizer({ muon: { lr: 0.01, weightDecay: 0.01 }, adamw: { lr: 0.003, weightDecay: 0.01 } }, model);
      const x = hold(randInts([B, T], VOCAB, 11)) as tf.Tensor2D;
      const y = hold(randInts([B, T], VOCAB, 12)) as tf.Tensor2D;
      const stepTiming: Timing = opts.quick ? { warmup: 1, reps: 3, inner: 1 } : { warmup: 2, reps: 5, inner: 1 };
      // Three settings, timed in alternating rounds (one step each) so that a change of the machine's load
      // hits all three alike: every kernel on, every kernel but attention's, every kernel off.
      const settings: [string, () => void][] = [
        ['fused', () => setKernelsEnabled('all', true)],
        ['noAttention', () => (setKernelsEnabled('all', true), setKernelsEnabled([KERNELS.causalAttention], false))],
        ['reference', () => setKernelsEnabled('all', false)],
      ];
      const times = new Map<string, number[]>(settings.map(([name]) => [name, []]));
      for (let i = 0; i < stepTiming.warmup + stepTiming.reps; i++) {
        for (const [name, apply] of settings) {
          apply();
          const t0 = performance.now();
          await trainStep(model, optimizer, x, y);
          if (i >= stepTiming.warmup) times.get(name)!.push(performance.now() - t0);
        }
      }
      const medianOf = (name: string) => {
        const ms = times.get(name)!.sort((p, q) => p - q);
        return ms[Math.floor(ms.length / 2)]!;
      };
      // Peak bytes of live tensors during one step (tf.profile).
      const peak = async (apply: () => void) => {
        apply();
        return (await tf.profile(() => trainStep(model, optimizer, x, y))).peakBytes;
      };
      const label = `d=${d}, ${MODEL.numLayers} layers, B=${B}, T=${T}, V=${VOCAB}`;
      const [fusedMs, noAttentionMs, referenceMs] = ['fused', 'noAttention', 'reference'].map(medianOf) as [number, number, number];
      const fusedPeak = await peak(settings[0]![1]);
      const noAttentionPeak = await peak(settings[1]![1]);
      setKernelsEnabled('all', true);
      const stepRow = (kernel: string, unit: 'ms' | 'MiB', fused: number, reference: number): KernelBenchRow => ({
        kernel,
        shape: label,
        unit,
        fused,
        reference,
        ratio: reference / fused,
      });
      rows.push(stepRow('training step (all kernels)', 'ms', fusedMs, referenceMs));
      rows.push(stepRow('training step (attention kernel vs all but it)', 'ms', fusedMs, noAttentionMs));
      rows.push(
        stepRow('training step peak memory (attention kernel vs all but it)', 'MiB', fusedPeak / 2 ** 20, noAttentionPeak / 2 ** 20),
      );
      optimizer.dispose();
      model.dispose();
    }
    return rows;
  } finally {
    setKernelsEnabled('all', true);
    tf.dispose(keep);
    await stopBackend();
    if (previous && previous.name !== 'webgpu') await startBackend(previous.name);
  }
}

/** Markdown table of the rows. */
export function formatKernelTable(rows: readonly KernelBenchRow[]): string {
  const lines = ['| kernel | shape | fused | reference | ratio |', '|---|---|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(
      `| ${r.kernel} | ${r.shape} | ${r.fused.toFixed(3)} ${r.unit} | ${r.reference.toFixed(3)} ${r.unit} | ${r.ratio.toFixed(2)}x |`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, 'hidden-size': { type: 'string' }, heads: { type: 'string' } },
  });
  const int = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`--${flag} must be a positive integer, got '${v}'`);
    return Number(v);
  };
  const info = await startBackend('webgpu');
  console.log(`webgpu adapter: ${info.detail}${info.softwareAdapter ? ' (software)' : ''}`);
  const rows = await benchWebgpuKernels({
    quick: values.quick,
    hiddenSize: int('hidden-size', values['hidden-size']),
    numHeads: int('heads', values.heads),
  });
  console.log(formatKernelTable(rows));
  const products = rows.filter((r) => r.flop !== undefined);
  if (products.length > 0) {
    console.log('\n| product | ours GFLOP/s | tfjs GFLOP/s |\n|---|---:|---:|');
    for (const r of products)
      console.log(`| ${r.shape} | ${(r.flop! / r.fused / 1e6).toFixed(2)} | ${(r.flop! / r.reference / 1e6).toFixed(2)} |`);
  }
}
