// OspRmsNormGrad, pass 2 of 3: dx = r (g - xh mean(g xh)) with g = dy w and xh = x r.
// mean(g xh) = r * sum_j(g_j x_j) / d, so one reduction per row suffices (r comes from pass 1).
// Row layout as rms_norm.wgsl: RPW rows per workgroup, LPR lanes per row, strided partial sums,
// one barrier, every lane of a row adds the row's LPR partials, then writes its slice of dx.
//
// Host-provided constants: const LPR : i32; const RPW : i32;
// Bindings: result [rows * d], dy [rows * d], x [rows * d], weight [d] or [1], rstd [rows].
// Uniforms: rows, d, wStride (1 for weight [d], 0 for weight [1]).

var<workgroup> partial : array<f32, LPR * RPW>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let sub = lane % LPR;
  let first = lane - sub;
  let row = (index / (LPR * RPW)) * RPW + lane / LPR;
  let live = row < uniforms.rows;
  let base = row * uniforms.d;
  var s = 0.0;
  if (live) {
    for (var j = sub; j < uniforms.d; j += LPR) {
      s += dy[base + j] * weight[j * uniforms.wStride] * x[base + j];
    }
  }
  partial[lane] = s;
  workgroupBarrier();
  var total = 0.0;
  for (var t = 0; t < LPR; t++) {
    total += partial[first + t];
  }
  if (live) {
    let r = rstd[row];
    // mean(g xh) = r * sum(g x) / d
    let meanGXh = r * total / f32(uniforms.d);
    for (var j = sub; j < uniforms.d; j += LPR) {
      let g = dy[base + j] * weight[j * uniforms.wStride];
      let xh = x[base + j] * r;
      result[base + j] = r * (g - xh * meanGXh);
    }
  }
}
