// OspRmsNormGrad, pass 2 of 3: dx = r (g - xh mean(g xh)) with g = dy w and xh = x r.
// mean(g xh) = r * sum_j(g_j x_j) / d, so one reduction per row suffices (r comes from pass 1).
// One workgroup per row: strided partial sums, tree reduction, then each lane writes its slice.
//
// Host-provided constant: const WG : i32;
// Bindings: result [rows * d], dy [rows * d], x [rows * d], weight [d] or [1], rstd [rows].
// Uniforms: rows, d, wStride (1 for weight [d], 0 for weight [1]).

var<workgroup> partial : array<f32, WG>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let row = index / WG;
  let live = row < uniforms.rows;
  let base = row * uniforms.d;
  var s = 0.0;
  if (live) {
    for (var j = lane; j < uniforms.d; j += WG) {
      s += dy[base + j] * weight[j * uniforms.wStride] * x[base + j];
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
  if (live) {
    let r = rstd[row];
    // mean(g xh) = r * sum(g x) / d
    let meanGXh = r * partial[0] / f32(uniforms.d);
    for (var j = lane; j < uniforms.d; j += WG) {
      let g = dy[base + j] * weight[j * uniforms.wStride];
      let xh = x[base + j] * r;
      result[base + j] = r * (g - xh * meanGXh);
    }
  }
}
