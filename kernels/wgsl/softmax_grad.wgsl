// OspSoftmaxGrad: dx = y dy - y sum_j(dy_j y_j) over the last axis (tfjs's formula in one pass
// instead of four), x viewed as [rows, d]. Row layout as rms_norm.wgsl: RPW rows per workgroup,
// LPR lanes per row, strided partial sums of dy y, one barrier, every lane of a row adds the row's
// LPR partials, then writes its slice of dx.
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl; row_sum.wgsl.
// Bindings: result [rows * d], dy [rows * d], y [rows * d]. Uniforms: rows, d.

fn main(index : i32) {
  let r = rowLane(index);
  let base = r.row * uniforms.d;
  var s = 0.0;
  if (r.live) {
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      s += dy[base + j] * y[base + j];
    }
  }
  let total = rowTotal(r, s);
  if (r.live) {
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      let yj = y[base + j];
      result[base + j] = dy[base + j] * yj - total * yj;
    }
  }
}
