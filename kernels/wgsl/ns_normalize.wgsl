// OspNewtonSchulz, setup: X0 = G' / (normScale * ||G||_F + normEps) in the wide orientation
// [r, c] (r <= c), G' = G or G^T. The squared norm comes from sum_all.wgsl (SQUARE = true) as a
// one-element buffer, so nothing is read back to the host. One lane per element of X0.
//
// Host-provided constant: const TRANSPOSE_IN : bool; (G is [c, r], read transposed)
// Bindings: result [r * c], g [m * n], sumsq [1]. Uniforms: r, c, normScale, normEps (and size).

fn main(index : i32) {
  if (index < uniforms.size) {
    let denom = uniforms.normScale * sqrt(sumsq[0]) + uniforms.normEps;
    var src = index;
    if (TRANSPOSE_IN) {
      let i = index / uniforms.c;
      let j = index - i * uniforms.c;
      src = j * uniforms.r + i;
    }
    result[index] = g[src] / denom;
  }
}
