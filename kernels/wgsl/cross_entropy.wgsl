// OspCrossEntropy: loss_i = logsumexp(logits_i) - logits_i[t_i], [N]; no one-hot is built.
// ONE read pass over each row (online softmax): each lane keeps a running maximum m and a sum s of
// exp(x - m) over its strided slice, rescaling s when m grows. Row layout as rms_norm.wgsl: RPW
// rows per workgroup, LPR lanes per row, one barrier, then the row's first lane merges the LPR
// (m, s) pairs. A target outside [0, V) gives loss 0, as the one-hot reference does.
//
// Prepended by kernels.ts: const LPR : i32; const RPW : i32; rows.wgsl; online_lse.wgsl (the pass itself).
// Bindings: result [N], logits [N * V], targets [N] (i32). Uniforms: rows, v.

fn main(index : i32) {
  let r = rowLane(index);
  let base = r.row * uniforms.v;
  let lse = rowLse(r, base);
  if (r.live && r.sub == 0) {
    let tgt = targets[r.row];
    var loss = 0.0;
    if (tgt >= 0 && tgt < uniforms.v) {
      loss = lse.x + log(lse.y) - logits[base + tgt];
    }
    result[r.row] = loss;
  }
}
