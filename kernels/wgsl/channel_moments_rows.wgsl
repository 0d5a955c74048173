// OspChannelMoments, output 1 of 2: per row (token) of x [N, d] the sums of x, x^2, x^3, x^4,
// [N, 4]. One workgroup per row; each lane accumulates a vec4 over its strided slice, then a tree
// reduction of vec4s in workgroup memory.
//
// Host-provided constant: const WG : i32;
// Bindings: result [N * 4], x [N * d]. Uniforms: rows, d.

var<workgroup> partial : array<vec4<f32>, WG>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let row = index / WG;
  let live = row < uniforms.rows;
  let base = row * uniforms.d;
  var acc = vec4<f32>(0.0);
  if (live) {
    for (var j = lane; j < uniforms.d; j += WG) {
      let v = x[base + j];
      let v2 = v * v;
      acc += vec4<f32>(v, v2, v2 * v, v2 * v2);
    }
  }
  partial[lane] = acc;
  workgroupBarrier();
  for (var stride = WG / 2; stride > 0; stride /= 2) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (live && lane < 4) {
    result[row * 4 + lane] = partial[0][lane];
  }
}
