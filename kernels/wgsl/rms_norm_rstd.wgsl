// OspRmsNormGrad, pass 1 of 3: r_i = 1 / sqrt(mean_j x_ij^2 + eps) per row, [rows].
// One workgroup per row with a tree reduction in workgroup memory (as rms_norm.wgsl).
//
// Host-provided constant: const WG : i32;
// Bindings: result [rows], x [rows * d]. Uniforms: rows, d, eps.

var<workgroup> partial : array<f32, WG>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let row = index / WG;
  let live = row < uniforms.rows;
  let base = row * uniforms.d;
  var s = 0.0;
  if (live) {
    for (var j = lane; j < uniforms.d; j += WG) {
      let v = x[base + j];
      s += v * v;
    }
  }
  partial[lane] = s;
  workgroupBarrier();
  for (var stride = WG / 2; stride > 0; stride /= 2) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (live && lane == 0) {
    result[row] = 1.0 / sqrt(partial[0] / f32(uniforms.d) + uniforms.eps);
  }
}
