// OspAdamWUpdate, output 3 of 3: v' = beta2 v + (1 - beta2) g^2. One lane per element.
// Bindings: result, grad, expAvgSq (one shape). Uniforms: beta2, oneMinusBeta2 (and size).

fn main(index : i32) {
  if (index < uniforms.size) {
    let g = grad[index];
    result[index] = expAvgSq[index] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
  }
}
