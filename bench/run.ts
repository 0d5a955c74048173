/**
 * npm run bench: measured costs, reported as ratios against a baseline timed in the same process.
 *
 *   throughput  training tokens/s for d=128 and d=256 (4 layers, T=128, B=16, V=256), AdamW and Muon,
 *               on native, wasm and webgpu when it has a hardware adapter (cpu only when named in
 *               --backends: a step there takes 30 s and more)
 *   gemm        GFLOP/s of tf.matMul on native at the model's shapes, against the GEMM's own peak
 *   portable    native's portable GEMM (kernels/native/gemm.cc) against OpenBLAS at the d=128 and d=256
 *               models' shapes, and the training step on it against wasm (and OpenBLAS), alternating rounds
 *   ns          Newton-Schulz time per matrix, and Muon's step overhead over AdamW against its FLOPs
 *   ops         per-op breakdown of one training step on native (tf.profile)
 *   parts       the share of a step taken by attention, RoPE and SwiGLU's elementwise product (what fusing
 *               each could gain at most), on native at d=128 and d=256 and on webgpu (fused attention and not)
 *   attention   native's fused attention, SwiGLU and RoPE kernels against their reference ops (d=128, d=256): each
 *               part's forward + backward and a whole step with and without them in alternating rounds, and
 *               the step's peak memory
 *   kernels     the fused WGSL kernels against their reference ops on webgpu, and one step fused vs not
 *   monitor     outlier monitor overhead at the default interval (configs/tiny.json)
 *   hessian     top-5 eigenvalues with 30 Lanczos steps against one training step
 *   gptq        GPTQ of the d=256 model (4 layers, 128 calibration windows of 128 tokens: QuaRot's count)
 *               against RTN of the same weights and one training step (goal: <= 60 s on 2 cores)
 *
 * Options: --only a,b (sections), --backends a,b (throughput), --backend NAME (monitor and hessian;
 * default native, else wasm), --peer (native against the identical model in PyTorch, bench/torch_reference.py,
 * in alternating rounds, with the median ratio), --quick (fewer repetitions), --rounds N (alternating rounds
 * of the portable section; default 3, 1 with --quick). Writes bench/results.json and prints a table.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type ConcreteBackend } from '../src/backend/index.ts';
import { probeNative } from '../src/backend/native/index.ts';
import { probeWebGPU } from '../src/backend/webgpu/index.ts';
import { resolveRunConfig } from '../src/train/config.ts';
import { evalBatches } from '../src/data/batcher.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { hessianOperator } from '../src/metrics/hessian.ts';
import { topEigenpairs } from '../src/metrics/lanczos.ts';
import { createModel } from '../src/model/transformer.ts';
import { createOptimizer } from '../src/optim/routing.ts';
import { measureOutliers } from '../src/train/callbacks/outliers.ts';
import { trainStep } from '../src/train/step.ts';
import { readConfigFile } from '../src/train/config.ts';
import { gptqModel } from '../src/quant/gptq_model.ts';
import { blockLinearNames, quantizeWeightRtn } from '../src/quant/weights.ts';
import { fusionGain, partShares } from './attention.ts';
import { benchWebgpuKernels } from './kernels_webgpu.ts';
import {
  gemmRates,
  median,
  muonOverhead,
  nsCost,
  opBreakdown,
  peerRounds,
  portableGemm,
  portableStep,
  throughput,
  type Row,
} from './speed.ts';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string' },
    backends: { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean' },
    peer: { type: 'boolean' },
    rounds: { type: 'string' },
  },
});
const sections = new Set((args.only ?? 'throughput,gemm,portable,ns,ops,parts,attention,kernels,monitor,hessian,gptq').split(','));
const reps = args.quick ? 3 : 10;

/** Median wall time (ms) of n runs of f (default `reps`), after one warm-up run. */
const time = (f: () => Promise<unknown>, n = reps) => median(f, n);

const results: Record<string, unknown> = { date: new Date().toISOString() };
const rows: Row[] = [];
const nativeOk = probeNative().available;
const gpu = await probeWebGPU();

if (sections.has('throughput')) {
  const backends = (args.backends?.split(',') as ConcreteBackend[] | undefined) ?? [
    ...(nativeOk ? (['native'] as const) : []),
    'wasm',
    ...(gpu.available && !gpu.softwareAdapter ? (['webgpu'] as const) : []),
  ];
  if (!args.backends) {
    rows.push(['(cpu is left out: 30 s and more per step; --backends cpu,... includes it)', '', '']);
    if (!nativeOk) rows.push([`(native unavailable: ${probeNative().detail})`, '', '']);
    if (!(gpu.available && !gpu.softwareAdapter))
      rows.push([`(webgpu left out: ${gpu.available ? 'software adapter' : gpu.detail})`, '', '']);
  }
  const stepReps = args.quick ? 3 : 5;
  const tput = await throughput(backends, stepReps, rows);
  results.throughput = tput;
}

