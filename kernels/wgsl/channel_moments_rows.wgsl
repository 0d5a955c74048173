// OspChannelMoments, output 1 of 2: per row (token) of x [N, d] the sums of x, x^2, x^3, x^4,
// [N, 4]. Row layout as rms_norm.wgsl: RPW rows per workgroup, LPR lanes per row; each lane
// accumulates a vec4 over its strided slice, one barrier, then the row's first lane adds the LPR
// partial vec4s.
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl.
// Bindings: result [N * 4], x [N * d]. Uniforms: rows, d.

var<workgroup> partial : array<vec4<f32>, LPR * RPW>;

fn main(index : i32) {
  let r = rowLane(index);
  let base = r.row * uniforms.d;
  var acc = vec4<f32>(0.0);
  if (r.live) {
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      let v = x[base + j];
      let v2 = v * v;
      acc += vec4<f32>(v, v2, v2 * v, v2 * v2);
    }
  }
  partial[r.lane] = acc;
  workgroupBarrier();
  if (r.live && r.sub == 0) {
    var total = vec4<f32>(0.0);
    for (var t = 0; t < LPR; t++) {
      total += partial[r.first + t];
    }
    result[r.row * 4] = total.x;
    result[r.row * 4 + 1] = total.y;
    result[r.row * 4 + 2] = total.z;
    result[r.row * 4 + 3] = total.w;
  }
}
