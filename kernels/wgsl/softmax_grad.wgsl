// OspSoftmaxGrad: dx = y dy - y sum_j(dy_j y_j) over the last axis (tfjs's formula in one pass
// instead of four), x viewed as [rows, d]. Row layout as rms_norm.wgsl: RPW rows per workgroup,
// LPR lanes per row, strided partial sums of dy y, one barrier, every lane of a row adds the row's
// LPR partials, then writes its slice of dx.
//
// Host-provided constants: const LPR : i32; const RPW : i32;
// Bindings: result [rows * d], dy [rows * d], y [rows * d]. Uniforms: rows, d.

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
      s += dy[base + j] * y[base + j];
    }
  }
  partial[lane] = s;
  workgroupBarrier();
  var total = 0.0;
  for (var t = 0; t < LPR; t++) {
    total += partial[first + t];
  }
  if (live) {
    for (var j = sub; j < uniforms.d; j += LPR) {
      let yj = y[base + j];
      result[base + j] = dy[base + j] * yj - total * yj;
    }
  }
}
