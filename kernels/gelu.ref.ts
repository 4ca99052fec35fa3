// Reference loop for kernels/gelu.ts, in float64. Tests only.
//
// erfc from its power series (|x| < 3, where 1 - erf loses at most a few
// digits) and from its continued fraction beyond, so that the reference is
// accurate to about 1e-12 relative, far below float32's 6e-8.

function erfSeries(x: number): number {
  // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
  let sum = 0;
  let term = x;
  for (let n = 0; n < 200; n++) {
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export function erfcReference(x: number): number {
  if (x < 0) return 2 - erfcReference(-x);
  if (x < 3) return 1 - erfSeries(x);
  // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated from the tail
  let f = x;
  for (let k = 80; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** gelu(x) = x * Phi(x) = x/2 * erfc(-x/sqrt 2), the exact (erf) form. */
export function geluReference(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => 0.5 * v * erfcReference(-v / Math.SQRT2));
}
