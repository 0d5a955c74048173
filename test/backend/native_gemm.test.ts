/**
 * The native kernel pack's portable GEMM (kernels/native/gemm.cc), which serves matrix products where
 * OpenBLAS is not installed: held to a float64 reference on odd shapes (none a multiple of its 6x16
 * micro-tile) with every transpose combination, alpha/beta and padded leading dimensions, on its AVX2 and
 * its plain C++ micro-kernel, on one thread and split over the pool; bit-identical for any thread count
 * (exact resume depends on it); against OpenBLAS where this build has both; and selected on the native
 * backend against tfjs's cpu backend (matMul, fused matMul, gradients, Newton-Schulz, a model's loss and
 * gradients). CI builds with OpenBLAS, so every test here selects the portable GEMM explicitly.
 * Skipped where the kernel pack is not built (test/setup/capabilities.ts says so at the end of the run).
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, stopBackend } from '../../src/backend/index.ts';
import { loadNativeAddon, selectGemm, type GemmKind, type NativeAddon } from '../../src/backend/native/addon.ts';
import { createModel } from '../../src/model/transformer.ts';
import { newtonSchulz } from '../../src/ops/newton_schulz.ts';
import { resolveModelConfig } from '../../src/model/config.ts';
import { Rng } from '../../src/utils/rng.ts';
import { skipNative } from '../helpers/backends.ts';
import { has } from '../helpers/capabilities.ts';

const U = 2 ** -24; // float32 unit roundoff

const rng = new Rng(7);
const randomF32 = (n: number) => Float32Array.from(rng.normals(n, 1));

interface Case {
  M: number;
  N: number;
  K: number;
  ta: boolean;
  tb: boolean;
  alpha: number;
  beta: number;
  /** Extra elements per row of a, b and c beyond what they need (leading dimensions). */
  pad: [number, number, number];
}

/** Operands for a case: a, b, c with their leading dimensions (row-major, op(a) M x K, op(b) K x N). */
function operands(c: Case) {
  const lda = (c.ta ? c.M : c.K) + c.pad[0];
  const ldb = (c.tb ? c.K : c.N) + c.pad[1];
  const ldc = c.N + c.pad[2];
  const a = randomF32((c.ta ? c.K : c.M) * lda);
  const b = randomF32((c.tb ? c.N : c.K) * ldb);
  const cIn = randomF32(c.M * ldc);
  return { a, b, cIn, lda, ldb, ldc };
}

/**
 * Checks c (computed) against float64 on every element with the rounding-error bound of a float32 sum of
 * K products, |err| <= 2 (K + 8) u (|alpha| sum_k |a b| + |beta c|): any indexing, packing or edge bug is
 * far above it. Elements between rows (leading-dimension padding) must be untouched.
 */
function expectMatches(cs: Case, o: ReturnType<typeof operands>, got: Float32Array): void {
  const { M, N, K, ta, tb, alpha, beta } = cs;
  const { a, b, cIn, lda, ldb, ldc } = o;
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      let abs = 0;
      for (let k = 0; k < K; k++) {
        const p = (ta ? a[k * lda + i]! : a[i * lda + k]!) * (tb ? b[j * ldb + k]! : b[k * ldb + j]!);
        s += p;
        abs += Math.abs(p);
      }
      const cij = beta === 0 ? 0 : beta * cIn[i * ldc + j]!;
      const want = alpha * s + cij;
      const bound = 2 * (K + 8) * U * (Math.abs(alpha) * abs + Math.abs(cij)) + 1e-30;
      worst = Math.max(worst, Math.abs(got[i * ldc + j]! - want) / bound);
    }
    for (let j = N; j < ldc; j++) expect(got[i * ldc + j], `padding at row ${i}`).toBe(cIn[i * ldc + j]);
  }
  expect(worst, `${M}x${N}x${K} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} alpha ${alpha} beta ${beta}: error / bound`).toBeLessThanOrEqual(1);
}

