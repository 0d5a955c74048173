// OspCrossEntropyGrad: dlogits_ij = dloss_i (softmax(logits_i)_j - [j == t_i]), [N, V].
// The online (max, sum of exp) pass of cross_entropy.wgsl, one barrier, every lane of the row
// merges the row's LPR pairs itself (same order in every lane), then a second pass over the row
// writes the gradient. A target outside [0, V) subtracts nothing (as the one-hot reference does).
//
// Host-provided constants: const LPR : i32; const RPW : i32;
// Bindings: result [N * V], dloss [N], logits [N * V], targets [N] (i32). Uniforms: rows, v.

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
  if (live) {
    var mm = LOWEST;
    for (var t = 0; t < LPR; t++) {
      mm = max(mm, pm[first + t]);
    }
    var total = 0.0;
    for (var t = 0; t < LPR; t++) {
      total += ps[first + t] * exp(pm[first + t] - mm);
    }
    let inv = 1.0 / total;
    let scale = dloss[row];
    let tgt = targets[row];
    for (var j = sub; j < uniforms.v; j += LPR) {
      var p = exp(logits[base + j] - mm) * inv;
      if (j == tgt) {
        p -= 1.0;
      }
      result[base + j] = p * scale;
    }
  }
}
