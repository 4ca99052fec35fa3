// fdlibm's cos, sin, log and pow, operation for operation in float64 as
// Node 20's V8 (11.3, src/base/ieee754.cc) computes Math.cos, Math.sin,
// Math.log and Math.pow, so that the numbers a user compares (RoPE's angles
// and frequencies, a seeded model's weights, a training run) are the same
// bits on every Node. Math.* is not: Node 24 (V8 13.6) computes Math.pow
// with the C library's pow (--use-std-math-pow, ~10% of results an ulp
// apart, and then depending on the machine's libc), and later V8s compute
// Math.cos, Math.sin and Math.log with LLVM's libc (correctly rounded).
// test/kernels.test.ts checks these against Math.* bit for bit on V8 11.3,
// and cos and sin against loops.wat's copy (ropeAngles) on every Node.
//
// cos and sin reduce an angle as __ieee754_rem_pio2 does while |x|'s high
// word is at most 0x413921fb (|x| < 2^20 pi/2 = 1,647,100; fdlibm's comment
// says 2^19): loops.wat ropeAngles has the same bound. Past it (fdlibm's
// __kernel_rem_pio2, a multi-word reduction) they call Math.cos and
// Math.sin: only there may the bits differ between Node versions.
//
// fdlibm's notice, which its copies keep (V8's ieee754.cc too):
//   Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
//   Developed at SunPro, a Sun Microsystems, Inc. business.
//   Permission to use, copy, modify, and distribute this software is
//   freely granted, provided that this notice is preserved.

