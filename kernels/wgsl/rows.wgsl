// Shared by the row programs (rms_norm, rms_norm_rstd, rms_norm_grad_dx, softmax_grad,
// channel_moments_rows, cross_entropy, cross_entropy_grad); kernels.ts prepends it after LPR and RPW.
// A workgroup of RPW * LPR lanes handles RPW rows, LPR lanes per row. Each lane reduces a strided slice
// of its row (elements sub, sub + LPR, ...) into workgroup memory; after a single barrier every lane
// of the row combines the row's LPR partials itself, in the same order, so no tree of barriers is
// needed (software adapters step every lane through each barrier). Lanes past the last row compute
// and write nothing, but still reach the barrier (uniform control flow).

struct RowLane {
  lane : i32,   // index in the workgroup
  sub : i32,    // index among the row's LPR lanes
  first : i32,  // workgroup index of the row's first lane
  row : i32,
  live : bool,  // row < uniforms.rows
}

fn rowLane(index : i32) -> RowLane {
  let lane = i32(localId.x);
  let sub = lane % LPR;
  let row = (index / (LPR * RPW)) * RPW + lane / LPR;
  return RowLane(lane, sub, lane - sub, row, row < uniforms.rows);
}
