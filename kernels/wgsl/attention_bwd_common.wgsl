// Shared by attention_dq and attention_dkv (after attention_common.wgsl): the second block of dot
// products of the backward, and the forward's per-row statistics.
//   p = exp(scale q . k - lse) (0 for masked keys),  ds = p (dy . v - delta),  delta = dy . out

// dy[row] . v[col] for 8 query rows (offsets ar into dy, laid out as q) and 8 keys (br into v, as k).
fn dyvTile(ar : Rows8, br : Rows8) -> Tile8 {
  var a0 = vec4<f32>(0.0);
  var b0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var b1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var b2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  var b3 = vec4<f32>(0.0);
  var a4 = vec4<f32>(0.0);
  var b4 = vec4<f32>(0.0);
  var a5 = vec4<f32>(0.0);
  var b5 = vec4<f32>(0.0);
  var a6 = vec4<f32>(0.0);
  var b6 = vec4<f32>(0.0);
  var a7 = vec4<f32>(0.0);
  var b7 = vec4<f32>(0.0);
  for (var c = 0; c < HD; c++) {
    let lo = vec4<f32>(v[br.lo.x + c], v[br.lo.y + c], v[br.lo.z + c], v[br.lo.w + c]);
    let hi = vec4<f32>(v[br.hi.x + c], v[br.hi.y + c], v[br.hi.z + c], v[br.hi.w + c]);
    let x0 = vec4<f32>(dy[ar.lo.x + c]);
    let x1 = vec4<f32>(dy[ar.lo.y + c]);
    let x2 = vec4<f32>(dy[ar.lo.z + c]);
    let x3 = vec4<f32>(dy[ar.lo.w + c]);
    let x4 = vec4<f32>(dy[ar.hi.x + c]);
    let x5 = vec4<f32>(dy[ar.hi.y + c]);
    let x6 = vec4<f32>(dy[ar.hi.z + c]);
    let x7 = vec4<f32>(dy[ar.hi.w + c]);
    a0 = fma(x0, lo, a0);
    b0 = fma(x0, hi, b0);
    a1 = fma(x1, lo, a1);
    b1 = fma(x1, hi, b1);
    a2 = fma(x2, lo, a2);
    b2 = fma(x2, hi, b2);
    a3 = fma(x3, lo, a3);
    b3 = fma(x3, hi, b3);
    a4 = fma(x4, lo, a4);
    b4 = fma(x4, hi, b4);
    a5 = fma(x5, lo, a5);
    b5 = fma(x5, hi, b5);
    a6 = fma(x6, lo, a6);
    b6 = fma(x6, hi, b6);
    a7 = fma(x7, lo, a7);
    b7 = fma(x7, hi, b7);
  }
  return Tile8(a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7);
}

// The forward's log-sum-exp of 8 query rows (clamped to t - 1) of head h, from its packed result.
fn rowLse(b : i32, row0 : i32, t : i32, heads : i32, h : i32) -> Rows8f {
  let w = heads * HD + heads;
  let o = heads * HD + h;
  let r = b * t;
  return Rows8f(
    vec4<f32>(fwd[(r + min(row0, t - 1)) * w + o], fwd[(r + min(row0 + 1, t - 1)) * w + o],
              fwd[(r + min(row0 + 2, t - 1)) * w + o], fwd[(r + min(row0 + 3, t - 1)) * w + o]),
    vec4<f32>(fwd[(r + min(row0 + 4, t - 1)) * w + o], fwd[(r + min(row0 + 5, t - 1)) * w + o],
              fwd[(r + min(row0 + 6, t - 1)) * w + o], fwd[(r + min(row0 + 7, t - 1)) * w + o]));
}

// delta (attention_delta.wgsl) of 8 query rows (clamped to t - 1) of head h.
fn rowDelta(b : i32, row0 : i32, t : i32, heads : i32, h : i32) -> Rows8f {
  let r = b * t;
  return Rows8f(
    vec4<f32>(delta[(r + min(row0, t - 1)) * heads + h], delta[(r + min(row0 + 1, t - 1)) * heads + h],
              delta[(r + min(row0 + 2, t - 1)) * heads + h], delta[(r + min(row0 + 3, t - 1)) * heads + h]),
    vec4<f32>(delta[(r + min(row0 + 4, t - 1)) * heads + h], delta[(r + min(row0 + 5, t - 1)) * heads + h],
              delta[(r + min(row0 + 6, t - 1)) * heads + h], delta[(r + min(row0 + 7, t - 1)) * heads + h]));
}
