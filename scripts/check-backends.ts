/**
 * Which backends work on this machine? Starts each one, runs one training step of a small OSP model
 * from the same initial weights, and prints a table: backend, device, loss, step time.
 *
 *   npm run check-backends
 */
import * as tf from '@tensorflow/tfjs';
import { startBackend, stopBackend, type ConcreteBackend } from '../src/backend/index.ts';
import { createModel } from '../src/model/transformer.ts';
import { createOptimizer } from '../src/optim/routing.ts';
import { trainStep } from '../src/train/step.ts';

const rows: string[][] = [['backend', 'device', 'loss', 'step ms', 'status']];
for (const name of ['cpu', 'wasm', 'webgpu', 'tensorflow'] as ConcreteBackend[]) {
  try {
    const info = await startBackend(name);
    const model = createModel({ hiddenSize: 64, numLayers: 2, maxSeqLen: 64, norm: 'ssnorm', embedding: 'embproj' }, { seed: 0 });
    const opt = createOptimizer({}, model);
    const ids = Array.from({ length: 4 }, (_, b) => Array.from({ length: 65 }, (_, t) => (b * 31 + t * 7) % 256));
    const x = tf.tensor2d(
      ids.map((r) => r.slice(0, 64)),
      undefined,
      'int32',
    );
    const y = tf.tensor2d(
      ids.map((r) => r.slice(1)),
      undefined,
      'int32',
    );
    await trainStep(model, opt, x, y); // warm-up: kernels compile, caches fill
    const t0 = performance.now();
    const loss = await trainStep(model, opt, x, y);
    const ms = performance.now() - t0;
    rows.push([name, info.detail, loss.toFixed(5), ms.toFixed(0), 'ok']);
    tf.dispose([x, y]);
    opt.dispose();
    model.dispose();
  } catch (e) {
    rows.push([name, '-', '-', '-', (e as Error).message.split('\n')[0]!.slice(0, 100)]);
  } finally {
    await stopBackend();
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => Math.min(r[i]!.length, 60))));
for (const r of rows) console.log(r.map((c, i) => c.slice(0, 60).padEnd(widths[i]!)).join('  '));
