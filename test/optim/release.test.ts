/**
 * Every optimizer of the registry gives back all the memory it took: after create, two steps and
 * dispose, tf.memory() is where it was. (The state variables were once made from zero tensors that
 * were never released: after the first step each optimizer kept a dead copy of its initial state.)
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../../src/backend/index.ts';
import { OPTIMIZER_NAMES, OPTIMIZERS } from '../../src/optim/index.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

describe('optimizer state memory', () => {
  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: create, two steps, dispose leaves tf.memory() unchanged`, () => {
      const module = OPTIMIZERS[name];
      const shapes: [string, number[]][] = module.matricesOnly
        ? [['model.layers.0.mlp.up_proj.weight', [12, 8]]]
        : [
            ['model.layers.0.mlp.up_proj.weight', [12, 8]],
            ['model.norm.weight', [8]],
          ];
      const params = new Map(shapes.map(([n, s]) => [n, tf.variable(tf.zeros(s), true, `release_${name}_${n}`)] as const));
      const grads = new Map(shapes.map(([n, s]) => [n, tf.randomNormal(s, 0, 1, 'float32', 7)] as const));
      const before = tf.memory();
      const opt = module.create(module.schema.parse({}) as never, params);
      opt.step(params, grads, 1);
      opt.step(params, grads, 1);
      const during = tf.memory().numBytes - before.numBytes;
      opt.dispose();
      const after = tf.memory();
      expect(during).toBeGreaterThan(0); // it did hold state
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      tf.dispose([...grads.values(), ...params.values()]);
    });
  }
});