function runPortable(addon: NativeAddon, cs: Case, o: ReturnType<typeof operands>, threaded: boolean): Float32Array {
  const c = o.cIn.slice();
  addon.gemmPortable(o.a, o.b, c, cs.M, cs.N, cs.K, cs.ta ? 1 : 0, cs.tb ? 1 : 0, o.lda, o.ldb, o.ldc, cs.alpha, cs.beta, threaded ? 1 : 0);
  return c;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [33, 65, 17],
  [130, 257, 129],
  [6, 16, 300], // one full micro-tile; K over one 256 block
];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

describe.skipIf(skipNative)('portable GEMM (kernels/native/gemm.cc) against float64', () => {
  let addon: NativeAddon;
  let threads0 = 1;
  beforeAll(() => {
    addon = loadNativeAddon();
    threads0 = addon.threads();
  });
  afterAll(() => {
    addon.setGemmThreadMin(2 ** 20);
    addon.setPoolThreads(threads0);
    addon.setGemm(addon.gemmKinds()[0]!, 'auto');
  });

  const isas = ['auto', 'generic'] as const;
  for (const isa of isas) {
    it(`odd shapes, every transpose, alpha/beta, leading dims (micro-kernel: ${isa})`, () => {
      addon.setGemm('portable', isa);
      if (isa === 'generic') expect(addon.gemmIsa()).toBe('generic');
      for (const [M, N, K] of SHAPES) {
        for (const [ta, tb] of TRANSPOSES) {
          for (const [alpha, beta] of [
            [1, 0],
            [0.5, -1.25],
            [-2, 1],
          ] as const) {
            const cs: Case = { M, N, K, ta, tb, alpha, beta, pad: [3, 1, 2] };
            const o = operands(cs);
            expectMatches(cs, o, runPortable(addon, cs, o, false));
          }
        }
      }
    });
  }

  it('the AVX2 micro-kernel is chosen where the CPU has AVX2/FMA (x86-64 only)', () => {
    addon.setGemm('portable', 'auto');
    const isa = addon.gemmIsa();
    expect(['AVX2', 'generic']).toContain(isa);
    if (process.arch !== 'x64' && process.arch !== 'ia32') expect(isa).toBe('generic');
    // 'avx2' is refused exactly where auto did not pick it.
    if (isa === 'generic') expect(() => addon.setGemm('portable', 'avx2')).toThrow(/not available/);
    else expect(() => addon.setGemm('portable', 'avx2')).not.toThrow();
    addon.setGemm('portable', 'auto');
  });

  it('large products split over the pool (several K blocks, tiles in both directions) match float64', () => {
    addon.setGemm('portable', 'auto');
    addon.setPoolThreads(3);
    for (const [M, N, K, ta, tb] of [
      [301, 263, 530, false, true],
      [97, 520, 270, true, false],
    ] as const) {
      const cs: Case = { M, N, K, ta, tb, alpha: 1, beta: 0.5, pad: [0, 5, 1] };
      const o = operands(cs);
      expectMatches(cs, o, runPortable(addon, cs, o, true));
    }
    addon.setPoolThreads(threads0);
  });

  it('bit-identical for 1, 2, 3 and 5 pool threads, threaded or not (output tiles only; K never split)', () => {
    for (const isa of isas) {
      addon.setGemm('portable', isa);
      addon.setGemmThreadMin(0); // every product below is split wherever threads > 1
      for (const [M, N, K, ta, tb] of [
        [130, 257, 600, false, true],
        [2048, 128, 128, false, true],
        [128, 352, 700, true, false],
        [37, 41, 19, true, true],
      ] as const) {
        const cs: Case = { M, N, K, ta, tb, alpha: 1, beta: 0, pad: [0, 0, 0] };
        const o = operands(cs);
        const first = runPortable(addon, cs, o, false);
        for (const n of [1, 2, 3, 5]) {
          addon.setPoolThreads(n);
          const again = runPortable(addon, cs, o, true);
          expect(Buffer.compare(Buffer.from(again.buffer), Buffer.from(first.buffer)), `${M}x${N}x${K} on ${n} threads (${isa})`).toBe(0);
        }
      }
      addon.setGemmThreadMin(2 ** 20);
    }
    addon.setPoolThreads(threads0);
    addon.setGemm('portable', 'auto');
  });

  it('beta = 0 never reads c (NaN there does not leak); K = 0 scales c by beta; M or N = 0 writes nothing', () => {
    addon.setGemm('portable', 'auto');
    const a = randomF32(9 * 4);
    const b = randomF32(4 * 5);
    const c = new Float32Array(9 * 5).fill(NaN);
    addon.gemmPortable(a, b, c, 9, 5, 4, 0, 0, 4, 5, 5, 1, 0, 0);
    expect(c.every(Number.isFinite)).toBe(true);
    const c2 = Float32Array.from({ length: 6 }, (_, i) => i + 1);
    addon.gemmPortable(new Float32Array(0), new Float32Array(0), c2, 2, 3, 0, 0, 0, 1, 3, 3, 1, 2, 0);
    expect(Array.from(c2)).toEqual([2, 4, 6, 8, 10, 12]);
    addon.gemmPortable(new Float32Array(0), new Float32Array(0), c2, 2, 3, 0, 0, 0, 1, 3, 3, 1, 0, 0);
    expect(Array.from(c2)).toEqual([0, 0, 0, 0, 0, 0]);
    const c3 = Float32Array.from([7]);
    addon.gemmPortable(new Float32Array(4), new Float32Array(4), c3, 0, 1, 4, 0, 0, 4, 1, 1, 1, 0, 0);
    expect(c3[0]).toBe(7);
  });

  it('refuses leading dimensions and operands too small for the sizes, and unknown GEMMs', () => {
    expect(() =>
      addon.gemmPortable(new Float32Array(6), new Float32Array(6), new Float32Array(4), 2, 2, 3, 0, 0, 2, 2, 2, 1, 0, 0),
    ).toThrow(/leading dimensions/);
    expect(() =>
      addon.gemmPortable(new Float32Array(5), new Float32Array(6), new Float32Array(4), 2, 2, 3, 0, 0, 3, 2, 2, 1, 0, 0),
    ).toThrow(/shorter/);
    expect(() => addon.setGemm('mkl' as GemmKind)).toThrow(/unknown GEMM 'mkl'/);
    expect(() => addon.setGemm('portable', 'sse9' as 'auto')).toThrow(/not available/);
    if (!addon.gemmKinds().includes('openblas')) expect(() => addon.setGemm('openblas')).toThrow(/no OpenBLAS/);
  });

  it('selection: gemmKind follows setGemm, and the pack always has the portable GEMM', () => {
    expect(addon.gemmKinds()).toContain('portable');
    for (const k of addon.gemmKinds()) {
      addon.setGemm(k);
      expect(addon.gemmKind()).toBe(k);
      expect(addon.info()).toMatch(k === 'openblas' ? /^OpenBLAS \(/ : /^portable (AVX2|generic) GEMM/);
    }
  });

  // Skipped (and reported at the end of the run; a failure under OSP_REQUIRE_ALL=1) where the pack was built without OpenBLAS.
  it.skipIf(!has.openblas)('matches OpenBLAS at the model shapes, batches included', () => {
    expect(addon.gemmKinds()).toContain('openblas');
    for (const [batch, M, N, K, ta, tb] of [
      [1, 2048, 128, 128, false, true],
      [1, 128, 352, 2048, true, false],
      [1, 2048, 256, 704, false, true],
      [64, 128, 32, 128, false, false],
      [64, 128, 128, 32, false, true],
      [3, 37, 129, 45, true, true],
    ] as const) {
      const a = randomF32(batch * M * K);
      const b = randomF32(batch * K * N);
      const aOff = Int32Array.from({ length: batch }, (_, i) => i * M * K);
      const bOff = Int32Array.from({ length: batch }, (_, i) => i * K * N);
      const outs = (['openblas', 'portable'] as const).map((kind) => {
        addon.setGemm(kind);
        const out = new Float32Array(batch * M * N);
        addon.gemm(a, b, out, batch, M, N, K, ta ? 1 : 0, tb ? 1 : 0, aOff, bOff);
        return out;
      });
      let scale = 0;
      let worst = 0;
      for (let i = 0; i < outs[0]!.length; i++) {
        scale = Math.max(scale, Math.abs(outs[0]![i]!));
        worst = Math.max(worst, Math.abs(outs[0]![i]! - outs[1]![i]!));
      }
      // Both are float32 sums of K products of unit normals: they differ by rounding, ~sqrt(K) u |c|.
      expect(worst / scale, `${batch}x[${M}x${N}x${K}]`).toBeLessThan(2e-6 * Math.sqrt(K));
    }
  });
});

describe.skipIf(skipNative)('native backend with the portable GEMM selected, against tfjs cpu', () => {
  let addon: NativeAddon;
  let kind0: GemmKind;
  beforeAll(async () => {
    addon = loadNativeAddon();
    kind0 = addon.gemmKind();
    await startBackend('cpu');
    await startBackend('native');
    addon.setGemm('portable', 'auto');
  });
  afterAll(async () => {
    addon.setGemm(kind0, 'auto');
    await stopBackend();
  });

  /** f on cpu and on native; max |difference| relative to max |cpu value|. */
  async function relErr(f: () => tf.Tensor | tf.Tensor[]): Promise<number> {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const r = tf.tidy(f);
      const list = Array.isArray(r) ? r : [r];
      const out = await Promise.all(list.map(async (t) => ({ shape: t.shape, v: (await t.data()) as Float32Array })));
      tf.dispose(list);
      return out;
    };
    const ref = await run('cpu');
    const nat = await run('native');
    let worst = 0;
    ref.forEach((r, i) => {
      expect(nat[i]!.shape).toEqual(r.shape);
      let scale = 0;
      for (const x of r.v) scale = Math.max(scale, Math.abs(x));
      for (let j = 0; j < r.v.length; j++) worst = Math.max(worst, Math.abs(nat[i]!.v[j]! - r.v[j]!) / Math.max(scale, 1e-30));
    });
    return worst;
  }
  const fixed = (shape: number[], scale = 1) => {
    const v = Float32Array.from(
      rng.normals(
        shape.reduce((a, d) => a * d, 1),
        scale,
      ),
    );
    return () => tf.tensor(v, shape);
  };

  it('the backend line names the portable GEMM', async () => {
    const info = await startBackend('native');
    expect(info.detail).toMatch(/over portable (AVX2|generic) GEMM; pool threads \d+/);
  });

  it('tf.matMul at training shapes (threaded and batch-parallel), every transpose', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[512, 128], [352, 128], false, true], // x W^T, split over the pool
      [[512, 128], [512, 352], true, false], // dW = x^T dy
      [[16, 128, 32], [16, 128, 32], false, true], // attention q k^T: one product per pool thread
      [[16, 128, 128], [16, 128, 32], false, false], // attention p v
      [[3, 37, 45], [45, 29], false, false], // a batch against one matrix
      [[45, 37], [29, 45], true, true],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const a = fixed(sa);
      const b = fixed(sb);
      expect(await relErr(() => tf.matMul(a(), b(), ta, tb)), `[${sa}] x [${sb}]`).toBeLessThan(1e-5);
    }
  });

  it('fused matMul with bias and relu, and the gradients of a batched matMul', async () => {
    const a = fixed([300, 70]);
    const b = fixed([70, 90]);
    const bias = fixed([90]);
    expect(await relErr(() => tf.fused.matMul({ a: a(), b: b(), bias: bias(), activation: 'relu' }))).toBeLessThan(1e-5);
    const x = fixed([4, 33, 20]);
    const y = fixed([4, 20, 17]);
    expect(await relErr(() => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(p, q))))([x(), y()]))).toBeLessThan(1e-5);
  });

  it('Newton-Schulz (syrk, symm and gemm on the portable GEMM) agrees with the cpu reference', async () => {
    for (const [m, n] of [
      [128, 352],
      [352, 128],
      [37, 23],
    ]) {
      const g = fixed([m, n]);
      expect(await relErr(() => newtonSchulz(g() as tf.Tensor2D, { steps: 5, coefficients: 'quintic' })), `${m}x${n}`).toBeLessThan(1e-4);
    }
  });

  it("a d=64 model's loss and gradients agree with cpu", async () => {
    const config = resolveModelConfig({
      vocabSize: 64,
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      maxSeqLen: 32,
      norm: 'ssnorm',
      embedding: 'embproj',
    });
    const tokens = Int32Array.from({ length: 4 * 32 }, (_, i) => (i * 7 + 3) % 64);
    const targets = Int32Array.from({ length: 4 * 32 }, (_, i) => (i * 5 + 1) % 64);
    const results: Float32Array[][] = [];
    for (const backend of ['cpu', 'native']) {
      await tf.setBackend(backend);
      const model = createModel(config, { seed: 3 });
      const x = tf.tensor2d(tokens, [4, 32], 'int32');
      const y = tf.tensor2d(targets, [4, 32], 'int32');
      const vars = [...model.params.values()];
      const { value, grads } = tf.variableGrads(() => model.loss(x, y), vars);
      // In the model's parameter order (tfjs's variable names differ between the two models).
      results.push([
        (await value.data()) as Float32Array,
        ...(await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array))),
      ]);
      tf.dispose([x, y, value, ...Object.values(grads)]);
      model.dispose();
    }
    const [ref, nat] = results as [Float32Array[], Float32Array[]];
    expect(nat.length).toBe(ref.length);
    expect(Math.abs(nat[0]![0]! - ref[0]![0]!) / ref[0]![0]!).toBeLessThan(1e-5);
    for (let i = 1; i < ref.length; i++) {
      let num = 0;
      let den = 0;
      for (let j = 0; j < ref[i]!.length; j++) {
        num += (nat[i]![j]! - ref[i]![j]!) ** 2;
        den += ref[i]![j]! ** 2;
      }
      expect(Math.sqrt(num / Math.max(den, 1e-30)), `gradient ${i}`).toBeLessThan(1e-4);
    }
  });
});

