// Negative log-likelihoods from logits, in float64.

/** -log softmax(row)[target] for each row of logits [rows, vocab]. */
export function nllOfRows(logits: Float32Array, vocab: number, targets: ArrayLike<number>, out: Float64Array, at: number): void {
  for (let r = 0; r < targets.length; r++) {
    const row = r * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) if (logits[row + j]! > max) max = logits[row + j]!;
    let z = 0;
    for (let j = 0; j < vocab; j++) z += Math.exp(logits[row + j]! - max);
    out[at + r] = max + Math.log(z) - logits[row + targets[r]!]!;
  }
}

/** exp(mean NLL). */
export function perplexity(nll: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < nll.length; i++) sum += nll[i]!;
  return Math.exp(sum / nll.length);
}
