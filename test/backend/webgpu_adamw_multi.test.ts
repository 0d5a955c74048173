/**
 * OspAdamWUpdateMulti on webgpu (src/backend/webgpu/adamw.ts): the in-place multi-tensor AdamW update
 * against a float64 re-computation, across several dispatches and odd sizes, with its in-place safety
 * (a tensor sharing a variable's buffer keeps its values, no stale CPU copy) and flat memory; the AdamW
 * optimizer on webgpu against the same optimizer on cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { adamwMultiDispatchCount, MULTI_WORKGROUP_ELEMENTS, paramsPerDispatch } from '../../src/backend/webgpu/adamw.ts';
import { rawBackend } from '../../src/backend/webgpu/program.ts';
import { OspError } from '../../src/errors.ts';
import { adamwUpdate, adamwUpdateMulti, type AdamWSlotUpdate, type AdamWUpdateAttrs } from '../../src/ops/adamw_update.ts';
import { hasKernel, KERNELS } from '../../src/ops/dispatch.ts';
import { AdamW } from '../../src/optim/index.ts';
import { Rng } from '../../src/utils/rng.ts';
import { skipWebGPU as skip } from '../helpers/backends.ts';
import { useWebGPU } from '../helpers/webgpu.ts';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Float64 state of one parameter: adamw_update.ts's formulas written out in doubles. */
interface Ref {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

function refUpdate(s: Ref, g: ArrayLike<number>, a: AdamWUpdateAttrs): void {
  for (let i = 0; i < g.length; i++) {
    s.m[i] = s.m[i]! * a.beta1 + g[i]! * (1 - a.beta1);
    s.v[i] = s.v[i]! * a.beta2 + g[i]! * g[i]! * (1 - a.beta2);
    const denom = Math.sqrt(s.v[i]!) / a.bc2Sqrt + a.eps;
    s.p[i] = s.p[i]! * a.decay - (s.m[i]! / denom) * (a.lr / a.bc1);
  }
}

/** max |a - b| / (|b| + floor): NaN anywhere counts as infinite. */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) return Infinity;
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + floor));
  }
  return worst;
}

/** A non-trainable zero variable that alone holds its data (an optimizer's fresh moment). */
const zeroVar = (shape: number[]) =>
  tf.variable(
    tf.tidy(() => tf.zeros(shape)),
    false,
  );

function attrsFor(i: number, step: number): AdamWUpdateAttrs {
  const lr = 3e-3 * (1 + i / 10);
  return {
    lr,
    beta1: 0.9,
    beta2: i % 3 === 0 ? 0.95 : 0.999,
    eps: 1e-8,
    decay: i % 2 === 0 ? 1 - lr * 0.1 : 1,
    bc1: 1 - 0.9 ** step,
    bc2Sqrt: Math.sqrt(1 - (i % 3 === 0 ? 0.95 : 0.999) ** step),
  };
}

