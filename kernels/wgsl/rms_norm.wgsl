// OspRmsNorm: y = x * w / sqrt(mean(x^2) + eps), over the last axis of x viewed as [rows, d].
// A workgroup of RPW * LPR lanes normalises RPW rows, LPR lanes per row: each lane sums x^2 over a
// strided slice of its row into workgroup memory, then (after the one barrier) every lane of the
// row adds the row's LPR partial sums itself, in the same order, so no tree of barriers is needed
// (software adapters pay for every barrier), then writes its slice of y.
//
// Host-provided constants (prepended): const LPR : i32; const RPW : i32;
// Bindings (tfjs prelude): result [rows * d], x [rows * d], weight [d] or [1].
// Uniforms: rows, d, eps, wStride (1 for weight [d], 0 for the single scale weight [1]).

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
  var total = 0.0;
  for (var t = 0; t < LPR; t++) {
    total += partial[first + t];
  }
  let r = 1.0 / sqrt(total / f32(uniforms.d) + uniforms.eps);
  if (live) {
    for (var j = sub; j < uniforms.d; j += LPR) {
      result[base + j] = x[base + j] * r * weight[j * uniforms.wStride];
    }
  }
}
