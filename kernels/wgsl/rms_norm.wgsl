// OspRmsNorm: y = x * w / sqrt(mean(x^2) + eps), over the last axis of x viewed as [rows, d].
// One workgroup per row: each lane sums x^2 over a strided slice of the row, a tree reduction in
// workgroup memory gives the row's sum, then every lane writes its slice of y.
//
// Host-provided constant (prepended): const WG : i32 = <workgroup size, a power of two>;
// Bindings (tfjs prelude): result [rows * d], x [rows * d], weight [d] or [1].
// Uniforms: rows, d, eps, wStride (1 for weight [d], 0 for the single scale weight [1]).

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
  let r = 1.0 / sqrt(partial[0] / f32(uniforms.d) + uniforms.eps);
  if (live) {
    for (var j = lane; j < uniforms.d; j += WG) {
      result[base + j] = x[base + j] * r * weight[j * uniforms.wStride];
    }
  }
}
