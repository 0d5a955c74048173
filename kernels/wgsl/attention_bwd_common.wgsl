// Shared by attention_dq and attention_dkv (after attention_common.wgsl): the probabilities and
// score gradients of a lane's 4 x 4 block, recomputed from the forward's log-sum-exp.
//   p = exp(scale q . k - lse)        (0 for masked keys)
//   ds = p (dy . v - delta),  delta = dy . out (attention_delta.wgsl)
// Rows are queries, vec4 components keys; lse, delta and the last visible key are per query row.

struct Probs {
  p0 : vec4<f32>, p1 : vec4<f32>, p2 : vec4<f32>, p3 : vec4<f32>,
  d0 : vec4<f32>, d1 : vec4<f32>, d2 : vec4<f32>, d3 : vec4<f32>,
}

// qOff/dyOff: 4 query rows in q and dy; kOff/vOff: 4 keys in k and v; keys0: index of the first
// key; lse, dl (delta): per query row; last: the last key each query row may see (-1: none).
fn probsBlock(qOff : vec4<i32>, kOff : vec4<i32>, dyOff : vec4<i32>, vOff : vec4<i32>, keys0 : i32,
              lse : vec4<f32>, dl : vec4<f32>, last : vec4<i32>) -> Probs {
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var s3 = vec4<f32>(0.0);
  var g0 = vec4<f32>(0.0);
  var g1 = vec4<f32>(0.0);
  var g2 = vec4<f32>(0.0);
  var g3 = vec4<f32>(0.0);
  for (var c = 0; c < HD; c++) {
    let kc = vec4<f32>(k[kOff.x + c], k[kOff.y + c], k[kOff.z + c], k[kOff.w + c]);
    let vc = vec4<f32>(v[vOff.x + c], v[vOff.y + c], v[vOff.z + c], v[vOff.w + c]);
    s0 = fma(vec4<f32>(q[qOff.x + c]), kc, s0);
    s1 = fma(vec4<f32>(q[qOff.y + c]), kc, s1);
    s2 = fma(vec4<f32>(q[qOff.z + c]), kc, s2);
    s3 = fma(vec4<f32>(q[qOff.w + c]), kc, s3);
    g0 = fma(vec4<f32>(dy[dyOff.x + c]), vc, g0);
    g1 = fma(vec4<f32>(dy[dyOff.y + c]), vc, g1);
    g2 = fma(vec4<f32>(dy[dyOff.z + c]), vc, g2);
    g3 = fma(vec4<f32>(dy[dyOff.w + c]), vc, g3);
  }
  let sc = uniforms.scale;
  let keys = vec4<i32>(keys0, keys0 + 1, keys0 + 2, keys0 + 3);
  let zero = vec4<f32>(0.0);
  let p0 = select(zero, exp(s0 * sc - lse.x), keys <= vec4<i32>(last.x));
  let p1 = select(zero, exp(s1 * sc - lse.y), keys <= vec4<i32>(last.y));
  let p2 = select(zero, exp(s2 * sc - lse.z), keys <= vec4<i32>(last.z));
  let p3 = select(zero, exp(s3 * sc - lse.w), keys <= vec4<i32>(last.w));
  return Probs(p0, p1, p2, p3, p0 * (g0 - dl.x), p1 * (g1 - dl.y), p2 * (g2 - dl.z), p3 * (g3 - dl.w));
}

// The forward's log-sum-exp and the delta of 4 query rows (clamped to t - 1) of head h.
fn rowLse(b : i32, row0 : i32, t : i32, heads : i32, h : i32) -> vec4<f32> {
  let width = heads * HD + heads;
  let o = heads * HD + h;
  return vec4<f32>(
    fwd[(b * t + min(row0, t - 1)) * width + o],
    fwd[(b * t + min(row0 + 1, t - 1)) * width + o],
    fwd[(b * t + min(row0 + 2, t - 1)) * width + o],
    fwd[(b * t + min(row0 + 3, t - 1)) * width + o]);
}

fn rowDelta(b : i32, row0 : i32, t : i32, heads : i32, h : i32) -> vec4<f32> {
  return vec4<f32>(
    delta[(b * t + min(row0, t - 1)) * heads + h],
    delta[(b * t + min(row0 + 1, t - 1)) * heads + h],
    delta[(b * t + min(row0 + 2, t - 1)) * heads + h],
    delta[(b * t + min(row0 + 3, t - 1)) * heads + h]);
}
