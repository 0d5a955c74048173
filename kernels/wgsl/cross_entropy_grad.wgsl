// OspCrossEntropyGrad: dlogits_ij = dloss_i (softmax(logits_i)_j - [j == t_i]), [N, V].
// One workgroup per row: the online (max, sum of exp) reduction of cross_entropy.wgsl, then a
// second pass over the row writes the gradient. A target outside [0, V) subtracts nothing (as the
// one-hot reference does).
//
// Host-provided constant: const WG : i32;
// Bindings: result [N * V], dloss [N], logits [N * V], targets [N] (i32). Uniforms: rows, v.

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
  if (live) {
    let mx = pm[0];
    let inv = 1.0 / ps[0];
    let scale = dloss[row];
    let t = targets[row];
    for (var j = lane; j < uniforms.v; j += WG) {
      var p = exp(logits[base + j] - mx) * inv;
      if (j == t) {
        p -= 1.0;
      }
      result[base + j] = p * scale;
    }
  }
}
