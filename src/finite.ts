// Finding NaN and infinity: in a checkpoint's weights as they are read, and
// in a model's outputs, so that neither becomes a `ppl NaN` with exit code 0
// or a greedy decoder stuck on token 0.

/** Index of the first NaN or infinity in `values`, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  // A loop of its own for the logits of every decode step: one loop over
  // every kind of array is megamorphic, about 5x slower (70 µs for 32,000
  // logits, a twentieth of a 15M step).
  if (values instanceof Float32Array) return firstNonFiniteFloat32(values);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is 0 for every finite v and NaN for NaN and both infinities
    if (v - v !== 0) return i;
  }
  return -1;
}

function firstNonFiniteFloat32(values: Float32Array): number {
  // v * 0 is 0 for every finite v, NaN otherwise: first a sum of those, four
  // at a time (about 2x faster than the test and branch per value), then
  // the search only when it is NaN
  const n = values.length;
  let zero = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) zero += values[i]! * 0 + values[i + 1]! * 0 + values[i + 2]! * 0 + values[i + 3]! * 0;
  for (; i < n; i++) zero += values[i]! * 0;
  if (zero === 0) return -1;
  for (let j = 0; j < n; j++) {
    const v = values[j]!;
    if (v - v !== 0) return j;
  }
  return -1;
}
