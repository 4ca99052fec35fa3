// Finding NaN and infinity: in a checkpoint's weights as they are read, and
// in a model's outputs, so that neither becomes a `ppl NaN` with exit code 0
// or a greedy decoder stuck on token 0.

/** Index of the first NaN or infinity in `values`, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is 0 for every finite v and NaN for NaN and both infinities
    if (v - v !== 0) return i;
  }
  return -1;
}
