/**
 * The Hessian probe's work, as a plain async function over plain data, so it can run in a worker
 * thread (src/metrics/probe_worker.mjs, through comlink) while the main thread keeps training, or
 * in-process (osp analyze, tests). It starts its own backend, rebuilds the model from the config and
 * a weight snapshot, and analyses the Hessian of the loss on one fixed batch.
 */
import * as tf from '@tensorflow/tfjs';
import { startBackend } from '../backend/index.ts';
import { resolveModelConfig } from '../model/config.ts';
import { Transformer } from '../model/transformer.ts';
import { compilePattern } from '../optim/optimizer.ts';
import { Rng } from '../utils/rng.ts';
import { ConfigError } from '../errors.ts';
import { hessianOperator } from './hessian.ts';
import { analyzeSpectrum } from './lanczos.ts';

export interface ProbeRequest {
  /** Backend for the probe (a worker starts its own). */
  backend: string;
  model: unknown;
  /** Parameter values by name (Float32Array buffers; transferred, not copied, to a worker). */
  weights: Record<string, Float32Array>;
  inputs: Int32Array;
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
  topk: number;
  lanczosSteps: number;
  traceProbes: number;
  density: boolean;
  /** Glob or /regex/ over parameter names. */
  params: string;
  method: 'auto' | 'exact' | 'fd';
  seed: number;
  /** The outlier rule's window (top Ritz values it looks at); default: analyzeSpectrum's. */
  outlierWindow?: number;
}

export interface ProbeResult {
  /** Top eigenvalues, descending. */
  topk: number[];
  outlierCount: number;
  /** The outlier rule's window, and whether the count filled it (then the true count may be larger). */
  outlierWindow: number;
  outliersCapped: boolean;
  gapRatio: number;
  bulkEdge: number;
  trace?: { value: number; stderr: number };
  density?: { grid: number[]; density: number[] };
  /** Hessian-vector product method actually used. */
  method: 'exact' | 'fd';
  /** Number of parameters the Hessian is taken over. */
  dim: number;
  seconds: number;
}

let started: string | undefined;

/** Runs one probe. Disposes everything it creates (the model included). */
export async function runProbe(req: ProbeRequest): Promise<ProbeResult> {
  const t0 = performance.now();
  if (started !== req.backend) {
    await startBackend(req.backend);
    started = req.backend;
  }
  const model = new Transformer(resolveModelConfig(req.model), new Rng(0));
  try {
    for (const [name, p] of model.params) {
      const w = req.weights[name];
      if (!w || w.length !== p.size) throw new Error(`probe: weights for '${name}' missing or of the wrong size`);
      tf.tidy(() => p.assign(tf.tensor(w, p.shape)));
    }
    const select = compilePattern(req.params);
    if (![...model.params.keys()].some(select)) {
      throw new ConfigError('hessian.params', `'${req.params}' matches no parameter of the model`);
    }
    const x = tf.tensor2d(req.inputs, [req.batchSize, req.seqLen], 'int32');
    const y = tf.tensor2d(req.targets, [req.batchSize, req.seqLen], 'int32');
    try {
      const op = await hessianOperator(() => model.loss(x, y), model.params, { method: req.method, select });
      const r = await analyzeSpectrum(op, {
        topk: req.topk,
        lanczosSteps: req.lanczosSteps,
        traceProbes: req.traceProbes,
        slq: req.density ? { m: req.lanczosSteps, runs: 1, gridPoints: 400 } : undefined,
        seed: req.seed,
        outlierK: req.outlierWindow,
      });
      return {
        topk: Array.from(r.topk),
        outlierCount: r.outlier.count,
        outlierWindow: r.outlier.window,
        outliersCapped: r.outlier.capped,
        gapRatio: r.outlier.gapRatio,
        bulkEdge: r.outlier.bulkEdge,
        trace: r.trace ? { value: r.trace.trace, stderr: r.trace.stderr } : undefined,
        density: r.density ? { grid: Array.from(r.density.grid), density: Array.from(r.density.density) } : undefined,
        method: op.method,
        dim: op.dim,
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      tf.dispose([x, y]);
    }
  } finally {
    model.dispose();
  }
}
