// A row's sum of per-lane partial sums (see rows.wgsl). Call from uniform control flow: it holds the
// workgroup barrier. Every lane of the row gets the same total (same order of additions).

var<workgroup> partial : array<f32, LPR * RPW>;

fn rowTotal(r : RowLane, s : f32) -> f32 {
  partial[r.lane] = s;
  workgroupBarrier();
  var total = 0.0;
  for (var t = 0; t < LPR; t++) {
    total += partial[r.first + t];
  }
  return total;
}
