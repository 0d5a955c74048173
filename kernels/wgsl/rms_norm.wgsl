// OspRmsNorm: y = x * w / sqrt(mean(x^2) + eps), over the last axis of x viewed as [rows, d].
// A workgroup of RPW * LPR lanes normalises RPW rows, LPR lanes per row: each lane sums x^2 over a
// strided slice of its row into workgroup memory, then (after the one barrier) every lane of the
// row adds the row's LPR partial sums itself, in the same order, so no tree of barriers is needed
// (software adapters pay for every barrier), then writes its slice of y.
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl; row_sum.wgsl.
// Bindings (tfjs prelude): result [rows * d], x [rows * d], weight [d] or [1].
// Uniforms: rows, d, eps, wStride (1 for weight [d], 0 for the single scale weight [1]).

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
  let inv = 1.0 / sqrt(rowTotal(r, s) / f32(uniforms.d) + uniforms.eps);
  if (r.live) {
    for (var j = r.sub; j < uniforms.d; j += LPR) {
      result[base + j] = x[base + j] * inv * weight[j * uniforms.wStride];
    }
  }
}
