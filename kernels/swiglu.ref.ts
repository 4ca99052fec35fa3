// Reference loop for kernels/swiglu.ts, in float64. Tests only.
export function swigluReference(gateUp: ArrayLike<number>, hidden: number): Float64Array {
  const rows = gateUp.length / (2 * hidden);
  const out = new Float64Array(rows * hidden);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < hidden; i++) {
      const g = gateUp[r * 2 * hidden + i]!;
      out[r * hidden + i] = (g / (1 + Math.exp(-g))) * gateUp[r * 2 * hidden + hidden + i]!;
    }
  }
  return out;
}
