// OspNewtonSchulz, the three products of a step, each with its epilogue fused:
//   gram    A  = X X^T             lhs = X [r, c], rhs = X read transposed (RHS_T), EPI = 0
//   poly    B  = b A + c (A A)     lhs = A, rhs = A, beta = c, alpha = b, EPI = 1 (adds alpha*lhs)
//   update  X' = a X + B X         lhs = B, rhs = X, beta = 1, alpha = a, EPI = 2 (adds alpha*rhs)
// out[i, j] = beta * sum_k lhs[i, k] rhs[k, j] + alpha * E[i, j], out [M, N], inner size K.
// OUT_T writes out^T (the last update of a tall input returns to the [m, n] orientation).
// SYM (gram and poly, whose outputs are symmetric: A = X X^T, and A A, b A + c A A for symmetric A)
// computes only the tiles on and above the diagonal and writes each off-diagonal tile twice, at
// (i, j) and (j, i): about half the work. The mirrored values are exact: (X X^T)_ji and (A A)_ji
// are the same products summed in the same order.
//
// Tiling: a workgroup of 64 lanes computes one TILE x TILE (32 x 32) output tile. The inner
// dimension is walked in TILE-wide slabs: the lanes cooperatively stage a 32 x 32 slab of lhs and
// of rhs in workgroup memory (16 elements each per lane, zero-padded past the matrix edge), then
// lane (tx, ty) accumulates a 4 x 4 register block of outputs, rows 4 ty .. 4 ty + 3 and columns
// 4 tx .. 4 tx + 3. The slabs are stored as vec4s along the lane's block (the lhs slab transposed,
// [k][row], the rhs slab [k][col]) so each k step is two vec4 loads and four vec4 FMAs, with no
// dynamically indexed private arrays (which software adapters spill to memory). Workgroups are
// numbered row-major over the tile grid, with a flat dispatch.
//
// Host-provided constants: const RHS_T : bool; const EPI : i32; const OUT_T : bool; const SYM : bool;
// Bindings: result, lhs, rhs. Uniforms: mmM, mmN, mmK, tilesN, alpha, beta.

const TILE : i32 = 32;
const LANES : i32 = 64;

var<workgroup> slabL : array<vec4<f32>, 256>; // [k][row / 4], rows of the lane block in one vec4
var<workgroup> slabR : array<vec4<f32>, 256>; // [k][col / 4]

fn rhsAt(k : i32, j : i32) -> f32 {
  if (RHS_T) {
    return rhs[j * uniforms.mmK + k];
  }
  return rhs[k * uniforms.mmN + j];
}

fn epilogue(i : i32, j : i32, v : f32, mirror : bool) {
  let M = uniforms.mmM;
  let N = uniforms.mmN;
  if (i < M && j < N) {
    var o = uniforms.beta * v;
    if (EPI == 1) {
      o += uniforms.alpha * lhs[i * uniforms.mmK + j];
    } else if (EPI == 2) {
      o += uniforms.alpha * rhs[i * N + j];
    }
    if (OUT_T) {
      result[j * M + i] = o;
    } else {
      result[i * N + j] = o;
    }
    if (mirror) {
      result[j * N + i] = o;
    }
  }
}

fn main(index : i32) {
  let lane = i32(localId.x);
  let wg = index / LANES;
  var tr = wg / uniforms.tilesN;
  var tc = wg % uniforms.tilesN;
  if (SYM) {
    // wg enumerates the upper triangle of the (square) tile grid row by row.
    var rest = wg;
    tr = 0;
    while (tr < uniforms.tilesN && rest >= uniforms.tilesN - tr) {
      rest -= uniforms.tilesN - tr;
      tr++;
    }
    tc = tr + rest;
  }
  let tileRow = tr * TILE;
  let tileCol = tc * TILE;
  let mirror = SYM && tr != tc;
  let tx = lane % 8;
  let ty = lane / 8;
  let M = uniforms.mmM;
  let N = uniforms.mmN;
  let K = uniforms.mmK;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);

  for (var k0 = 0; k0 < K; k0 += TILE) {
    for (var q = 0; q < 16; q++) {
      let e = lane + LANES * q;
      let a = e / TILE;
      let b = e % TILE;
      // lhs slab element (row tileRow + a, inner k0 + b), stored at [b][a]
      let li = tileRow + a;
      let lk = k0 + b;
      var lv = 0.0;
      if (li < M && lk < K) {
        lv = lhs[li * K + lk];
      }
      slabL[b * 8 + a / 4][a % 4] = lv;
      // rhs slab element (inner k0 + a, column tileCol + b), stored at [a][b]
      let rk = k0 + a;
      let rj = tileCol + b;
      var rv = 0.0;
      if (rk < K && rj < N) {
        rv = rhsAt(rk, rj);
      }
      slabR[a * 8 + b / 4][b % 4] = rv;
    }
    workgroupBarrier();
    for (var k = 0; k < TILE; k++) {
      let av = slabL[k * 8 + ty];
      let bv = slabR[k * 8 + tx];
      acc0 = fma(vec4<f32>(av.x), bv, acc0);
      acc1 = fma(vec4<f32>(av.y), bv, acc1);
      acc2 = fma(vec4<f32>(av.z), bv, acc2);
      acc3 = fma(vec4<f32>(av.w), bv, acc3);
    }
    workgroupBarrier();
  }

  let i0 = tileRow + 4 * ty;
  let j0 = tileCol + 4 * tx;
  let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var u = 0; u < 4; u++) {
    let row = accs[u];
    epilogue(i0 + u, j0, row.x, mirror);
    epilogue(i0 + u, j0 + 1, row.y, mirror);
    epilogue(i0 + u, j0 + 2, row.z, mirror);
    epilogue(i0 + u, j0 + 3, row.w, mirror);
  }
}
