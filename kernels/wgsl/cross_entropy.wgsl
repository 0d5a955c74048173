// OspCrossEntropy: loss_i = logsumexp(logits_i) - logits_i[t_i], [N]; no one-hot is built.
// ONE read pass over each row (online softmax): each lane keeps a running maximum m and a sum s of
// exp(x - m) over its strided slice, rescaling s when m grows. Row layout as rms_norm.wgsl: RPW
// rows per workgroup, LPR lanes per row, one barrier, then the row's first lane merges the LPR
// (m, s) pairs. A target outside [0, V) gives loss 0, as the one-hot reference does.
//
// Host-provided constants: const LPR : i32; const RPW : i32;
// Bindings: result [N], logits [N * V], targets [N] (i32). Uniforms: rows, v.

const LOWEST : f32 = -3.4028234e38;

var<workgroup> pm : array<f32, LPR * RPW>;
var<workgroup> ps : array<f32, LPR * RPW>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let sub = lane % LPR;
  let first = lane - sub;
  let row = (index / (LPR * RPW)) * RPW + lane / LPR;
  let live = row < uniforms.rows;
  let base = row * uniforms.v;
  var m = LOWEST;
  var s = 0.0;
  if (live) {
    for (var j = sub; j < uniforms.v; j += LPR) {
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
  if (live && sub == 0) {
    var mm = LOWEST;
    for (var t = 0; t < LPR; t++) {
      mm = max(mm, pm[first + t]);
    }
    var total = 0.0;
    for (var t = 0; t < LPR; t++) {
      total += ps[first + t] * exp(pm[first + t] - mm);
    }
    let tgt = targets[row];
    var loss = 0.0;
    if (tgt >= 0 && tgt < uniforms.v) {
      loss = mm + log(total) - logits[base + tgt];
    }
    result[row] = loss;
  }
}
