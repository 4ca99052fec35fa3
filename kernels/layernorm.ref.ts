// Reference loop for kernels/layernorm.ts, in float64. Tests only.
export function layerNormReference(x: ArrayLike<number>, weight: ArrayLike<number>, bias: ArrayLike<number>, eps: number): Float64Array {
  const dim = weight.length;
  const out = new Float64Array(x.length);
  for (let row = 0; row < x.length; row += dim) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[row + i]!;
    mean /= dim;
    let variance = 0;
    for (let i = 0; i < dim; i++) variance += (x[row + i]! - mean) ** 2;
    variance /= dim;
    const r = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < dim; i++) out[row + i] = (x[row + i]! - mean) * r * weight[i]! + bias[i]!;
  }
  return out;
}
