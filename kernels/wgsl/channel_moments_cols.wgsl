// OspChannelMoments, output 2 of 2: per column (channel) of x [N, d] the sums of x, x^2, x^3, x^4,
// [d, 4]. A workgroup of COLS * SLICES lanes owns COLS adjacent columns: lane (c, s) accumulates a
// vec4 over rows s, s + SLICES, ... of column c, then the SLICES partials are added in workgroup
// memory.
//
// Host-provided constants: const COLS : i32; const SLICES : i32;
// Bindings: result [d * 4], x [N * d]. Uniforms: rows, d.

var<workgroup> partial : array<vec4<f32>, COLS * SLICES>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let group = index / (COLS * SLICES);
  let c = lane % COLS;
  let s = lane / COLS;
  let col = group * COLS + c;
  var acc = vec4<f32>(0.0);
  if (col < uniforms.d) {
    for (var i = s; i < uniforms.rows; i += SLICES) {
      let v = x[i * uniforms.d + col];
      let v2 = v * v;
      acc += vec4<f32>(v, v2, v2 * v, v2 * v2);
    }
  }
  partial[lane] = acc;
  workgroupBarrier();
  if (s == 0 && col < uniforms.d) {
    var total = vec4<f32>(0.0);
    for (var t = 0; t < SLICES; t++) {
      total += partial[t * COLS + c];
    }
    result[col * 4] = total.x;
    result[col * 4 + 1] = total.y;
    result[col * 4 + 2] = total.z;
    result[col * 4 + 3] = total.w;
  }
}
