/**
 * Child process of test/ops/attention_subgroup_widths.test.ts: started with LP_NATIVE_VECTOR_WIDTH set,
 * so that lavapipe reports another subgroup size, it runs the fused attention (forward and the three
 * gradients) on webgpu against the float64 oracle with NaN-poisoned buffers and prints one JSON line:
 * the subgroup size the kernels were generated for, the largest relative errors, the programs compiled.
 */
import * as tf from '@tensorflow/tfjs';
import { currentBackend, startBackend, stopBackend } from '../../src/backend/index.ts';
import { attentionSubgroupSize } from '../../src/backend/webgpu/attention.ts';
import { hasKernel, KERNELS } from '../../src/ops/dispatch.ts';
import { attention64, attentionData, err, inputs, results, run, type AttentionDims } from './attention64.ts';
import { compiledPrograms, poison } from './webgpu.ts';

const d: AttentionDims = { B: 2, T: 37, H: 4, Hkv: 2, hd: 8 };
await startBackend('webgpu');
tf.env().set('WEBGPU_CPU_FORWARD', false);
try {
  const [qs, ks, vs, ws] = attentionData(d, 11);
  const ref = attention64(d, qs, ks, vs, ws);
  const ins = inputs(d, qs, ks, vs, ws);
  const sizes = [qs.length, ks.length, d.B * d.T * (d.H * d.hd + d.H), d.B * d.T * d.Hkv * 2 * d.hd, d.B * d.T * d.H];
  await poison(...sizes, ...sizes, ...sizes);
  const [out, dq, dk, dv] = await results(ins, run(ins));
  const errors = { out: err(out!, ref.out), dq: err(dq!, ref.dq), dk: err(dk!, ref.dk), dv: err(dv!, ref.dv) };
  const report = {
    software: currentBackend()?.softwareAdapter === true,
    subgroupSize: attentionSubgroupSize() ?? null,
    enabled: hasKernel(KERNELS.causalAttention) && hasKernel(KERNELS.causalAttentionGrad),
    errors,
    programs: [...compiledPrograms()],
  };
  console.log(JSON.stringify(report));
} finally {
  await stopBackend();
}