describe.skipIf(skip)('OspAdamWUpdateMulti on webgpu', () => {
  useWebGPU();

  it('is registered and on by default; binds four buffers per parameter up to the device limit', () => {
    expect(hasKernel(KERNELS.adamwUpdateMulti)).toBe(true);
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    expect(paramsPerDispatch(device)).toBe(Math.floor(device.limits.maxStorageBuffersPerShaderStage / 4));
    // The backend asks for the adapter's limit, not WebGPU's default of 8 (two parameters per dispatch).
    expect(device.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    // The tfjs internals its own dispatch uses are there (the package is pinned); a backend without them is
    // refused by name.
    expect(rawBackend(tf.backend())).toBe(tf.backend());
    const older = Object.assign(Object.create(tf.backend()) as object, { submitQueue: undefined, tensorMap: undefined });
    expect(() => rawBackend(older)).toThrow(/internals .*: submitQueue, tensorMap$/);
  });

  it('matches a float64 re-computation over two steps, odd sizes, several dispatches, an empty parameter', async () => {
    // Sizes around the 64 lanes and the 256 elements of a workgroup, a 3-D one, an empty one, and enough
    // parameters for several dispatches.
    const shapes = [[1], [63], [64], [65], [7, 65], [257, 3], [1000], [2, 3, 5], [0, 4], [255], [256], [33, 2]];
    const rng = new Rng(5);
    const draw = (n: number, std: number) => Float64Array.from(new Rng(rng.int(1e9)).normals(n, std), (x) => Math.fround(x));
    const refs: Ref[] = shapes.map((s) => {
      const n = numel(s);
      return { p: draw(n, 1), m: draw(n, 0.1), v: Float64Array.from(draw(n, 0.1), (x) => Math.fround(x * x)) };
    });
    const vars = shapes.map((s, i) => ({
      param: tf.variable(tf.tensor(Float32Array.from(refs[i]!.p), s), true),
      expAvg: tf.variable(tf.tensor(Float32Array.from(refs[i]!.m), s), false),
      expAvgSq: tf.variable(tf.tensor(Float32Array.from(refs[i]!.v), s), false),
    }));
    const nonEmpty = shapes.filter((s) => numel(s) > 0).length;
    const per = paramsPerDispatch((tf.backend() as unknown as { device: GPUDevice }).device);
    for (let step = 1; step <= 2; step++) {
      const grads = shapes.map((s) => Float32Array.from(draw(numel(s), 1)));
      const slots: AdamWSlotUpdate[] = vars.map((v, i) => ({
        ...v,
        grad: tf.tensor(grads[i]!, shapes[i]),
        attrs: attrsFor(i, step + i), // a different step count (bias correction) per parameter
      }));
      const before = adamwMultiDispatchCount();
      adamwUpdateMulti(slots);
      expect(adamwMultiDispatchCount() - before).toBe(Math.ceil(nonEmpty / per));
      refs.forEach((r, i) => refUpdate(r, grads[i]!, slots[i]!.attrs));
      tf.dispose(slots.map((s) => s.grad));
      for (const [i, v] of vars.entries()) {
        const [p, m, sq] = await Promise.all([v.param.data(), v.expAvg.data(), v.expAvgSq.data()]);
        // float32 arithmetic against doubles: a few ulps of the terms (the floors: m' and p' may cancel to
        // near 0, their terms are ~0.1 and ~1); 1e-5 still catches any wrong element or coefficient.
        expect(maxRel(p, refs[i]!.p, 1e-2), `param ${i} [${shapes[i]}] step ${step}`).toBeLessThan(1e-5);
        expect(maxRel(m, refs[i]!.m, 1e-2), `expAvg ${i} step ${step}`).toBeLessThan(1e-5);
        expect(maxRel(sq, refs[i]!.v, 1e-6), `expAvgSq ${i} step ${step}`).toBeLessThan(1e-5);
      }
    }
    tf.dispose(vars.flatMap((v) => [v.param, v.expAvg, v.expAvgSq]));
  });

  it('agrees with the per-parameter kernel (OspAdamWUpdate) to float32 rounding', async () => {
    const shapes = [[5], [130, 7], [1]];
    const mk = (s: number[], seed: number, std: number) => tf.tensor(Float32Array.from(new Rng(seed).normals(numel(s), std)), s);
    const slots: AdamWSlotUpdate[] = shapes.map((s, i) => ({
      param: tf.variable(tf.tidy(() => mk(s, i, 1))),
      grad: mk(s, 10 + i, 1),
      expAvg: tf.variable(
        tf.tidy(() => mk(s, 20 + i, 0.1)),
        false,
      ),
      expAvgSq: tf.variable(
        tf.tidy(() => tf.square(mk(s, 30 + i, 0.1))),
        false,
      ),
      attrs: attrsFor(i, 3),
    }));
    const single = slots.map((s) => adamwUpdate(s.param, s.grad, s.expAvg, s.expAvgSq, s.attrs));
    const want = await Promise.all(single.map((u) => Promise.all([u.param.data(), u.expAvg.data(), u.expAvgSq.data()])));
    adamwUpdateMulti(slots);
    for (const [i, s] of slots.entries()) {
      const got = await Promise.all([s.param.data(), s.expAvg.data(), s.expAvgSq.data()]);
      got.forEach((g, j) => expect(maxRel(g, want[i]![j]!, 1e-6), `slot ${i} output ${j}`).toBeLessThan(1e-6));
    }
    tf.dispose([
      ...single.flatMap((u) => [u.param, u.expAvg, u.expAvgSq]),
      ...slots.flatMap((s) => [s.param, s.grad, s.expAvg, s.expAvgSq]),
    ]);
  });

  it('folds more than 65535 workgroups into a second dimension', async () => {
    const n = 65535 * MULTI_WORKGROUP_ELEMENTS + 100; // one workgroup more than one dimension holds
    const p = tf.variable(tf.tidy(() => tf.ones([n])));
    const m = zeroVar([n]);
    const v = zeroVar([n]);
    const g = tf.tidy(() => tf.fill([n], 2));
    const a = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, decay: 1, bc1: 0.1, bc2Sqrt: Math.sqrt(0.01) };
    adamwUpdateMulti([{ param: p, grad: g, expAvg: m, expAvgSq: v, attrs: a }]);
    // m = 0.2, v = 0.04, p = 1 - 0.1 * 0.2 / (0.2 / 0.1 + 1e-8) = 0.99 for every element, the last ones too.
    const [pv, mv] = await Promise.all([p.data(), m.data()]);
    expect(Math.min(...pv.subarray(n - 200))).toBeCloseTo(0.99, 6);
    expect(Math.max(...pv.subarray(n - 200))).toBeCloseTo(0.99, 6);
    expect(pv.every((x) => Math.abs(x - 0.99) < 1e-6)).toBe(true);
    expect(mv[n - 1]).toBeCloseTo(0.2, 6);
    tf.dispose([p, m, v, g]);
  });

  it('writes in place safely: a tensor sharing a variable keeps its values; no stale CPU copy; memory flat', async () => {
    const s = [4, 33];
    const p = tf.variable(tf.tidy(() => tf.randomNormal(s, 0, 1, 'float32', 1)));
    const m = zeroVar(s);
    const v = zeroVar(s);
    const g = tf.tidy(() => tf.randomNormal(s, 0, 1, 'float32', 2));
    const slot = { param: p, grad: g, expAvg: m, expAvgSq: v, attrs: attrsFor(0, 1) };
    const old = await p.data(); // tfjs now keeps a CPU copy of p's values
    const alias = tf.clone(p); // shares p's buffer
    const shape = tf.reshape(m, [132]); // shares m's buffer
    adamwUpdateMulti([slot]);
    expect(Array.from(await alias.data())).toEqual(Array.from(old));
    expect(Array.from(await shape.data()).every((x) => x === 0)).toBe(true);
    const now = await p.data();
    expect(Array.from(now)).not.toEqual(Array.from(old));
    expect(Array.from(await m.data()).some((x) => x !== 0)).toBe(true);
    tf.dispose([alias, shape]);
    // Later steps: nothing shares a buffer any more; no tensor, byte or GPU data left behind.
    adamwUpdateMulti([slot]);
    await p.data();
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const mem = tf.memory();
    const ids = backend.numDataIds();
    for (let i = 0; i < 5; i++) adamwUpdateMulti([slot]);
    const last = await p.data(); // read after the update: the new values, not a cached copy
    expect(Array.from(last)).not.toEqual(Array.from(now));
    expect(tf.memory().numTensors).toBe(mem.numTensors);
    expect(tf.memory().numBytes).toBe(mem.numBytes);
    expect(backend.numDataIds()).toBe(ids);
    tf.dispose([p, m, v, g]);
  });

  it('a read started before an update returns the old values and leaves no stale copy behind', async () => {
    const p = tf.variable(tf.tidy(() => tf.fill([70], 0.9)));
    const m = zeroVar([70]);
    const v = zeroVar([70]);
    const g = tf.tidy(() => tf.fill([70], 1));
    const slot = { param: p, grad: g, expAvg: m, expAvgSq: v, attrs: attrsFor(1, 1) };
    adamwUpdateMulti([slot]);
    const pending = p.data(); // in flight while the next update is recorded
    adamwUpdateMulti([slot]);
    const early = (await pending)[0]!;
    const now = (await p.data())[0]!;
    const onGpu = (await tf.tidy(() => tf.mul(p, 1)).data())[0]!;
    expect(now).not.toBe(early);
    expect(now).toBe(onGpu);
    tf.dispose([p, m, v, g]);
  });

  it('a variable whose data still lives on the cpu backend is moved, not refused', async () => {
    await tf.setBackend('cpu');
    const init = tf.fill([5], 0.5); // kept alive: it shares the variable's data
    const p = tf.variable(init);
    const m = zeroVar([5]);
    const v = zeroVar([5]);
    await tf.setBackend('webgpu');
    const g = tf.fill([5], 1);
    adamwUpdateMulti([{ param: p, grad: g, expAvg: m, expAvgSq: v, attrs: attrsFor(1, 1) }]);
    expect((await p.data())[0]).toBeLessThan(0.5);
    expect(Array.from(await init.data())).toEqual([0.5, 0.5, 0.5, 0.5, 0.5]);
    tf.dispose([init, p, m, v, g]);
  });

  it('refuses a variable updated twice, and (kernel called directly) a buffer another tensor shares', () => {
    const p = tf.variable(tf.tidy(() => tf.ones([3])));
    const m = zeroVar([3]);
    const g = tf.ones([3]);
    const attrs = attrsFor(0, 1);
    expect(() => adamwUpdateMulti([{ param: p, grad: g, expAvg: m, expAvgSq: m, attrs }])).toThrow(/expAvgSq is a variable another/);
    const v = zeroVar([3]);
    const alias = tf.clone(p);
    expect(() =>
      tf.engine().runKernel(KERNELS.adamwUpdateMulti, { param0: p, grad0: g, expAvg0: m, expAvgSq0: v }, { slots: [attrs] } as never),
    ).toThrow(OspError);
    expect(() => tf.engine().runKernel(KERNELS.adamwUpdateMulti, { param0: p, grad0: g, expAvg0: m }, { slots: [attrs] } as never)).toThrow(
      /3 inputs for 1 slots/,
    );
    tf.dispose([p, m, v, g, alias]);
  });

  it('the AdamW optimizer on webgpu follows the same optimizer on cpu (3 steps, one parameter without a gradient)', async () => {
    const shapes: [string, number[]][] = [
      ['model.embed_tokens.weight', [40, 16]],
      ['model.layers.0.input_layernorm.weight', [1]],
      ['model.norm.weight', [16]],
      ['lm_head.weight', [40, 16]],
      ['model.layers.0.mlp.up_proj.weight', [24, 16]],
      ['model.layers.1.mlp.up_proj.weight', [24, 16]],
    ];
    const init = shapes.map(([, s], i) => Float32Array.from(new Rng(40 + i).normals(numel(s), 0.5)));
    const grads = [1, 2, 3].map((k) => shapes.map(([, s], i) => Float32Array.from(new Rng(100 * k + i).normals(numel(s), 1))));
    const run = async (backend: 'cpu' | 'webgpu') => {
      await tf.setBackend(backend);
      const params = new Map(shapes.map(([n, s], i) => [n, tf.variable(tf.tensor(init[i]!, s), true)] as const));
      const opt = AdamW.from({ lr: 0.01, weightDecay: 0.1 }, params);
      for (const step of grads) {
        // The last parameter gets no gradient: it must not move (no decay, no momentum).
        const g = new Map(shapes.slice(0, -1).map(([n, s], i) => [n, tf.tensor(step[i]!, s)] as const));
        opt.step(params, g, 0.5);
        tf.dispose([...g.values()]);
      }
      const out = await Promise.all([...params.values()].map((p) => p.data()));
      const state = opt.stateDict();
      const moments = await Promise.all([...state.values()].map((t) => t.data()));
      tf.dispose([...state.values(), ...params.values()]);
      opt.dispose();
      return { out, moments };
    };
    const before = adamwMultiDispatchCount();
    const gpu = await run('webgpu');
    expect(adamwMultiDispatchCount() - before).toBeGreaterThanOrEqual(3);
    const cpu = await run('cpu');
    await tf.setBackend('webgpu');
    gpu.out.forEach((p, i) => expect(maxRel(p, cpu.out[i]!, 1e-3), shapes[i]![0]).toBeLessThan(1e-5));
    expect(Array.from(gpu.out[shapes.length - 1]!)).toEqual(Array.from(init[shapes.length - 1]!));
    gpu.moments.forEach((m, i) => expect(maxRel(m, cpu.moments[i]!, 1e-6), `state ${i}`).toBeLessThan(1e-5));
  });
});
