// Reference loop for kernels/rmsnorm.ts, in float64. Tests only.
export function rmsNormReference(x: ArrayLike<number>, weight: ArrayLike<number>, eps: number): Float64Array {
  const dim = weight.length;
  const out = new Float64Array(x.length);
  for (let row = 0; row < x.length; row += dim) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[row + i]! * x[row + i]!;
    const r = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[row + i] = x[row + i]! * r * weight[i]!;
  }
  return out;
}
