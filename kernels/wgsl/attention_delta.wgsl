// delta[b, i, h] = sum_c dy[b, i, h, c] out[b, i, h, c]: the row term of the softmax gradient that
// attention_dq and attention_dkv subtract (ds = p (dy . v - delta)). One lane per (token, head);
// out is read from the forward's packed result (attention_fwd.wgsl).
// Host-provided constants: HD. Bindings: result [B * T * heads], dy, fwd. Uniforms: heads (and tfjs's size).

fn main(index : i32) {
  if (index >= uniforms.size) {
    return;
  }
  let H = uniforms.heads;
  let token = index / H;
  let h = index % H;
  let o = token * (H * HD + H) + h * HD;
  var acc = 0.0;
  for (var c = 0; c < HD; c++) {
    acc = fma(dy[index * HD + c], fwd[o + c], acc);
  }
  result[index] = acc;
}
