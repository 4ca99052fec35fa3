// exp(x) exactly as the SIMD loops compute it (simd/loops.wat's $exp, the
// Cephes single-precision method), one float32 rounding per step made
// explicit with Math.fround: the same bits, lane for lane. For code that
// must agree with a SIMD kernel but runs on arrays outside the backend's
// memory (the pooled layers' SwiGLU, src/model/pooled_layers.ts).
const f = Math.fround;
const LOW = f(-87.3);
const HIGH = f(88);
const LOG2E = f(Math.LOG2E); // the .wat's 1.44269504088896341 as float32
const LN2_HIGH = f(0.693359375);
const LN2_LOW = f(-2.1219444e-4);
const P0 = f(1.98756915e-4);
const P1 = f(1.3981999507e-3);
const P2 = f(8.3334519073e-3);
const P3 = f(4.1665795894e-2);
const P4 = f(1.6666665459e-1);
const P5 = f(5.0000001201e-1);
// adding then subtracting 1.5 * 2^23 in float32 rounds to an integer, ties to even (f32x4.nearest) for |v| < 2^22
const ROUNDER = 12582912;

/** exp(x) for a float32 x, as simd/loops.wat's $exp: clamped to [-87.3, 88], relative error about 1e-7. */
export function expF32(x: number): number {
  const c = Math.min(Math.max(x, LOW), HIGH);
  const n = f(f(f(c * LOG2E) + ROUNDER) - ROUNDER);
  let r = f(c - f(n * LN2_HIGH));
  r = f(r - f(n * LN2_LOW));
  let p = f(P1 + f(P0 * r));
  p = f(P2 + f(p * r));
  p = f(P3 + f(p * r));
  p = f(P4 + f(p * r));
  p = f(P5 + f(p * r));
  p = f(f(1 + r) + f(f(r * r) * p));
  // 2^n, n in [-126, 127]: a normal float32, exactly
  return f(p * 2 ** n);
}
