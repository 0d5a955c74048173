// OspRmsNormGrad, pass 1 of 3: r_i = 1 / sqrt(mean_j x_ij^2 + eps) per row, [rows].
// Row layout as rms_norm.wgsl: RPW rows per workgroup, LPR lanes per row, one barrier, then the
// row's first lane adds its LPR partial sums.
//
// Host-provided constants: const LPR : i32; const RPW : i32;
// Bindings: result [rows], x [rows * d]. Uniforms: rows, d, eps.

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
      let v = x[base + j];
      s += v * v;
    }
  }
  partial[lane] = s;
  workgroupBarrier();
  if (live && sub == 0) {
    var total = 0.0;
    for (var t = 0; t < LPR; t++) {
      total += partial[first + t];
    }
    result[row] = 1.0 / sqrt(total / f32(uniforms.d) + uniforms.eps);
  }
}
