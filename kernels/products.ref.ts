// Reference loops for kernels/split_products.ts (simd/products.wat). Tests only.
//
// The float32 product in float64 (for its accuracy), and step for step as
// the SIMD loop computes it (terms added one by one in column order, each
// product and sum rounded to float32); the Q8 quantisation (int8 weights,
// int16 x) and product step for step as the SIMD loops do them. Every
// float32 rounding is made explicit with Math.fround, so the SIMD results
// must equal these bit for bit.
const BLOCK = 32;
const f = Math.fround;

/** out[t, r] = sum_c w[r, c] * x[t, c], in float64. */
export function productReference(w: ArrayLike<number>, x: ArrayLike<number>, rows: number, cols: number, tokens: number): Float64Array {
  const out = new Float64Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += w[r * cols + c]! * x[t * cols + c]!;
      out[t * rows + r] = sum;
    }
  }
  return out;
}

/** out[t, r] = sum_c w[r, c] * x[t, c] in float32, from 0 in column order, no fused multiply-add (as XNNPACK's products too). */
export function productF32Reference(w: ArrayLike<number>, x: ArrayLike<number>, rows: number, cols: number, tokens: number): Float32Array {
  const out = new Float32Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc = f(acc + f(w[r * cols + c]! * x[t * cols + c]!));
      out[t * rows + r] = acc;
    }
  }
  return out;
}

/** Round half to even, as f32x4.nearest does. */
function nearestEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : r;
}

/** Q8_0 blocks (the weights; length a multiple of 32): q = nearest(x / d), d = max|x| / 127 per block. */
export function quantizeReference(x: ArrayLike<number>): { q: Int8Array; d: Float32Array } {
  return quantizeBlocks(x, 127, Int8Array);
}

/** x's blocks as int16 for a q8 product (quantizeX16): q = nearest(x / d), d = max|x| / 32767 per block. */
export function quantizeX16Reference(x: ArrayLike<number>): { q: Int16Array; d: Float32Array } {
  return quantizeBlocks(x, 32767, Int16Array);
}

function quantizeBlocks<Q extends Int8Array | Int16Array>(x: ArrayLike<number>, levels: number, Type: new (n: number) => Q): { q: Q; d: Float32Array } {
  const n = x.length;
  const q = new Type(n);
  const d = new Float32Array(n / BLOCK);
  for (let b = 0; b < n / BLOCK; b++) {
    let amax = 0;
    for (let i = 0; i < BLOCK; i++) amax = Math.max(amax, Math.abs(x[b * BLOCK + i]!));
    const scale = f(f(amax) / levels);
    const inv = scale !== 0 ? f(1 / scale) : 0;
    d[b] = scale;
    for (let i = 0; i < BLOCK; i++) q[b * BLOCK + i] = nearestEven(f(x[b * BLOCK + i]! * inv));
  }
  return { q, d };
}

/**
 * out[t, r] = sum over blocks b of f32(isum_b) * (wd[r, b] * xd[t, b]), added in block order in float32,
 * isum_b the exact integer dot product of the block's int8 weights and int16 x (up to 32 * 127 * 32767:
 * its conversion to float32 rounds past 2^24).
 */
export function productQ8Reference(
  wq: Int8Array,
  wd: Float32Array,
  xq: Int16Array,
  xd: Float32Array,
  rows: number,
  cols: number,
  tokens: number,
): Float32Array {
  const blocks = cols / BLOCK;
  const out = new Float32Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let b = 0; b < blocks; b++) {
        let isum = 0;
        for (let i = 0; i < BLOCK; i++) isum += wq[r * cols + b * BLOCK + i]! * xq[t * cols + b * BLOCK + i]!;
        acc = f(acc + f(f(isum) * f(wd[r * blocks + b]! * xd[t * blocks + b]!)));
      }
      out[t * rows + r] = acc;
    }
  }
  return out;
}

/**
 * A picking product's pick from its claims' records (loops.wat pickOfClaims,
 * kernels/split_products.ts pickedArgmax): the records (pool_ops.ts
 * PICK_RECORD_BYTES: the row where the next claim starts, the claim's pick
 * or -1) followed in row order from row 0 in `ints`, the first largest of
 * the picks in `floats` from x (byte offsets); -1 when a claim found a NaN
 * or an infinity, -2 when a record is not a claim's.
 */
export function pickOfClaimsReference(floats: Float32Array, ints: Int32Array, x: number, rows: number, records: number, group: number): number {
  let best = -1;
  let largest = -Infinity;
  for (let row = 0; row < rows;) {
    if (row % group !== 0) return -2;
    const record = (records + 8 * (row / group)) / 4;
    const end = ints[record]!;
    const at = ints[record + 1]!;
    if (at < 0) return -1;
    if (!(end > row && end <= rows && at >= row && at < end)) return -2;
    const v = floats[x / 4 + at]!;
    if (v > largest) {
      best = at;
      largest = v;
    }
    row = end;
  }
  return best;
}
