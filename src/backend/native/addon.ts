/**
 * Loads the native kernel pack (kernels/native, built by `npm run build:native`) and describes its
 * functions. Every function writes into output arrays the caller allocated; see kernels/native/kernels.h.
 *
 * Matrix products: OpenBLAS when the build found it, else the pack's portable GEMM (kernels/native/gemm.cc);
 * a build with OpenBLAS carries both. OSP_NATIVE_GEMM=openblas|portable picks one when the addon loads
 * (default: OpenBLAS where built in); `setGemm` switches at run time (tests, bench).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { BackendUnavailableError } from '../../errors.ts';

export interface NativeAddon {
  gemm(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    M: number,
    N: number,
    K: number,
    transA: number,
    transB: number,
    aOffsets: Int32Array,
    bOffsets: Int32Array,
  ): void;
  biasAct(out: Float32Array, bias: Float32Array | null, rows: number, n: number, act: number, alpha: number): void;
  binary(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    shape: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  transpose(x: Float32Array, out: Float32Array, shape: Int32Array, perm: Int32Array): void;
  copyRows(
    src: Float32Array | Int32Array,
    srcOffset: number,
    srcStride: number,
    dst: Float32Array | Int32Array,
    dstOffset: number,
    dstStride: number,
    rows: number,
    cols: number,
  ): void;
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, inner: number): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, n: number): void;
  softmaxGrad(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, n: number): void;
  gather(x: Float32Array, indices: Int32Array, out: Float32Array, outer: number, axisSize: number, inner: number): void;
  segmentSum(data: Float32Array, ids: Int32Array, out: Float32Array, inner: number, numSegments: number): void;
  rmsNorm(x: Float32Array, w: Float32Array, y: Float32Array, rows: number, d: number, wlen: number, eps: number): void;
  rmsNormGrad(
    dy: Float32Array,
    x: Float32Array,
    w: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    rows: number,
    d: number,
    wlen: number,
    eps: number,
  ): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, loss: Float32Array, N: number, V: number): void;
  crossEntropyGrad(dloss: Float32Array, logits: Float32Array, targets: Int32Array, dlogits: Float32Array, N: number, V: number): void;
  adamw(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    decay: number,
    bc1: number,
    bc2Sqrt: number,
  ): void;
  newtonSchulz(
    x: Float32Array,
    out: Float32Array,
    m: number,
    n: number,
    steps: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    normScale: number,
    normEps: number,
  ): void;
  channelMoments(x: Float32Array, token: Float32Array, channel: Float32Array, N: number, d: number): void;
  /** kernels/native/exp_approx.h's exponential (the attention and SwiGLU kernels' exp) on every element; for its test. */
  expApprox(x: Float32Array, out: Float32Array, n: number): void;
  /** RoPE of x [rows = B*T*heads, hd] with tables [T, hd] (OspRope); ropeGrad the same call on dy (OspRopeGrad). */
  rope(x: Float32Array, cos: Float32Array, sin: Float32Array, y: Float32Array, rows: number, T: number, heads: number, hd: number): void;
  ropeGrad(
    dy: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    dx: Float32Array,
    rows: number,
    T: number,
    heads: number,
    hd: number,
  ): void;
  swiglu(gate: Float32Array, up: Float32Array, h: Float32Array, n: number): void;
  swigluGrad(dh: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;
  /** fwd [B*T, H*hd + H]: every head's output per token, then every head's log-sum-exp (OspCausalAttention). */
  causalAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    fwd: Float32Array,
    B: number,
    T: number,
    H: number,
    Hkv: number,
    hd: number,
    scale: number,
  ): void;
  causalAttentionGrad(
    dy: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    fwd: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    B: number,
    T: number,
    H: number,
    Hkv: number,
    hd: number,
    scale: number,
  ): void;
  setThreads(n: number): void;
  setPoolThreads(n: number): void;
  /** Largest M*N*K that a batched product runs one matrix per pool thread (0: never); a tuning knob. */
  setGemmBatchParallel(maxMNK: number): void;
  info(): string;
  threads(): number;
  /** Selects the GEMM; `isa` forces the portable micro-kernel (auto: AVX2/FMA when the CPU has it). Throws when not built in. */
  setGemm(kind: GemmKind, isa?: 'auto' | 'avx2' | 'generic'): void;
  /** The GEMM in use. */
  gemmKind(): GemmKind;
  /** The GEMMs this build has: ['openblas', 'portable'] with OpenBLAS, ['portable'] without. */
  gemmKinds(): GemmKind[];
  /** The portable micro-kernel's instruction set on this CPU: 'AVX2' or 'generic'. */
  gemmIsa(): string;
  /** Smallest M*N*K the portable GEMM splits over the pool (a tuning knob; default 2^20). */
  setGemmThreadMin(mnk: number): void;
  /** Row-major c = alpha op(a) op(b) + beta c with the portable GEMM, whatever is selected; leading dimensions in elements. */
  gemmPortable(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    M: number,
    N: number,
    K: number,
    transA: number,
    transB: number,
    lda: number,
    ldb: number,
    ldc: number,
    alpha: number,
    beta: number,
    threaded: number,
  ): void;
}