describe.skipIf(skipNative)('OSP_NATIVE_GEMM', () => {
  it('portable, set before the process starts, selects the portable GEMM when the addon loads', () => {
    const code = `import('./src/backend/index.ts').then((m) => m.startBackend('native')).then((i) => console.log('detail: ' + i.detail), (e) => console.log('error: ' + e.message))`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      encoding: 'utf8',
      env: { ...process.env, OSP_NATIVE_GEMM: 'portable' },
    });
    expect(r.stdout).toMatch(/detail: native kernels over portable (AVX2|generic) GEMM/);
  });

  it('each value selects its GEMM; an unknown one, or openblas on a build without it, is refused with the fix', () => {
    const addon = loadNativeAddon();
    const kind0 = addon.gemmKind();
    try {
      selectGemm(addon, 'portable');
      expect(addon.gemmKind()).toBe('portable');
      selectGemm(addon, ''); // empty: leaves the selection alone
      expect(addon.gemmKind()).toBe('portable');
      expect(() => selectGemm(addon, 'fastest')).toThrow(/OSP_NATIVE_GEMM must be one of openblas, portable, got 'fastest'/);
      if (addon.gemmKinds().includes('openblas')) {
        selectGemm(addon, 'openblas');
        expect(addon.gemmKind()).toBe('openblas');
      } else {
        expect(() => selectGemm(addon, 'openblas')).toThrow(
          /OSP_NATIVE_GEMM=openblas, but this build of the kernel pack has only portable: .*libopenblas-dev/,
        );
      }
    } finally {
      addon.setGemm(kind0);
    }
  });
});
