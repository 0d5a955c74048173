// OspCrossEntropyGrad: dlogits_ij = dloss_i (softmax(logits_i)_j - [j == t_i]), [N, V].
// The online (max, sum of exp) pass of cross_entropy.wgsl, one barrier, every lane of the row
// merges the row's LPR pairs itself (same order in every lane), then a second pass over the row
// writes the gradient. A target outside [0, V) subtracts nothing (as the one-hot reference does).
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl; online_lse.wgsl (the pass itself).
// Bindings: result [N * V], dloss [N], logits [N * V], targets [N] (i32). Uniforms: rows, v.

fn main(index : i32) {
  let r = rowLane(index);
  let base = r.row * uniforms.v;
  let lse = rowLse(r, base);
  if (r.live) {
    let inv = 1.0 / lse.y;
    let scale = dloss[r.row];
    let tgt = targets[r.row];
    for (var j = r.sub; j < uniforms.v; j += LPR) {
      var p = exp(logits[base + j] - lse.x) * inv;
      if (j == tgt) {
        p -= 1.0;
      }
      result[base + j] = p * scale;
    }
  }
}
