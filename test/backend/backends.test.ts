/**
 * Backends: starting by name, clear errors, `auto`'s choice, and the promise that every op the model
 * needs (forward and backward) gives the same numbers on cpu, wasm, native and webgpu.
 *
 * WebGPU runs on Mesa's lavapipe software adapter where there is no GPU (.ci/run installs it); native
 * needs its kernel pack built. Neither is skipped silently: without one its tests skip and the run ends
 * with a line saying how to enable them; CI sets OSP_REQUIRE_ALL=1, which turns that into a failure.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend, type ConcreteBackend } from '../../src/backend/index.ts';
import { BackendUnavailableError, ConfigError } from '../../src/errors.ts';
import { createModel } from '../../src/model/transformer.ts';
import { KERNELS } from '../../src/ops/dispatch.ts';
import { createOptimizer } from '../../src/optim/index.ts';
import { trainStep } from '../../src/train/step.ts';
import { skipNative, skipWebGPU, testBackends } from '../helpers/backends.ts';
import { normRelErr, tokens } from '../helpers/model.ts';

const backends: ConcreteBackend[] = testBackends;

afterAll(async () => {
  await stopBackend();
});

describe('startBackend', () => {
  it('rejects an unknown name, listing the valid ones', async () => {
    await expect(startBackend('cuda')).rejects.toThrow(ConfigError);
    await expect(startBackend('cuda')).rejects.toThrow(
      `backend: unknown value "cuda"; valid choices: 'auto', 'cpu', 'native', 'wasm', 'webgpu', 'tensorflow'`,
    );
  });

  it('tensorflow without tfjs-node says how to install it', async () => {
    const err = await startBackend('tensorflow').catch((e: unknown) => e);
    // Where a user has installed tfjs-node this test has nothing to check.
    if (!(err instanceof Error)) return;
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect(err.message).toContain('npm install @tensorflow/tfjs-node-gpu@4.22.0');
  });

  it.runIf(!skipWebGPU)('webgpu reports its adapter and whether it is software', async () => {
    const info = await startBackend('webgpu');
    expect(info.name).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(info.detail.length).toBeGreaterThan(0);
    expect(typeof info.softwareAdapter).toBe('boolean');
    // On CI (no GPU) the adapter is lavapipe, which must be recognised as software.
    if (/llvmpipe|lavapipe/i.test(info.detail)) expect(info.softwareAdapter).toBe(true);
    expect(info.gpu).toBe(!info.softwareAdapter);
    await stopBackend();
  });

  it('auto says what it chose and why', async () => {
    const info = await startBackend('auto');
    expect(info.requested).toBe('auto');
    expect(tf.getBackend()).toBe(info.name);
    expect(info.reason).toContain(info.name);
    // Without a GPU, auto must not pick webgpu on a software adapter: native where it is built, else wasm.
    if (!info.gpu) expect(info.name).toBe(skipNative ? 'wasm' : 'native');
    await stopBackend();
  });
});

describe('the same training run on every backend', () => {
  const model = {
    vocabSize: 40,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxSeqLen: 16,
    norm: 'ssnorm',
    embedding: 'embproj',
  };
  // Muon on block matrices and EmbProj, AdamW on the rest: every op of the OSP recipe runs.
  const optimizer = { muon: { lr: 0.02 }, adamw: { lr: 0.01 } };
  const seq = tokens(4, 13, 40, 2);
  const inputs = seq.map((r) => r.slice(0, 12));
  const targets = seq.map((r) => r.slice(1));

  const results = new Map<ConcreteBackend, { losses: number[]; grads: Map<string, Float32Array> }>();

  for (const backend of backends) {
    it(`trains on ${backend}`, async () => {
      await startBackend(backend);
      const m = createModel(model, { seed: 42 });
      const opt = createOptimizer(optimizer, m);
      const x = tf.tensor2d(inputs, undefined, 'int32');
      const y = tf.tensor2d(targets, undefined, 'int32');
      // Gradients at the initial weights, every parameter.
      const { value, grads } = tf.variableGrads(() => m.loss(x, y));
      const g = new Map<string, Float32Array>();
      for (const [name, p] of m.params) g.set(name, (await grads[p.name]!.data()) as Float32Array);
      tf.dispose([value, ...Object.values(grads)]);
      const losses: number[] = [];
      let tensorsAfterFirst = 0;
      for (let step = 0; step < 6; step++) {
        if (step === 5 && backend === 'native') {
          // native trains with its fused attention kernels (kernels/native/attention.cc), forward and backward.
          const info = await tf.profile(async () => {
            losses.push(await trainStep(m, opt, x, y));
          });
          const names = info.kernels.map((k) => k.name);
          expect(names).toContain(KERNELS.causalAttention);
          expect(names).toContain(KERNELS.causalAttentionGrad);
          expect(names).not.toContain('Softmax');
          continue;
        }
        losses.push(await trainStep(m, opt, x, y));
        if (step === 0) tensorsAfterFirst = tf.memory().numTensors;
      }
      // Nothing accumulates across steps.
      expect(tf.memory().numTensors).toBe(tensorsAfterFirst);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[5]).toBeLessThan(losses[0]!);
      results.set(backend, { losses, grads: g });
      tf.dispose([x, y]);
      opt.dispose();
      m.dispose();
      await stopBackend();
    });
  }

  it('losses and gradients agree with the cpu backend', () => {
    const ref = results.get('cpu');
    expect(ref, 'the cpu run must have finished').toBeDefined();
    for (const backend of backends.filter((b) => b !== 'cpu')) {
      const r = results.get(backend);
      expect(r, `the ${backend} run must have finished`).toBeDefined();
      r!.losses.forEach((loss, i) => {
        expect(Math.abs(loss - ref!.losses[i]!) / ref!.losses[i]!, `${backend} step ${i}`).toBeLessThan(1e-4);
      });
      for (const [name, g] of r!.grads) {
        expect(normRelErr(g, ref!.grads.get(name)!), `${backend} gradient of ${name}`).toBeLessThan(1e-4);
      }
    }
  });
});
