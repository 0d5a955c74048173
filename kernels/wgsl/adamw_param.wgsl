// OspAdamWUpdate, output 1 of 3: p' = p decay - (lr / bc1) m' / (sqrt(v') / bc2Sqrt + eps), with
// m' and v' recomputed in registers from grad, expAvg and expAvgSq (cheaper than reading them back).
// One lane per element; the arithmetic follows adamwUpdateReference operation by operation.
// Bindings: result, param, grad, expAvg, expAvgSq (one shape).
// Uniforms: beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, decay, stepSize (= lr / bc1), bc2Sqrt.

fn main(index : i32) {
  if (index < uniforms.size) {
    let g = grad[index];
    let m = expAvg[index] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
    let v = expAvgSq[index] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
    let denom = sqrt(v) / uniforms.bc2Sqrt + uniforms.eps;
    result[index] = param[index] * uniforms.decay - (m / denom) * uniforms.stepSize;
  }
}
