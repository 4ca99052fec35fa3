// Gradient clipping by global norm: when the L2 norm of all gradients
// together exceeds `maxNorm`, every gradient is scaled by maxNorm / norm, so
// the update keeps its direction and only its length is capped.

/** The global L2 norm of a set of gradients, summed in float64. */
export function globalNorm(grads: readonly Float32Array[]): number {
  let sum = 0;
  for (const g of grads) for (let j = 0; j < g.length; j++) sum += g[j]! * g[j]!;
  return Math.sqrt(sum);
}

/** The factor to scale the gradients by (1 when within the limit; maxNorm <= 0 disables clipping). */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / norm : 1;
}
