// OspRmsNormGrad, pass 3 of 3: dw_j = sum_i dy_ij * x_ij * r_i, a column reduction, [d].
// (For the single scale weight [1] the host sums these d partial sums with sum_all.wgsl.)
// A workgroup of COLS * SLICES lanes owns COLS adjacent columns: lane (c, s) sums rows
// s, s + SLICES, ... of column c (adjacent lanes read adjacent addresses), then the SLICES
// partial sums of each column are added in workgroup memory.
//
// Host-provided constants: const COLS : i32; const SLICES : i32; (COLS * SLICES = workgroup size)
// Bindings: result [d], dy [rows * d], x [rows * d], rstd [rows]. Uniforms: rows, d.

var<workgroup> partial : array<f32, COLS * SLICES>;

fn main(index : i32) {
  let lane = i32(localId.x);
  let group = index / (COLS * SLICES);
  let c = lane % COLS;
  let s = lane / COLS;
  let col = group * COLS + c;
  var acc = 0.0;
  if (col < uniforms.d) {
    for (var i = s; i < uniforms.rows; i += SLICES) {
      let k = i * uniforms.d + col;
      acc += dy[k] * x[k] * rstd[i];
    }
  }
  partial[lane] = acc;
  workgroupBarrier();
  if (s == 0 && col < uniforms.d) {
    var total = 0.0;
    for (var t = 0; t < SLICES; t++) {
      total += partial[t * COLS + c];
    }
    result[col] = total;
  }
}
