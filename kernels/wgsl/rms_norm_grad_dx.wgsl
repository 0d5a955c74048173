// OspRmsNormGrad, pass 2 of 3: dx = r (g - xh mean(g xh)) with g = dy w and xh = x r.
// mean(g xh) = r * sum_j(g_j x_j) / d, so one reduction per row suffices (r comes from pass 1).
// Row layout as rms_norm.wgsl: RPW rows per workgroup, LPR lanes per row, strided partial sums,
// one barrier, every lane of a row adds the row's LPR partials, then writes its slice of dx.
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl; row_sum.wgsl.
// Bindings: result [rows * d], dy [rows * d], x [rows * d], weight [d] or [1], rstd [rows].
// Uniforms: rows, d, wStride (1 for weight [d], 0 for weight [1]).

fn main(index : i32) {
  let r = rowLane(index);
  let base = r.row * uniforms.d;
  var s = 0.0;
  if (r.live) {
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      s += dy[base + j] * weight[j * uniforms.wStride] * x[base + j];
    }
  }
  let total = rowTotal(r, s);
  if (r.live) {
    let rs = rstd[r.row];
    // mean(g xh) = r * sum(g x) / d
    let meanGXh = rs * total / f32(uniforms.d);
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      let g = dy[base + j] * weight[j * uniforms.wStride];
      let xh = x[base + j] * rs;
      result[base + j] = rs * (g - xh * meanGXh);
    }
  }
}
