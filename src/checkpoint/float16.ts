// The two 16-bit float formats checkpoints come in, and their conversion to
// and from float32 (tfjs has no 16-bit float dtype, so weights are widened
// on load).
//
//   F16   IEEE half: 1 sign, 5 exponent, 10 mantissa bits
//   BF16  bfloat16:  1 sign, 8 exponent,  7 mantissa bits: the top half of a float32
//
// Narrowing rounds to nearest, ties to even, as PyTorch's `.half()` and
// `.bfloat16()` do. Values are little-endian, as in safetensors files.

export type HalfDtype = 'F16' | 'BF16';

/** float32 value of every F16 bit pattern, built on first use (256 KiB). */
let f16Table: Float32Array | undefined;

function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function f16Lookup(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16Value(h);
  }
  return f16Table;
}

/** Widen n 16-bit values into out[0..n). */
export function widenHalf(dtype: HalfDtype, src: Uint16Array, out: Float32Array): void {
  const n = src.length;
  if (dtype === 'BF16') {
    // bfloat16 is the upper 16 bits of a float32: shift into place.
    const bits = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
    return;
  }
  const table = f16Lookup();
  for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
}

const scratch = new DataView(new ArrayBuffer(4));

function float32Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  return scratch.getUint32(0, true);
}

/** The bfloat16 nearest to x (ties to even); NaN stays a quiet NaN. */
export function toBfloat16Bits(x: number): number {
  const u = float32Bits(x);
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The IEEE half nearest to x (ties to even); overflow goes to infinity. */
export function toFloat16Bits(x: number): number {
  const u = float32Bits(x);
  const sign = (u >>> 16) & 0x8000;
  const exponent = (u >>> 23) & 0xff;
  let mantissa = u & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa, with its implicit 1, right.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let h = mantissa >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  // Normal: keep 10 of 23 mantissa bits, round the 13 dropped ones. A carry
  // out of the mantissa correctly bumps the exponent (up to infinity).
  let h = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** Narrow float32 values to 16-bit patterns. */
export function narrowHalf(dtype: HalfDtype, src: Float32Array, out: Uint16Array): void {
  const round = dtype === 'BF16' ? toBfloat16Bits : toFloat16Bits;
  for (let i = 0; i < src.length; i++) out[i] = round(src[i]!);
}

/** float32 value of one 16-bit pattern (tests and small reads). */
export function halfValue(dtype: HalfDtype, bits: number): number {
  if (dtype === 'BF16') {
    scratch.setUint32(0, (bits & 0xffff) << 16, true);
    return scratch.getFloat32(0, true);
  }
  return f16Value(bits & 0xffff);
}
