/**
 * The two sides of scripts/torch-compare.ts and the curves they record: osp-lab's (a `train` callback,
 * Recorder, which also checks that the model starts from the dumped weights) and PyTorch's
 * (bench/torch_reference.py's training mode in a child process, runTorch), both as a Side; and the check
 * that a --save-hf directory holds, bit for bit, the final weights PyTorch hashed (checkSavedHf).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { openModelSource } from '../../src/export/checkpoint.ts';
import type { Weights } from '../../src/model/fold.ts';
import type { AdamW } from '../../src/optim/adamw.ts';
import type { Callback, TrainContext } from '../../src/train/callback.ts';

export interface KurtosisPoint {
  aggregate: number;
  perTap: Record<string, number>;
}

/** One side's run: per-step curves (index i = step i + 1) and the kurtosis by completed step. */
export interface Side {
  loss: number[];
  gradNorm: number[];
  lrFactor: number[];
  kurtosis: Record<string, KurtosisPoint>;
  wallSeconds: number;
}

/** One side's curves as recorded, with the wall time since `t0` (performance.now()). */
export function sideOf(r: Omit<Side, 'wallSeconds'>, t0: number): Side {
  return { loss: r.loss, gradNorm: r.gradNorm, lrFactor: r.lrFactor, kurtosis: r.kurtosis, wallSeconds: (performance.now() - t0) / 1000 };
}

/** Records osp-lab's per-step metrics, and checks at train start that the model holds the dumped weights. */
export class Recorder implements Callback {
  readonly name = 'torch_compare';
  loss: number[] = [];
  gradNorm: number[] = [];
  lrFactor: number[] = [];
  kurtosis: Record<string, KurtosisPoint> = {};
  assignment: Record<string, string> = {};
  decays: Record<string, boolean> = {};
  initMaxAbsDiff = NaN;

  constructor(private readonly init: Weights) {}

  async onTrainStart(ctx: TrainContext): Promise<void> {
    const names = [...ctx.model.params.keys()];
    if (names.join() !== [...this.init.keys()].join())
      throw new Error(`parameter names differ: ${names.join()} vs ${[...this.init.keys()].join()}`);
    let max = 0;
    for (const [name, p] of ctx.model.params) {
      const v = (await p.data()) as Float32Array;
      const w = this.init.get(name)!.data;
      for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]! - w[i]!));
    }
    this.initMaxAbsDiff = max;
    for (const [name, which] of ctx.optimizer.assignment) {
      this.assignment[name] = which;
      if (which === 'adamw') this.decays[name] = (ctx.optimizer.group('adamw') as AdamW).decays(name);
    }
  }

  onStepEnd(ctx: TrainContext): void {
    const m = ctx.metrics;
    this.loss.push(m.get('train/loss') ?? NaN);
    this.gradNorm.push(m.get('train/grad_norm') ?? NaN);
    this.lrFactor.push(m.get('train/lr_factor') ?? NaN);
    const k = m.get('outliers/osp_kurtosis');
    if (k !== undefined) {
      const perTap: Record<string, number> = {};
      for (const [key, v] of m.entries()) {
        const tap = /^outliers\/(.+)\/osp_kurtosis$/.exec(key)?.[1];
        if (tap) perTap[tap] = v;
      }
      this.kurtosis[String(ctx.step)] = { aggregate: k, perTap };
    }
  }
}

export interface TorchResult {
  loss: number[];
  gradNorm: number[];
  lrFactor: number[];
  kurtosis: Record<string, KurtosisPoint>;
  assignment: Record<string, string>;
  decays: Record<string, boolean>;
  wallSeconds: number;
  stepMsMedian: number;
  threads: number;
  torch: string;
  /** With --save-hf: the directory, and each tensor's shape and SHA-256 of its float32 bytes. */
  savedHf?: { dir: string; tensors: Record<string, { shape: number[]; sha256: string }> };
}

/**
 * Reads a --save-hf directory back as osp commands do (openModelSource) and checks that it holds exactly
 * the tensors PyTorch hashed, bit for bit; returns a one-line description.
 */
export function checkSavedHf(saved: NonNullable<TorchResult['savedHf']>): string {
  const source = openModelSource(saved.dir);
  const names = [...source.weights.keys()];
  if (names.join() !== Object.keys(saved.tensors).join()) {
    throw new Error(`${saved.dir}: osp-lab reads tensors ${names.join()}, PyTorch saved ${Object.keys(saved.tensors).join()}`);
  }
  let values = 0;
  for (const [name, w] of source.weights) {
    const want = saved.tensors[name]!;
    const got = createHash('sha256')
      .update(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength))
      .digest('hex');
    if (w.shape.join() !== want.shape.join() || got !== want.sha256) {
      throw new Error(`${saved.dir}: tensor '${name}' as osp-lab reads it [${w.shape}] differs from PyTorch's final one [${want.shape}]`);
    }
    values += w.data.length;
  }
  return `${saved.dir}: ${names.length} tensors (${values} values), read back by osp-lab bit-identical to PyTorch's final weights`;
}

/** Runs bench/torch_reference.py's training mode; returns its result and its wall time (process start included). */
export function runTorch(python: string, threads: number, args: string[], out: string): { result: TorchResult; side: Side } {
  const t0 = performance.now();
  const res = spawnSync(python, ['bench/torch_reference.py', ...args, '--threads', String(threads), '--out', out], {
    stdio: ['ignore', 'inherit', 'inherit'],
    // One BLAS thread per torch thread: OpenBLAS's own pool on top of torch's oversubscribes the cores.
    env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
  });
  if (res.status !== 0) {
    throw new Error(`${python} bench/torch_reference.py failed (status ${res.status}${res.error ? `, ${res.error.message}` : ''})`);
  }
  const result = JSON.parse(readFileSync(out, 'utf8')) as TorchResult;
  const side = sideOf(result, t0);
  return { result, side };
}
