/**
 * Hadamard rotations for "FFN Had" (OSP's quantization setting, after QuaRot): down_proj's weight is
 * rotated offline, W' = W H^T, and its input is rotated online, x' = H x, so that W' x' = W H^T H x = W x
 * in exact arithmetic while an outlier channel of x is spread over many channels before the activation
 * is quantized.
 *
 * Widths that are not a power of two (Llama's intermediate sizes: 11008 = 2^8 * 43, the 8/3 rule here:
 * 96 = 2^5 * 3, 352 = 2^5 * 11) have no Sylvester Hadamard matrix. QuaRot builds one as a Kronecker
 * product of a power-of-two Sylvester matrix with a special hand-made Hadamard matrix of order 12, 20,
 * 28, 36, 40, 44, 52, 60, 108, 140, 156 or 172. osp-lab uses a simpler orthogonal substitute: a
 * block-diagonal matrix of Sylvester blocks whose size is the largest power of two dividing the width.
 * It is exactly orthogonal (so the rotation never changes the full-precision function) but mixes each
 * channel only with the others of its block, so it spreads an outlier over b channels instead of all
 * of them (b = 32 for 96 or 352). For an odd width the block is 1 and the rotation is the identity.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.ts';

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;

/**
 * The n x n Sylvester Hadamard matrix scaled by 1/sqrt(n), so that H H^T = I; row-major. H_1 = [1],
 * H_2n = [[H_n, H_n], [H_n, -H_n]] / sqrt(2). Sylvester matrices are symmetric (H^T = H).
 *
 * @param n a power of two
 * @example hadamardMatrix(2) // [0.7071, 0.7071, 0.7071, -0.7071]
 */
export function hadamardMatrix(n: number): Float32Array {
  if (!isPowerOfTwo(n) || n > 1 << 15) {
    throw new ConfigError('hadamard.n', `a Sylvester Hadamard matrix needs a power of two in [1, 32768], got ${n}`);
  }
  // Entry (i, j) of the unscaled Sylvester matrix is (-1)^popcount(i & j): the recursion unrolled.
  const h = new Float32Array(n * n);
  const s = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let bits = i & j;
      let parity = 0;
      while (bits) {
        parity ^= 1;
        bits &= bits - 1;
      }
      h[i * n + j] = parity ? -s : s;
    }
  }
  return h;
}

/**
 * The Sylvester block size used for a width: the largest power of two dividing it (1 for odd widths).
 * @example hadamardBlockSize(352) // 32
 */
export function hadamardBlockSize(width: number): number {
  if (!Number.isInteger(width) || width < 1) throw new ConfigError('hadamard.width', `expected a positive integer, got ${width}`);
  // Two's complement: width & -width isolates the lowest set bit, the largest power-of-two divisor.
  return width & -width;
}

/**
 * The dense [width, width] block-diagonal rotation blockdiag(H_b, ..., H_b), b = hadamardBlockSize(width);
 * row-major, orthogonal and symmetric. Meant for tests and small widths; the transforms below never
 * build it.
 */
export function blockHadamardMatrix(width: number): Float32Array {
  const b = hadamardBlockSize(width);
  const hb = sylvesterCached(b);
  const out = new Float32Array(width * width);
  for (let start = 0; start < width; start += b) {
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < b; j++) out[(start + i) * width + start + j] = hb[i * b + j]!;
    }
  }
  return out;
}

const cache = new Map<number, Float32Array>();
function sylvesterCached(b: number): Float32Array {
  let h = cache.get(b);
  if (!h) {
    h = hadamardMatrix(b);
    cache.set(b, h);
  }
  return h;
}

/** In-place fast Walsh-Hadamard transform of v[off, off + n) in Sylvester order, unscaled. */
export function fwht(v: Float64Array, off: number, n: number): void {
  for (let h = 1; h < n; h *= 2) {
    for (let i = off; i < off + n; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const a = v[j]!;
        const c = v[j + h]!;
        v[j] = a + c;
        v[j + h] = a - c;
      }
    }
  }
}

/**
 * Offline half of FFN Had: W' = W H^T for down_proj's weight W [rows = d, cols = intermediate]
 * ([out, in] layout), H the block Hadamard of width `cols`. Then W x = W' (H x), with H x computed
 * online by hadamardRotate. Row r of W' is H applied to row r of W; computed in float64 with a fast
 * Walsh-Hadamard transform per block and rounded once to float32.
 *
 * @example const wRot = rotateDownProj(w, d, intermediate); // pair with hadamardRotate(x) on down's input
 */
export function rotateDownProj(wDown: Float32Array, rows: number, cols: number): Float32Array {
  if (wDown.length !== rows * cols) {
    throw new ConfigError('hadamard.wDown', `expected ${rows} x ${cols} = ${rows * cols} values, got ${wDown.length}`);
  }
  const b = hadamardBlockSize(cols);
  const s = 1 / Math.sqrt(b);
  const row = new Float64Array(cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) row[c] = wDown[r * cols + c]!;
    for (let start = 0; start < cols; start += b) fwht(row, start, b);
    for (let c = 0; c < cols; c++) out[r * cols + c] = row[c]! * s;
  }
  return out;
}

/**
 * Online half of FFN Had: each row x of [N, width] becomes H x (H the block Hadamard of the width),
 * i.e. the result is X H^T. A matmul of [N * width / b, b] with H_b rather than a Walsh-Hadamard
 * butterfly: one dense product is what every tfjs backend does fastest.
 *
 * @example const y = hadamardRotate(h); // h: down_proj's input [N, intermediate]
 */
export function hadamardRotate(x: tf.Tensor2D): tf.Tensor2D {
  const [n, width] = x.shape;
  const b = hadamardBlockSize(width);
  if (b === 1) return tf.clone(x);
  return tf.tidy(() => {
    const hb = tf.tensor2d(sylvesterCached(b), [b, b]);
    const blocks = tf.reshape(x, [(n * width) / b, b]) as tf.Tensor2D;
    // Each block row becomes blockRow H_b^T = (H_b blockRow^T)^T.
    return tf.reshape(tf.matMul(blocks, hb, false, true), [n, width]) as tf.Tensor2D;
  });
}
