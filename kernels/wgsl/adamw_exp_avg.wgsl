// OspAdamWUpdate, output 2 of 3: m' = beta1 m + (1 - beta1) g. One lane per element.
// Bindings: result, grad, expAvg (one shape). Uniforms: beta1, oneMinusBeta1 (and size from tfjs).

fn main(index : i32) {
  if (index < uniforms.size) {
    result[index] = expAvg[index] * uniforms.beta1 + grad[index] * uniforms.oneMinusBeta1;
  }
}
