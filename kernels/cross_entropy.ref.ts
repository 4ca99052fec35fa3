// Reference loop for kernels/cross_entropy.ts, in float64. Tests only.

/** nll of each row's target (-1: not scored, 0) and its gradient softmax - onehot. */
export function crossEntropyReference(logits: ArrayLike<number>, vocab: number, targets: ArrayLike<number>): { nll: Float64Array; grad: Float64Array } {
  const rows = targets.length;
  const nll = new Float64Array(rows);
  const grad = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === -1) continue;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) max = Math.max(max, logits[r * vocab + j]!);
    let z = 0;
    for (let j = 0; j < vocab; j++) z += Math.exp(logits[r * vocab + j]! - max);
    const lse = max + Math.log(z);
    nll[r] = lse - logits[r * vocab + targets[r]!]!;
    for (let j = 0; j < vocab; j++) grad[r * vocab + j] = Math.exp(logits[r * vocab + j]! - lse) - (j === targets[r] ? 1 : 0);
  }
  return { nll, grad };
}