export type GemmKind = 'openblas' | 'portable';
export const GEMM_KINDS: readonly GemmKind[] = ['openblas', 'portable'];

/** Where `npm run build:native` puts the addon; OSP_NATIVE_ADDON points elsewhere (a build of your own). */
export const ADDON_PATH =
  process.env.OSP_NATIVE_ADDON ?? fileURLToPath(new URL('../../../kernels/native/build/Release/osp_native.node', import.meta.url));

export const BUILD_HELP =
  'install a C++ compiler (Debian/Ubuntu: apt-get install g++ make python3), then run `npm run build:native`; with the OpenBLAS ' +
  'headers as well (apt-get install libopenblas-dev; macOS: brew install openblas) its matrix products are faster';

let addon: NativeAddon | undefined;

/** The loaded addon; throws BackendUnavailableError (with the command that fixes it) when it is not built. */
export function loadNativeAddon(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) {
    throw new BackendUnavailableError('native', `the native kernel pack is not built (${ADDON_PATH} is missing): ${BUILD_HELP}`);
  }
  let loaded: NativeAddon;
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (e) {
    throw new BackendUnavailableError('native', `the native kernel pack failed to load (${(e as Error).message}): ${BUILD_HELP}`);
  }
  if (typeof loaded.setGemm !== 'function') {
    throw new BackendUnavailableError(
      'native',
      `the native kernel pack at ${ADDON_PATH} is an old build (no GEMM selection): run \`npm run build:native\``,
    );
  }
  selectGemm(loaded, process.env.OSP_NATIVE_GEMM);
  addon = loaded;
  return addon;
}

/** Applies OSP_NATIVE_GEMM (unset or empty: the build's default, OpenBLAS where built in). Exported for tests. */
export function selectGemm(a: NativeAddon, env: string | undefined): void {
  if (env === undefined || env === '') return;
  if (!(GEMM_KINDS as readonly string[]).includes(env)) {
    throw new BackendUnavailableError('native', `OSP_NATIVE_GEMM must be one of ${GEMM_KINDS.join(', ')}, got '${env}'`);
  }
  if (!a.gemmKinds().includes(env as GemmKind)) {
    throw new BackendUnavailableError(
      'native',
      `OSP_NATIVE_GEMM=${env}, but this build of the kernel pack has only ${a.gemmKinds().join(', ')}: install the OpenBLAS headers ` +
        '(apt-get install libopenblas-dev; macOS: brew install openblas) and run `npm run build:native`, or unset OSP_NATIVE_GEMM',
    );
  }
  a.setGemm(env as GemmKind);
}
