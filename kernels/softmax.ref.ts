// Reference loop for kernels/softmax.ts, in float64. Tests only.

/** Probabilities of `logits` with an optional extra logit that takes mass and is dropped. */
export function softmaxReference(logits: ArrayLike<number>, sinkLogit?: number): Float64Array {
  let m = sinkLogit ?? -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]!);
  const out = new Float64Array(logits.length);
  let z = sinkLogit === undefined ? 0 : Math.exp(sinkLogit - m);
  for (let i = 0; i < logits.length; i++) z += out[i] = Math.exp(logits[i]! - m);
  for (let i = 0; i < logits.length; i++) out[i]! /= z;
  return out;
}