// A float64's two 32-bit words (fdlibm's GET_HIGH_WORD and friends), through one scratch value.
const scratch = new Float64Array(1);
const words = new Int32Array(scratch.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // little-endian: the high word second
const LO = 1 - HI;

/** x's high 32 bits, signed (fdlibm's int32_t hx). */
function highWord(x: number): number {
  scratch[0] = x;
  return words[HI]!;
}

/** x's low 32 bits, signed (compare with 0 only, or mask). */
function lowWord(x: number): number {
  scratch[0] = x;
  return words[LO]!;
}

/** The float64 of two 32-bit words (INSERT_WORDS). */
function fromWords(high: number, low: number): number {
  words[HI] = high;
  words[LO] = low;
  return scratch[0]!;
}

/** x with its low word set to `low` (SET_LOW_WORD). */
function withLowWord(x: number, low: number): number {
  scratch[0] = x;
  words[LO] = low;
  return scratch[0];
}

/** x with its high word set to `high` (SET_HIGH_WORD). */
function withHighWord(x: number, high: number): number {
  scratch[0] = x;
  words[HI] = high;
  return scratch[0];
}

// __kernel_cos's and __kernel_sin's coefficients
const C1 = 0.0416666666666666;
const C2 = -0.001388888888887411;
const C3 = 2.480158728947673e-5;
const C4 = -2.7557314351390663e-7;
const C5 = 2.087572321298175e-9;
const C6 = -1.1359647557788195e-11;
const S1 = -0.16666666666666632;
const S2 = 0.00833333333332249;
const S3 = -1.984126982985795e-4;
const S4 = 2.7557313707070068e-6;
const S5 = -2.5050760253406863e-8;
const S6 = 1.58969099521155e-10;

// fdlibm tests a high word ix against a constant H; for |x| (not NaN), ix < H
// is |x| < the float64 whose high word is H and low word 0, which the
// functions below compare instead (no trip through memory for the words).
const TINY_END = fromWords(0x3e400000, 0); // ix < 0x3e400000: |x| < 2^-27
const KC_MID_END = fromWords(0x3fd33333, 0); // ix < 0x3fd33333
const KC_HIGH_START = fromWords(0x3fe90001, 0); // ix > 0x3fe90000
const PIO4_END = fromWords(0x3fe921fc, 0); // ix <= 0x3fe921fb: |x| ~<= pi/4
const THREE_PIO4_END = fromWords(0x4002d97c, 0); // ix < 0x4002d97c: |x| < 3pi/4
const PIO2_HW_START = fromWords(0x3ff921fb, 0); // ix == 0x3ff921fb: from here ...
const PIO2_HW_END = fromWords(0x3ff921fc, 0); // ... to here
/** cos and sin reduce an angle themselves below this (ix <= 0x413921fb: 2^20 pi/2, about 1,647,100). */
const REDUCED_END = fromWords(0x413921fc, 0);

/** fdlibm's __kernel_cos: cos(x + y) for |x| ~<= pi/4, y the tail of x. */
function kernelCos(x: number, y: number): number {
  const ax = Math.abs(x);
  if (ax < TINY_END) return 1; // ((int) x == 0 there)
  const z = x * x;
  const r = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
  if (ax < KC_MID_END) return 1 - (0.5 * z - (z * r - x * y));
  // qx: 0.28125 past 0.78125, else x/4 with its low word 0 (the high word less 2^21): |x| cut to the
  // high word's 20 fraction bits (in [0.3, 0.78125): steps of 2^-22 below 0.5, 2^-21 above), exactly
  const qx = ax >= KC_HIGH_START ? 0.28125 : ax < 0.5 ? Math.floor(ax * 4194304) * 5.9604644775390625e-8 : Math.floor(ax * 2097152) * 1.1920928955078125e-7;
  const hz = 0.5 * z - qx;
  const a = 1 - qx;
  return a - (hz - (z * r - x * y));
}

/** fdlibm's __kernel_sin: sin(x + y) for |x| ~<= pi/4, y the tail of x (iy 0: y is 0). */
function kernelSin(x: number, y: number, iy: number): number {
  if (Math.abs(x) < TINY_END) return x;
  const z = x * x;
  const v = z * x;
  const r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
  if (iy === 0) return x + v * (S1 + z * r);
  return x - (z * (0.5 * y - v * r) - y - v * S1);
}

// __ieee754_rem_pio2's constants: 2/pi, and pi/2 in three pieces, each with its tail
const INV_PIO2 = 0.6366197723675814;
const PIO2_1 = 1.5707963267341256; // the first 33 bits of pi/2
const PIO2_1T = 6.077100506506192e-11; // pi/2 - PIO2_1
const PIO2_2 = 6.077100506303966e-11; // the next 33 bits
const PIO2_2T = 2.0222662487959506e-21;
const PIO2_3 = 2.0222662487111665e-21; // the next 33 bits
const PIO2_3T = 8.4784276603689e-32;
// fdlibm's npio2_hw[n - 1], the high word of n pi/2 for n < 32 (as loops.wat computes it), as the range of |x| with that high word
const NPIO2_START = Float64Array.from({ length: 31 }, (_, i) => fromWords(highWord((i + 1) * 1.5707963267948966), 0));
const NPIO2_END = Float64Array.from({ length: 31 }, (_, i) => fromWords(highWord((i + 1) * 1.5707963267948966) + 1, 0));
// j - (y0's exponent field) > 16 (and > 49), j = |x|'s exponent field: |y0| below the float64 of exponent field j - 16 (j - 49)
const BELOW_16 = Float64Array.from({ length: 2048 }, (_, j) => (j > 16 ? fromWords((j - 16) << 20, 0) : 0));
const BELOW_49 = Float64Array.from({ length: 2048 }, (_, j) => (j > 49 ? fromWords((j - 49) << 20, 0) : 0));

// cosSin's results: cos, sin (in a typed array: a float64 kept in a module's variable is boxed, an allocation a
// store, which cost cosSinInto 27 ns an angle against 18 so)
const results = new Float64Array(2);

/**
 * cos(x) and sin(x) into results, V8 11.3's Math.cos's and
 * Math.sin's bits: fdlibm's cos and sin with one reduction
 * (__ieee754_rem_pio2 up to 2^20 pi/2), as loops.wat ropeAngles.
 */
function cosSin(x: number): void {
  const ax = Math.abs(x);
  if (ax < PIO4_END) {
    results[0] = kernelCos(x, 0);
    results[1] = kernelSin(x, 0, 0);
    return;
  }
  if (!(ax < REDUCED_END)) {
    // past the medium reduction, or not finite: the engine's (only here may the bits differ between Node versions)
    results[0] = Math.cos(x);
    results[1] = Math.sin(x);
    return;
  }
  let n: number;
  let y0: number;
  let y1: number;
  if (ax < THREE_PIO4_END) {
    // |x| < 3pi/4: n = +-1
    const nearPio2 = ax >= PIO2_HW_START && ax < PIO2_HW_END;
    if (x > 0) {
      let z = x - PIO2_1;
      if (!nearPio2) {
        y0 = z - PIO2_1T;
        y1 = z - y0 - PIO2_1T;
      } else {
        // near pi/2: 33 + 33 + 53 bits of pi
        z -= PIO2_2;
        y0 = z - PIO2_2T;
        y1 = z - y0 - PIO2_2T;
      }
      n = 1;
    } else {
      let z = x + PIO2_1;
      if (!nearPio2) {
        y0 = z + PIO2_1T;
        y1 = z - y0 + PIO2_1T;
      } else {
        z += PIO2_2;
        y0 = z + PIO2_2T;
        y1 = z - y0 + PIO2_2T;
      }
      n = -1;
    }
  } else {
    // |x| < 2^20 pi/2: n = nearest integer to |x| 2/pi, then |x| - n pi/2 in two to four parts
    let t = ax;
    n = (t * INV_PIO2 + 0.5) | 0;
    const fn = n;
    let r = t - fn * PIO2_1;
    let w = fn * PIO2_1T; // good to 85 bits
    y0 = r - w;
    if (n >= 32 || (ax >= NPIO2_START[n - 1]! && ax < NPIO2_END[n - 1]!)) {
      const j = 1054 - Math.clz32(t); // |x|'s exponent field: 1023 + floor(log2 |x|), as 1 <= |x| < 2^21
      if (Math.abs(y0) < BELOW_16[j]!) {
        // a second round, good to 118 bits
        t = r;
        w = fn * PIO2_2;
        r = t - w;
        w = fn * PIO2_2T - (t - r - w);
        y0 = r - w;
        if (Math.abs(y0) < BELOW_49[j]!) {
          // a third, good to 151 bits
          t = r;
          w = fn * PIO2_3;
          r = t - w;
          w = fn * PIO2_3T - (t - r - w);
          y0 = r - w;
        }
      }
    }
    y1 = r - y0 - w;
    if (x < 0) {
      y0 = -y0;
      y1 = -y1;
      n = -n;
    }
  }
  // (written out here instead, to share y0^2, they ran 2-3% faster, 0.5 ns an angle: not worth a second copy)
  const c = kernelCos(y0, y1);
  const s = kernelSin(y0, y1, 1);
  // cos and sin by the quadrant n & 3
  switch (n & 3) {
    case 0:
      results[0] = c;
      results[1] = s;
      break;
    case 1:
      results[0] = -s;
      results[1] = c;
      break;
    case 2:
      results[0] = -c;
      results[1] = -s;
      break;
    default:
      results[0] = s;
      results[1] = -c;
  }
}

/** cos(x) as V8 11.3's Math.cos; Math.cos past 2^20 pi/2 (there the bits may differ between Node versions). */
export function cos(x: number): number {
  cosSin(x);
  return results[0]!;
}

/** sin(x) as V8 11.3's Math.sin; Math.sin past 2^20 pi/2 (there the bits may differ between Node versions). */
export function sin(x: number): number {
  cosSin(x);
  return results[1]!;
}

/** cos(x) into cosOut[cosAt] and sin(x) into sinOut[sinAt], rounded to float32: RoPE's angles (kernels/rope.ts). */
export function cosSinInto(x: number, cosOut: Float32Array, cosAt: number, sinOut: Float32Array, sinAt: number): void {
  cosSin(x);
  cosOut[cosAt] = results[0]!;
  sinOut[sinAt] = results[1]!;
}

/** cos(x) and sin(x) into out[at] and out[at + 1] (float64s). */
export function cosSinPair(x: number, out: Float64Array, at: number): void {
  cosSin(x);
  out[at] = results[0]!;
  out[at + 1] = results[1]!;
}

// __ieee754_log's constants
const LN2_HI = 6.9314718036912381649e-1; // 0x3fe62e42 fee00000
const LN2_LO = 1.90821492927058770002e-10; // 0x3dea39ef 35793c76
const TWO54 = 1.8014398509481984e16; // 2^54
const LG1 = 6.66666666666673513e-1; // 0x3fe55555 55555593
const LG2 = 3.999999999940941908e-1; // 0x3fd99999 9997fa04
const LG3 = 2.857142874366239149e-1; // 0x3fd24924 94229359
const LG4 = 2.222219843214978396e-1; // 0x3fcc71c5 1d8e78af
const LG5 = 1.818357216161805012e-1; // 0x3fc74664 96cb03de
const LG6 = 1.531383769920937332e-1; // 0x3fc39a09 d078c69f
const LG7 = 1.479819860511658591e-1; // 0x3fc2f112 df3e5244

// 2^-k for k in [-1022, 1024] at k + 1022 (the last two subnormal, exact): log's normalisation
const POW2_NEG = Float64Array.from({ length: 2047 }, (_, at) => {
  const k = at - 1022;
  return k <= 1022 ? fromWords((1023 - k) << 20, 0) : fromWords(0x00080000 >> (k - 1023), 0);
});

/** log(x) as V8 11.3's Math.log (fdlibm's __ieee754_log). */
export function log(x: number): number {
  let hx = highWord(x);
  let k = 0;
  if (hx < 0x00100000) {
    // x < 2^-1022
    if (x === 0) return -Infinity; // log(+-0)
    if (hx < 0) return NaN; // log(-#)
    k -= 54;
    x *= TWO54; // a subnormal, scaled up
    hx = highWord(x);
  }
  if (hx >= 0x7ff00000) return x + x;
  const exponent = (hx >> 20) - 1023;
  hx &= 0x000fffff;
  let i = (hx + 0x95f64) & 0x100000;
  // x or x/2 normalised (fdlibm sets the high word's exponent to 0x3ff or 0x3fe: the same as a power of two's product)
  x *= POW2_NEG[exponent + (i >> 20) + 1022]!;
  k += exponent + (i >> 20);
  const f = x - 1;
  if ((0x000fffff & (2 + hx)) < 3) {
    // -2^-20 <= f < 2^-20
    if (f === 0) {
      if (k === 0) return 0;
      const dk = k;
      return dk * LN2_HI + dk * LN2_LO;
    }
    const R = f * f * (0.5 - 0.3333333333333333 * f);
    if (k === 0) return f - R;
    const dk = k;
    return dk * LN2_HI - (R - dk * LN2_LO - f);
  }
  const s = f / (2 + f);
  const dk = k;
  const z = s * s;
  i = hx - 0x6147a;
  const w = z * z;
  const j = 0x6b851 - hx;
  const t1 = w * (LG2 + w * (LG4 + w * LG6));
  const t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  i |= j;
  const R = t2 + t1;
  if (i > 0) {
    const hfsq = 0.5 * f * f;
    if (k === 0) return f - (hfsq - s * (hfsq + R));
    return dk * LN2_HI - (hfsq - (s * (hfsq + R) + dk * LN2_LO) - f);
  }
  if (k === 0) return f - s * (f - R);
  return dk * LN2_HI - (s * (f - R) - dk * LN2_LO - f);
}

// pow's constants (fdlibm's e_pow.c)
const BP = [1.0, 1.5];
const DP_H = [0.0, 5.84962487220764160156e-1]; // 0x3fe2b803 40000000
const DP_L = [0.0, 1.35003920212974897128e-8]; // 0x3e4cfdeb 43cfd006
const TWO53 = 9007199254740992.0;
const HUGE = 1.0e300;
const TINY = 1.0e-300;
const L1 = 5.99999999999994648725e-1;
const L2 = 4.28571428578550184252e-1;
const L3 = 3.33333329818377432918e-1;
const L4 = 2.72728123808534006489e-1;
const L5 = 2.30660745775561754067e-1;
const L6 = 2.06975017800338417784e-1;
const P1 = 1.66666666666666019037e-1;
const P2 = -2.77777777770155933842e-3;
const P3 = 6.61375632143793436117e-5;
const P4 = -1.6533902205465251539e-6;
const P5 = 4.13813679705723846039e-8;
const LG2_ = 6.93147180559945286227e-1;
const LG2_H = 6.93147182464599609375e-1;
const LG2_L = -1.90465429995776804525e-9;
const OVT = 8.008566259537294e-17; // -(1024 - log2(ovfl + .5ulp))
const CP = 9.61796693925975554329e-1; // 2/(3 ln2)
const CP_H = 9.61796700954437255859e-1; // (float) CP
const CP_L = -7.02846165095275826516e-9; // CP's tail
const IVLN2 = 1.442695040888963387;
const IVLN2_H = 1.44269502162933349609; // 1/ln2 to 24 bits
const IVLN2_L = 1.92596299112661746887e-8; // its tail

/** x * 2^n, rounded once (scalbn), for a result past the normal range. */
function scalbn(x: number, n: number): number {
  // (a pow's subnormal result: n < -1000, and x * 2^-1000 is exact)
  if (n < -1000) return x * fromWords(0x3ff00000 - (1000 << 20), 0) * fromWords(0x3ff00000 + ((n + 1000) << 20), 0);
  return x * fromWords(0x3ff00000 + (n << 20), 0);
}

/**
 * x ** y as V8 11.3's Math.pow (fdlibm's __ieee754_pow, V8's
 * ieee754::legacy::pow; Node 24's Math.pow is the C library's).
 */
export function pow(x: number, y: number): number {
  const hx = highWord(x);
  const lx = lowWord(x);
  const hy = highWord(y);
  const ly = lowWord(y);
  let ix = hx & 0x7fffffff;
  const iy = hy & 0x7fffffff;

  if ((iy | ly) === 0) return 1; // x ** 0
  // NaN: x + y
  if (ix > 0x7ff00000 || (ix === 0x7ff00000 && lx !== 0) || iy > 0x7ff00000 || (iy === 0x7ff00000 && ly !== 0)) return x + y;

  // yisint: 0 y is not an integer, 1 an odd one, 2 an even one (asked only when x < 0)
  let yisint = 0;
  if (hx < 0) {
    if (iy >= 0x43400000) yisint = 2;
    else if (iy >= 0x3ff00000) {
      const k = (iy >> 20) - 0x3ff;
      if (k > 20) {
        const j = ly >>> (52 - k);
        if (j << (52 - k) === ly) yisint = 2 - (j & 1);
      } else if (ly === 0) {
        const j = iy >> (20 - k);
        if (j << (20 - k) === iy) yisint = 2 - (j & 1);
      }
    }
  }

  // y special
  if (ly === 0) {
    if (iy === 0x7ff00000) {
      // y +-inf
      if (((ix - 0x3ff00000) | lx) === 0) return y - y; // (+-1) ** +-inf is NaN
      if (ix >= 0x3ff00000) return hy >= 0 ? y : 0; // (|x| > 1) ** +-inf = inf, 0
      return hy < 0 ? -y : 0; // (|x| < 1) ** -+inf = inf, 0
    }
    if (iy === 0x3ff00000) return hy < 0 ? 1 / x : x; // y +-1
    if (hy === 0x40000000) return x * x; // y 2
    if (hy === 0x3fe00000 && hx >= 0) return Math.sqrt(x); // y 0.5, x >= +0
  }

  let ax = Math.abs(x);
  // x special: +-0, +-inf, +-1
  if (lx === 0 && (ix === 0x7ff00000 || ix === 0 || ix === 0x3ff00000)) {
    let z = ax;
    if (hy < 0) z = 1 / z;
    if (hx < 0) {
      if (((ix - 0x3ff00000) | yisint) === 0)
        z = NaN; // (-1) ** non-integer
      else if (yisint === 1) z = -z; // (x < 0) ** odd
    }
    return z;
  }

  let n = (hx >> 31) + 1;
  if ((n | yisint) === 0) return NaN; // (x < 0) ** non-integer
  let s = 1; // the result's sign: -1 for (x < 0) ** odd
  if ((n | (yisint - 1)) === 0) s = -1;

  let t1: number;
  let t2: number;
  if (iy > 0x41e00000) {
    // |y| > 2^31
    if (iy > 0x43f00000) {
      // |y| > 2^64: over- or underflows
      if (ix <= 0x3fefffff) return hy < 0 ? HUGE * HUGE : TINY * TINY;
      if (ix >= 0x3ff00000) return hy > 0 ? HUGE * HUGE : TINY * TINY;
    }
    if (ix < 0x3fefffff) return hy < 0 ? s * HUGE * HUGE : s * TINY * TINY;
    if (ix > 0x3ff00000) return hy > 0 ? s * HUGE * HUGE : s * TINY * TINY;
    // |1 - x| <= 2^-20: log(x) by x - x^2/2 + x^3/3 - x^4/4
    const t = ax - 1;
    const w = t * t * (0.5 - t * (0.3333333333333333 - t * 0.25));
    const u = IVLN2_H * t;
    const v = t * IVLN2_L - w * IVLN2;
    t1 = withLowWord(u + v, 0);
    t2 = v - (t1 - u);
  } else {
    n = 0;
    if (ix < 0x00100000) {
      // a subnormal x
      ax *= TWO53;
      n -= 53;
      ix = highWord(ax);
    }
    n += (ix >> 20) - 0x3ff;
    const j = ix & 0x000fffff;
    // the interval
    ix = j | 0x3ff00000;
    let k: number;
    if (j <= 0x3988e)
      k = 0; // |x| < sqrt(3/2)
    else if (j < 0xbb67a)
      k = 1; // |x| < sqrt(3)
    else {
      k = 0;
      n += 1;
      ix -= 0x00100000;
    }
    ax = withHighWord(ax, ix);

    // ss = s_h + s_l = (x - 1)/(x + 1) or (x - 1.5)/(x + 1.5)
    let u = ax - BP[k]!;
    let v = 1 / (ax + BP[k]!);
    const ss = u * v;
    const sH = withLowWord(ss, 0);
    let tH = fromWords(((ix >> 1) | 0x20000000) + 0x00080000 + (k << 18), 0); // ax + bp[k], high part
    let tL = ax - (tH - BP[k]!);
    const sL = v * (u - sH * tH - sH * tL);
    // log(ax)
    let s2 = ss * ss;
    let r = s2 * s2 * (L1 + s2 * (L2 + s2 * (L3 + s2 * (L4 + s2 * (L5 + s2 * L6)))));
    r += sL * (sH + ss);
    s2 = sH * sH;
    tH = withLowWord(3.0 + s2 + r, 0);
    tL = r - (tH - 3.0 - s2);
    // u + v = ss (1 + ...)
    u = sH * tH;
    v = sL * tH + tL * ss;
    // 2/(3 log2) (ss + ...)
    const pH = withLowWord(u + v, 0);
    const pL = v - (pH - u);
    const zH = CP_H * pH;
    const zL = CP_L * pH + pL * CP + DP_L[k]!;
    // log2(ax) = (ss + ...) 2/(3 log2) = n + dp_h + z_h + z_l
    const t = n;
    t1 = withLowWord(zH + zL + DP_H[k]! + t, 0);
    t2 = zL - (t1 - t - DP_H[k]! - zH);
  }

  // (y1 + y2) (t1 + t2), y split as y1 + y2
  const y1 = withLowWord(y, 0);
  const pL = (y - y1) * t1 + y * t2;
  let pH = y1 * t1;
  let z = pL + pH;
  let j = highWord(z);
  const i0 = lowWord(z);
  if (j >= 0x40900000) {
    // z >= 1024
    if (((j - 0x40900000) | i0) !== 0) return s * HUGE * HUGE;
    if (pL + OVT > z - pH) return s * HUGE * HUGE;
  } else if ((j & 0x7fffffff) >= 0x4090cc00) {
    // z <= -1075
    if (((j - 0xc090cc00) | i0) !== 0) return s * TINY * TINY;
    if (pL <= z - pH) return s * TINY * TINY;
  }
  // 2 ** (p_h + p_l)
  const i = j & 0x7fffffff;
  let k = (i >> 20) - 0x3ff;
  n = 0;
  if (i > 0x3fe00000) {
    // |z| > 0.5: n = [z + 0.5]
    n = j + (0x00100000 >> (k + 1));
    k = ((n & 0x7fffffff) >> 20) - 0x3ff; // the new k for n
    const t = fromWords(n & ~(0x000fffff >> k), 0);
    n = ((n & 0x000fffff) | 0x00100000) >> (20 - k);
    if (j < 0) n = -n;
    pH -= t;
  }
  const t = withLowWord(pL + pH, 0);
  const u = t * LG2_H;
  const v = (pL - (t - pH)) * LG2_ + t * LG2_L;
  z = u + v;
  const w = v - (z - u);
  const tt = z * z;
  const tt1 = z - tt * (P1 + tt * (P2 + tt * (P3 + tt * (P4 + tt * P5))));
  // (V8's copy, and so Node 20's Math.pow, divides by (t1 - 2) - (w + z w); fdlibm's e_pow.c divides by t1 - 2
  // and then subtracts w + z w, which gives another last bit in ~4% of results: this is V8's)
  const r = (z * tt1) / (tt1 - 2 - (w + z * w));
  z = 1 - (r - z);
  j = (highWord(z) + (n << 20)) | 0;
  if (j >> 20 <= 0)
    z = scalbn(z, n); // a subnormal result
  else z = withHighWord(z, j);
  return s * z;
}
