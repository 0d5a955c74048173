// OspCrossEntropy: loss_i = logsumexp(logits_i) - logits_i[t_i], [N]; no one-hot is built.
// One workgroup per row and ONE read pass over the row (online softmax): each lane keeps a running
// maximum m and a sum s of exp(x - m) over its strided slice, rescaling s when m grows; the lanes'
// (m, s) pairs are then merged pairwise in workgroup memory. A target outside [0, V) gives loss 0,
// as the one-hot reference does.
//
// Host-provided constant: const WG : i32;
// Bindings: result [N], logits [N * V], targets [N] (i32). Uniforms: rows, v.

const LOWEST : f32 = -3.4028234e38;

var<workgroup> pm : array<f32, WG>;
var<workgroup> ps : array<f32, WG>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let row = index / WG;
  let live = row < uniforms.rows;
  let base = row * uniforms.v;
  var m = LOWEST;
  var s = 0.0;
  if (live) {
    for (var j = lane; j < uniforms.v; j += WG) {
      let z = logits[base + j];
      if (z > m) {
        s = s * exp(m - z) + 1.0;
        m = z;
      } else {
        s += exp(z - m);
      }
    }
  }
  pm[lane] = m;
  ps[lane] = s;
  workgroupBarrier();
  for (var stride = WG / 2; stride > 0; stride /= 2) {
    if (lane < stride) {
      let m2 = pm[lane + stride];
      let s2 = ps[lane + stride];
      let mm = max(m, m2);
      s = s * exp(m - mm) + s2 * exp(m2 - mm);
      m = mm;
      pm[lane] = m;
      ps[lane] = s;
    }
    workgroupBarrier();
  }
  if (live && lane == 0) {
    let t = targets[row];
    var loss = 0.0;
    if (t >= 0 && t < uniforms.v) {
      loss = m + log(s) - logits[base + t];
    }
    result[row] = loss;
  }
}
