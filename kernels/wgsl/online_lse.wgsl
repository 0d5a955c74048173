// Log-sum-exp of a row of `logits` [rows, uniforms.v] in ONE read pass (online softmax), for the
// cross-entropy programs (after rows.wgsl). Each lane keeps a running maximum m and the sum s of
// exp(z - m) over its strided slice, rescaling s when m grows; rowLse merges the row's LPR (m, s)
// pairs after the barrier. Call from uniform control flow.

const LOWEST : f32 = -3.4028234e38;

var<workgroup> pm : array<f32, LPR * RPW>;
var<workgroup> ps : array<f32, LPR * RPW>;

// (max, sum of exp(z - max)) of the row, the same in every lane of the row.
fn rowLse(r : RowLane, base : i32) -> vec2<f32> {
  var m = LOWEST;
  var s = 0.0;
  if (r.live) {
    for (var j = r.sub; j < uniforms.v; j += LPR) {
      let z = logits[base + j];
      if (z > m) {
        s = s * exp(m - z) + 1.0;
        m = z;
      } else {
        s += exp(z - m);
      }
    }
  }
  pm[r.lane] = m;
  ps[r.lane] = s;
  workgroupBarrier();
  var mm = LOWEST;
  for (var t = 0; t < LPR; t++) {
    mm = max(mm, pm[r.first + t]);
  }
  var total = 0.0;
  for (var t = 0; t < LPR; t++) {
    total += ps[r.first + t] * exp(pm[r.first + t] - mm);
  }
  return vec2<f32>(mm, total);
}