if (args.peer) {
  if (!nativeOk) rows.push(['PyTorch peer', 'skipped', 'the native backend is unavailable']);
  else {
    const p = await peerRounds(args.quick ? 3 : 5, args.quick ? 2 : 3, rows);
    if (p.error) rows.push(['PyTorch peer', 'unavailable', p.error]);
    else results.peer = p.results;
  }
}

if (nativeOk && sections.has('gemm')) results.gemm = await gemmRates(reps, rows);
if (sections.has('portable')) {
  if (!nativeOk) rows.push(['portable GEMM', 'skipped', `the native backend is unavailable: ${probeNative().detail.slice(0, 60)}`]);
  else {
    const rounds = args.rounds ? Number(args.rounds) : args.quick ? 1 : 3;
    results.portable = {
      gemm: await portableGemm(reps, rounds, rows),
      step: await portableStep(args.quick ? 2 : 3, rounds, rows),
    };
  }
}
if (nativeOk && sections.has('ns')) {
  const ns = await nsCost(reps, rows);
  results.newtonSchulz = ns;
  results.muonOverhead = await muonOverhead(ns, args.quick ? 3 : 5, 3, rows);
}
if (nativeOk && sections.has('ops')) {
  results.opBreakdown = await opBreakdown('native', { hidden: 128, optimizer: 'muon' }, rows);
}
if (sections.has('parts')) {
  const shares: Record<string, unknown> = {};
  const reps = args.quick ? 3 : 7;
  if (nativeOk) {
    shares['native-d128'] = await partShares('native', 128, 4, reps, rows);
    shares['native-d256'] = await partShares('native', 256, 4, reps, rows);
  }
  if (gpu.available) shares['webgpu-d128'] = await partShares('webgpu', 128, 4, args.quick ? 2 : 3, rows);
  results.partShares = shares;
}
if (nativeOk && sections.has('attention')) {
  const reps = args.quick ? 3 : 7;
  results.fusionNative = {
    d128: await fusionGain('native', 128, 4, reps, rows),
    d256: await fusionGain('native', 256, 4, reps, rows),
  };
}
if (sections.has('kernels')) {
  if (gpu.available) {
    const k = await benchWebgpuKernels({ quick: args.quick });
    results.webgpuKernels = { adapter: gpu.detail, softwareAdapter: gpu.softwareAdapter, rows: k };
    rows.push([
      `fused WGSL kernels vs reference ops (webgpu: ${gpu.detail}${gpu.softwareAdapter ? ', software' : ''})`,
      'fused / reference',
      'speed-up',
    ]);
    for (const r of k)
      rows.push([`  ${r.kernel} ${r.shape}`, `${r.fused.toFixed(2)} / ${r.reference.toFixed(2)} ${r.unit}`, `${r.ratio.toFixed(2)}x`]);
  } else rows.push(['fused WGSL kernels', 'skipped', `webgpu: ${gpu.detail}`]);
}

if (sections.has('monitor') || sections.has('hessian')) {
  await monitorAndHessian(args.backend ?? (nativeOk ? 'native' : 'wasm'));
}

if (sections.has('gptq')) await gptqCost(args.backend ?? (nativeOk ? 'native' : 'wasm'));

