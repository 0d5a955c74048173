// OspNewtonSchulz, the three products of a step, each with its epilogue fused:
//   gram    A  = X X^T             lhs = X [r, c], rhs = X read transposed (RHS_T), EPI = 0
//   poly    B  = b A + c (A A)     lhs = A, rhs = A, beta = c, alpha = b, EPI = 1 (adds alpha*lhs)
//   update  X' = a X + B X         lhs = B, rhs = X, beta = 1, alpha = a, EPI = 2 (adds alpha*rhs)
// out[i, j] = beta * sum_k lhs[i, k] rhs[k, j] + alpha * E[i, j], out [M, N], inner size K.
// OUT_T writes out^T (the last update of a tall input returns to the [m, n] orientation).
//
// Tiling: a workgroup of 64 lanes computes one TILE x TILE (32 x 32) output tile. The inner
// dimension is walked in TILE-wide slabs: the lanes cooperatively stage a 32 x 32 slab of lhs and
// of rhs in workgroup memory (16 elements each per lane, zero-padded past the matrix edge), then
// lane (tx, ty) accumulates a 4 x 4 register block of outputs at rows ty + 8 u and columns
// tx + 8 w. Workgroups are numbered row-major over the tile grid, with a flat dispatch.
//
// Host-provided constants: const RHS_T : bool; const EPI : i32; const OUT_T : bool;
// Bindings: result, lhs, rhs. Uniforms: mmM, mmN, mmK, tilesN, alpha, beta.

const TILE : i32 = 32;
const LANES : i32 = 64;

var<workgroup> tileL : array<f32, 1024>; // [TILE rows][TILE k]
var<workgroup> tileR : array<f32, 1024>; // [TILE k][TILE cols]

fn rhsAt(k : i32, j : i32) -> f32 {
  if (RHS_T) {
    return rhs[j * uniforms.mmK + k];
  }
  return rhs[k * uniforms.mmN + j];
}

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  let tileRow = (wg / uniforms.tilesN) * TILE;
  let tileCol = (wg % uniforms.tilesN) * TILE;
  let tx = lane % 8;
  let ty = lane / 8;
  let M = uniforms.mmM;
  let N = uniforms.mmN;
  let K = uniforms.mmK;

  var acc : array<array<f32, 4>, 4>;
  for (var u = 0; u < 4; u++) {
    for (var w = 0; w < 4; w++) {
      acc[u][w] = 0.0;
    }
  }

  for (var k0 = 0; k0 < K; k0 += TILE) {
    for (var q = 0; q < 16; q++) {
      let e = lane + LANES * q;
      let a = e / TILE;
      let b = e % TILE;
      // lhs slab: row tileRow + a, inner index k0 + b
      let li = tileRow + a;
      let lk = k0 + b;
      var lv = 0.0;
      if (li < M && lk < K) {
        lv = lhs[li * K + lk];
      }
      tileL[e] = lv;
      // rhs slab: inner index k0 + a, column tileCol + b
      let rk = k0 + a;
      let rj = tileCol + b;
      var rv = 0.0;
      if (rk < K && rj < N) {
        rv = rhsAt(rk, rj);
      }
      tileR[e] = rv;
    }
    workgroupBarrier();
    for (var k = 0; k < TILE; k++) {
      var bcol : array<f32, 4>;
      for (var w = 0; w < 4; w++) {
        bcol[w] = tileR[k * TILE + tx + 8 * w];
      }
      for (var u = 0; u < 4; u++) {
        let av = tileL[(ty + 8 * u) * TILE + k];
        for (var w = 0; w < 4; w++) {
          acc[u][w] = fma(av, bcol[w], acc[u][w]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var u = 0; u < 4; u++) {
    let i = tileRow + ty + 8 * u;
    for (var w = 0; w < 4; w++) {
      let j = tileCol + tx + 8 * w;
      if (i < M && j < N) {
        var o = uniforms.beta * acc[u][w];
        if (EPI == 1) {
          o += uniforms.alpha * lhs[i * K + j];
        } else if (EPI == 2) {
          o += uniforms.alpha * rhs[i * N + j];
        }
        if (OUT_T) {
          result[j * M + i] = o;
        } else {
          result[i * N + j] = o;
        }
      }
    }
  }
}
