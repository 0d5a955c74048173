// Sum of all elements (SQUARE = false) or of their squares (SQUARE = true) into result [1]:
// the single scale weight's gradient (sum of the per-channel partials) and the squared Frobenius
// norm in Newton-Schulz. One workgroup: grid-stride partial sums per lane, one barrier, then the
// first lane adds the WG partial sums.
//
// Host-provided constants: const WG : i32; const SQUARE : bool;
// Bindings: result [1], x [size]. Uniforms: count (number of elements).

var<workgroup> partial : array<f32, WG>;

fn main(index : i32) {
  let lane = i32(localId.x);
  var s = 0.0;
  for (var k = lane; k < uniforms.count; k += WG) {
    let v = x[k];
    if (SQUARE) {
      s += v * v;
    } else {
      s += v;
    }
  }
  partial[lane] = s;
  workgroupBarrier();
  if (lane == 0 && index < WG) {
    var total = 0.0;
    for (var t = 0; t < WG; t++) {
      total += partial[t];
    }
    result[0] = total;
  }
}
