// Weight matrices held in the worker pool's shared memory, and the products
// x @ W^T that the pool splits by output rows (see pool.ts).
//
// A pooled matrix is stored [rows, stride] (rows = output features, the
// checkpoints' own layout; stride = cols rounded up to a multiple of 32, the
// padding zeros, as is the padding of x), as float32 or as Q8 blocks:
//
//   f32  rows * stride float32
//   q8   rows * stride int8, then rows * stride/32 float32 scales: every
//        block of 32 weights along a row is d * q with q in [-127, 127]
//        (llama.cpp's Q8_0, with a float32 scale): 1.125 bytes a weight
//
// For a q8 product x is quantised the same way first, so the block dot
// products are integer arithmetic (simd/products.wat); kernels/products.ref.ts
// is the plain loop both are checked against.
import * as tf from '@tensorflow/tfjs';
import { float32View, hasDirectMemory } from './paths.js';
import { ProductOp, type WorkerPool } from './pool.js';

import type { WeightFormat } from './weight_format.js';

export { WEIGHT_FORMATS, type WeightFormat } from './weight_format.js';

/** Weights per Q8 block (one scale each). */
export const Q8_BLOCK = 32;

export interface PooledMatrix {
  pool: WorkerPool;
  format: WeightFormat;
  /** Output features. */
  rows: number;
  /** Input features. */
  cols: number;
  /** cols rounded up to a whole number of blocks: the loops see this many (the rest zeros). */
  stride: number;
  /** Offset of the weights: [rows, stride] float32 or int8. */
  data: number;
  /** q8: offset of the scales, [rows, stride / 32] float32; f32: 0. */
  scales: number;
}

/** cols rounded up to a multiple of 32. */
function strideOf(cols: number): number {
  return Math.ceil(cols / Q8_BLOCK) * Q8_BLOCK;
}

/** Bytes a [rows, cols] matrix takes in `format` (its padding included). */
export function matrixBytes(format: WeightFormat, rows: number, cols: number): number {
  const n = rows * strideOf(cols);
  return format === 'f32' ? 4 * n : n + (4 * n) / Q8_BLOCK;
}

/** A zero [rows, cols] matrix in the pool; writeRow fills it. */
export function allocMatrix(pool: WorkerPool, format: WeightFormat, rows: number, cols: number): PooledMatrix {
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0)) throw new RangeError(`allocMatrix: bad shape [${rows}, ${cols}]`);
  const stride = strideOf(cols);
  // fresh pool memory is zero: the padding columns need no writing
  if (format === 'f32') return { pool, format, rows, cols, stride, data: pool.alloc(4 * rows * stride), scales: 0 };
  const data = pool.alloc(rows * stride);
  return { pool, format, rows, cols, stride, data, scales: pool.alloc((4 * rows * stride) / Q8_BLOCK) };
}

// Operand space for the products, per pool, grown (never shrunk) on demand.
const scratchOf = new WeakMap<WorkerPool, { offset: number; bytes: number }>();

function scratch(pool: WorkerPool, bytes: number): number {
  const have = scratchOf.get(pool);
  if (have !== undefined && have.bytes >= bytes) return have.offset;
  const grown = Math.max(bytes, 2 * (have?.bytes ?? 0), 1 << 16);
  const offset = pool.alloc(grown);
  scratchOf.set(pool, { offset, bytes: grown });
  return offset;
}

/** Write row `row` of `m` from values[at .. at + cols) (quantising it for q8). */
export function writeRow(m: PooledMatrix, row: number, values: Float32Array, at = 0): void {
  const { pool, cols, stride } = m;
  if (m.format === 'f32') {
    new Float32Array(pool.memory.buffer, m.data + 4 * row * stride, cols).set(values.subarray(at, at + cols));
    return;
  }
  const x = scratch(pool, 4 * stride);
  const padded = new Float32Array(pool.memory.buffer, x, stride);
  padded.set(values.subarray(at, at + cols));
  padded.fill(0, cols);
  pool.loops.quantizeQ8(x, stride, m.data + row * stride, m.scales + (4 * row * stride) / Q8_BLOCK);
}

/**
 * out[t, r] = sum_c m[r, c] * x[t, c] for `tokens` rows of x ([tokens, cols]).
 * Returns a view of the result in the pool's memory: [tokens, rows], valid
 * until the pool's next product or allocation.
 */
export function pooledProduct(m: PooledMatrix, x: Float32Array, tokens: number): Float32Array {
  const { pool, rows, cols, stride } = m;
  if (x.length < tokens * cols) throw new RangeError(`pooledProduct: x holds ${x.length} values, ${tokens} x ${cols} needed`);
  const n = tokens * stride;
  const outBytes = 4 * tokens * rows;
  const quantBytes = m.format === 'q8' ? n + (4 * n) / Q8_BLOCK : 0;
  const base = scratch(pool, 4 * n + outBytes + quantBytes);
  const xp = base;
  const out = xp + 4 * n;
  const padded = new Float32Array(pool.memory.buffer, xp, n); // x: [tokens, stride]
  if (stride === cols) padded.set(x.subarray(0, n));
  else {
    for (let t = 0; t < tokens; t++) {
      padded.set(x.subarray(t * cols, (t + 1) * cols), t * stride);
      padded.fill(0, t * stride + cols, (t + 1) * stride);
    }
  }
  const weightBytes = matrixBytes(m.format, rows, cols);
  if (m.format === 'f32') {
    pool.run(ProductOp.F32, [m.data, xp, out, stride, tokens, rows], rows, weightBytes);
  } else {
    const xq = out + outBytes;
    const xd = xq + n;
    pool.loops.quantizeQ8(xp, n, xq, xd);
    pool.run(ProductOp.Q8, [m.data, m.scales, xq, xd, out, stride, tokens, rows], rows, weightBytes);
  }
  return new Float32Array(pool.memory.buffer, out, tokens * rows);
}

/** x: [T, cols] @ m^T (+ bias: [rows]) -> [T, rows], a new tensor; inference only (no gradient). */
export function pooledLinear(x: tf.Tensor2D, m: PooledMatrix, bias?: tf.Tensor1D): tf.Tensor2D {
  const [T, inDim] = x.shape;
  if (inDim !== m.cols) throw new RangeError(`pooledLinear: x has ${inDim} features, the matrix takes ${m.cols}`);
  // The view of a wasm tensor is read at once, before any tfjs allocation.
  const values = hasDirectMemory() ? float32View(x) : (x.dataSync() as Float32Array);
  const y = tf.tensor2d(pooledProduct(m, values, T).slice(), [T, m.rows]); // [T, rows]
  if (bias === undefined) return y;
  const biased = y.add<tf.Tensor2D>(bias);
  y.dispose();
  return biased;
}