writeFileSync('bench/results.json', JSON.stringify(results, null, 2) + '\n');
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`);

async function monitorAndHessian(backend: string): Promise<void> {
  const info = await startBackend(backend);
  // The main job's model and batch: configs/tiny.json.
  const config = resolveRunConfig(readConfigFile('configs/tiny.json'));
  const { size: B, seqLen: T } = config.batch;
  const data = loadDataset(config.data, { vocabSize: config.model.vocabSize });
  const batch = evalBatches(data.train, { batchSize: B, seqLen: T, maxBatches: 1 })[0]!;
  const model = createModel(config.model, { seed: 0 });
  const optimizer = createOptimizer(config.optimizer, model);
  const x = tf.tensor2d(batch.inputs, [B, T], 'int32');
  const y = tf.tensor2d(batch.targets, [B, T], 'int32');
  const stepMs = await time(() => trainStep(model, optimizer, x, y));

  Object.assign(results, {
    backend: `${info.name} (${info.detail})`,
    model: `configs/tiny.json: d=${config.model.hiddenSize}, ${config.model.numLayers} layers, ${B}x${T} tokens`,
    trainStepMs: stepMs,
  });
  rows.push([`monitor and hessian: backend ${info.name}, configs/tiny.json`, '', '']);
  rows.push(['training step (baseline)', `${stepMs.toFixed(1)} ms`, '1.00x']);

  if (sections.has('monitor')) {
    const mb = config.monitor.batchSize;
    const held = evalBatches(data.val, { batchSize: mb, seqLen: T, maxBatches: 1 })[0]!;
    const monitorMs = await time(() => measureOutliers({ model }, held.inputs, mb, T, config.monitor.topK));
    const overhead = monitorMs / (config.monitor.every * stepMs);
    results.monitor = { measurementMs: monitorMs, every: config.monitor.every, overheadFraction: overhead, goal: 0.03 };
    rows.push([`outlier monitor, one measurement (${mb}x${T})`, `${monitorMs.toFixed(1)} ms`, `${(monitorMs / stepMs).toFixed(2)}x`]);
    rows.push([`  overhead at monitor.every=${config.monitor.every}`, `${(overhead * 100).toFixed(2)} %`, 'goal <= 3 %']);
  }

  if (sections.has('hessian')) {
    const out: Record<string, unknown> = {};
    // A Hessian-vector product costs a multiple of one gradient: the floor of what Lanczos can cost.
    const gradMs = await time(async () => {
      const { value, grads } = tf.variableGrads(() => model.loss(x, y));
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    });
    out.gradientMs = gradMs;
    rows.push(['one gradient (forward + backward)', `${gradMs.toFixed(1)} ms`, `${(gradMs / stepMs).toFixed(2)}x`]);
    for (const method of ['exact', 'fd'] as const) {
      try {
        const op = await hessianOperator(() => model.loss(x, y), model.params, { method });
        const v = new Float64Array(op.dim).fill(1 / Math.sqrt(op.dim));
        const hvpMs = await time(() => op.apply(v), Math.max(3, Math.floor(reps / 2)));
        const t0 = performance.now();
        // Eigenvalues only: residual checks would add k more products.
        await topEigenpairs(op, { k: 5, m: 30, seed: 0, residuals: false });
        const top5Ms = performance.now() - t0;
        out[method] = { hvpMs, top5Lanczos30Ms: top5Ms, ratioToStep: top5Ms / stepMs, goal: 40 };
        rows.push([`Hessian-vector product (${method})`, `${hvpMs.toFixed(1)} ms`, `${(hvpMs / stepMs).toFixed(2)}x`]);
        rows.push([
          `  top-5 eigenvalues, 30 Lanczos steps (${method})`,
          `${(top5Ms / 1000).toFixed(2)} s`,
          `${(top5Ms / stepMs).toFixed(1)}x (goal <= 40x)`,
        ]);
      } catch (e) {
        out[method] = { error: (e as Error).message };
        rows.push([`Hessian (${method})`, 'failed', (e as Error).message.slice(0, 60)]);
      }
    }
    results.hessian = out;
  }
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
  await stopBackend();
}

async function gptqCost(backend: string): Promise<void> {
  const info = await startBackend(backend);
  const modelConfig = { vocabSize: 258, hiddenSize: 256, numLayers: 4, numHeads: 4, maxSeqLen: 128 };
  const model = createModel(modelConfig, { seed: 0 });
  const T = modelConfig.maxSeqLen;
  const data = loadDataset({}, { vocabSize: 258 });
  const calibration = evalBatches(data.train, { batchSize: 8, seqLen: T, maxBatches: 16 }); // 128 windows
  const optimizer = createOptimizer(resolveRunConfig({ model: modelConfig }).optimizer, model);
  const b = calibration[0]!;
  const x = tf.tensor2d(b.inputs, [8, T], 'int32');
  const y = tf.tensor2d(b.targets, [8, T], 'int32');
  const stepMs = await time(() => trainStep(model, optimizer, x, y), 3);
  tf.dispose([x, y]);
  optimizer.dispose();
  const weights = await Promise.all(
    blockLinearNames(model).map(async (n) => ({ v: model.params.get(n)!, w: (await model.params.get(n)!.data()) as Float32Array })),
  );
  const t0 = performance.now();
  for (const { v, w } of weights) quantizeWeightRtn(w, v.shape[0]!, v.shape[1]!, { bits: 4, clipSearch: true });
  const rtnMs = performance.now() - t0;
  const t1 = performance.now();
  await gptqModel(model, calibration, { bits: 4, clipSearch: true });
  const gptqMs = performance.now() - t1;
  model.dispose();
  await stopBackend();
  results.gptq = {
    backend: info.name,
    model: 'd=256, 4 layers, intermediate 704',
    calibrationTokens: 128 * T,
    gptqMs,
    rtnMs,
    stepMs,
    goalMs: 60_000,
  };
  rows.push([`GPTQ: backend ${info.name}, d=256, 4 layers, 128 x ${T} calibration tokens`, '', '']);
  rows.push(['training step 8x128 (baseline)', `${stepMs.toFixed(1)} ms`, '1.00x']);
  rows.push(['RTN with clip search, all block linears', `${(rtnMs / 1000).toFixed(2)} s`, `${(rtnMs / stepMs).toFixed(1)}x`]);
  rows.push(['GPTQ, sequential over the blocks', `${(gptqMs / 1000).toFixed(2)} s`, `${(gptqMs / stepMs).toFixed(1)}x (goal <= 60 s)`]);
}
