/**
 * The kernels osp-lab adds to or wraps in tfjs-backend-wasm, against the cpu backend: BatchMatMul
 * with every transpose combination, batched, broadcast and odd shapes (the wrapper materialises
 * transposes and splits batches), and UnsortedSegmentSum (the gather gradient).
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { Rng } from '../../src/utils/rng.ts';

function values(shape: number[], seed: number): Float32Array {
  return Float32Array.from(new Rng(seed).normals(shape.reduce((a, b) => a * b, 1)));
}

async function onBoth(f: () => tf.Tensor): Promise<{ cpu: Float32Array; wasm: Float32Array; shape: number[] }> {
  await startBackend('cpu');
  const c = f();
  const cpu = c.dataSync() as Float32Array;
  const shape = c.shape;
  await startBackend('wasm');
  const w = f();
  const wasm = w.dataSync() as Float32Array;
  expect(w.shape).toEqual(shape);
  tf.dispose(w);
  return { cpu, wasm, shape };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('wasm BatchMatMul wrapper', () => {
  const cases: [number[], number[]][] = [
    [
      [7, 5],
      [5, 3],
    ],
    [
      [33, 17],
      [17, 65],
    ],
    [
      [3, 5, 4],
      [3, 4, 6],
    ],
    [
      [2, 3, 9, 4],
      [2, 3, 4, 7],
    ],
    [
      [2, 2, 5, 4],
      [1, 4, 6],
    ], // broadcast batch: falls back to the batched kernel
    [
      [1, 6, 3],
      [1, 3, 2],
    ],
  ];
  for (const [sa, sb] of cases) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        it(`[${sa}]${ta ? 'T' : ''} x [${sb}]${tb ? 'T' : ''}`, async () => {
          const swap = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!] : s);
          const A = swap(sa, ta);
          const B = swap(sb, tb);
          const { cpu, wasm } = await onBoth(() => tf.matMul(tf.tensor(values(A, 1), A), tf.tensor(values(B, 2), B), ta, tb));
          expect(maxAbsDiff(cpu, wasm)).toBeLessThan(1e-5);
        });
      }
    }
  }

  it('leaves no tensors or wasm buffers behind', async () => {
    await startBackend('wasm');
    const a = tf.tensor(values([4, 8, 5], 3), [4, 8, 5]);
    const b = tf.tensor(values([4, 6, 5], 4), [4, 6, 5]);
    tf.matMul(a, b, false, true).dispose();
    const before = tf.memory();
    for (let i = 0; i < 5; i++) tf.matMul(a, b, false, true).dispose();
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numDataBuffers).toBe(before.numDataBuffers);
    tf.dispose([a, b]);
  });
});

describe('wasm UnsortedSegmentSum (gather gradient)', () => {
  it('matches cpu, including ids out of range (dropped)', async () => {
    const { cpu, wasm, shape } = await onBoth(() =>
      tf.unsortedSegmentSum(tf.tensor(values([6, 3], 5), [6, 3]), tf.tensor1d([2, 0, 2, 4, -1, 9], 'int32'), 5),
    );
    expect(shape).toEqual([5, 3]);
    expect(maxAbsDiff(cpu, wasm)).toBeLessThan(1e-6);
  });

  it('gives the embedding gradient', async () => {
    const { cpu, wasm } = await onBoth(() => {
      const e = tf.tensor(values([10, 4], 6), [10, 4]);
      return tf.grad((x: tf.Tensor) => tf.sum(tf.square(tf.gather(x, tf.tensor1d([1, 3, 1, 9], 'int32')))))(e);
    });
    expect(maxAbsDiff(cpu, wasm)).toBeLessThan(1e-5);
  });
});
