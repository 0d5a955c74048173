// OspRmsNormGrad, pass 1 of 3: r_i = 1 / sqrt(mean_j x_ij^2 + eps) per row, [rows].
// Row layout as rms_norm.wgsl: RPW rows per workgroup, LPR lanes per row, one barrier, then the
// row's first lane adds its LPR partial sums.
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl; row_sum.wgsl.
// Bindings: result [rows], x [rows * d]. Uniforms: rows, d, eps.

fn main(index : i32) {
  let r = rowLane(index);
  let base = r.row * uniforms.d;
  var s = 0.0;
  if (r.live) {
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      let v = x[base + j];
      s += v * v;
    }
  }
  let total = rowTotal(r, s);
  if (r.live && r.sub == 0) {
    result[r.row] = 1.0 / sqrt(total / f32(uniforms.d) + uniforms.eps);
  }
}
