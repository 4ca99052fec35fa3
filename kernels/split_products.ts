// Weight matrices held in the worker pool's shared memory, and the products
// x @ W^T that the pool splits by output rows (see pool.ts).
//
// A pooled matrix has `rows` output features and `cols` inputs, the rows
// padded to a whole group (16 rows for f32, 4 for q8) with zero rows and the
// columns to `stride`, a multiple of 32 (zeros, as is the padding of x), and
// is stored packed in groups of rows (simd/products.wat): each group one
// contiguous run that the loop reads front to back, so the whole matrix is
// one sequential stream.
//
//   f32  per group of 16 rows, per column: the 16 rows' weights (64 bytes);
//        each output summed in column order, as XNNPACK sums (the same bits
//        as the tfjs wasm backend's products)
//   q8   per group of 4 rows, per block of 32 columns: the 4 rows' blocks as int8
//        (128 bytes), then their 4 float32 scales; every block is d * q with
//        q in [-127, 127] (llama.cpp's Q8_0, with a float32 scale): 1.125
//        bytes a weight
//
// For a q8 product x is quantised per block of 32 first, to int16 (d = max|x|
// / 32767: rounding x to int8 as well cost more accuracy than the weights'
// own rounding, README), so the block dot products are integer arithmetic
// (simd/products.wat); kernels/products.ref.ts is the plain loop both are
// checked against.
import * as tf from '@tensorflow/tfjs';
import { float32View, hasDirectMemory } from './paths.js';
import type { WorkerPool } from './pool.js';
import { GATED_SCRATCH_FLOATS, PICK_RECORD_BYTES, PoolOp, splitRows } from './pool_ops.js';
import { poolScratch, poolScratchFits } from './pool_scratch.js';

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
  /** Offset of the packed weights (and, q8, their scales): matrixBytes(format, rows, cols) bytes. */
  data: number;
}

/** cols rounded up to a multiple of 32. */
function strideOf(cols: number): number {
  return Math.ceil(cols / Q8_BLOCK) * Q8_BLOCK;
}

/** Rows in a group of the packed layout: f32 16 (four chains of additions in SIMD lanes), q8 4. */
const F32_GROUP = 16;
const GROUP = 4;
const groupRows = (format: WeightFormat) => (format === 'f32' ? F32_GROUP : GROUP);

/** Bytes a [rows, cols] matrix takes in `format` (its padding included). */
export function matrixBytes(format: WeightFormat, rows: number, cols: number): number {
  const n = Math.ceil(rows / groupRows(format)) * groupRows(format) * strideOf(cols);
  return format === 'f32' ? 4 * n : n + (4 * n) / Q8_BLOCK;
}

/** Bytes of one group of rows. */
function groupBytes(format: WeightFormat, stride: number): number {
  return matrixBytes(format, groupRows(format), stride);
}

/** A zero [rows, cols] matrix in the pool; writeRow fills it. */
export function allocMatrix(pool: WorkerPool, format: WeightFormat, rows: number, cols: number): PooledMatrix {
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0)) throw new RangeError(`allocMatrix: bad shape [${rows}, ${cols}]`);
  const stride = strideOf(cols);
  // fresh pool memory is zero: the padding rows and columns need no writing
  return { pool, format, rows, cols, stride, data: pool.alloc(matrixBytes(format, rows, cols)) };
}

// A tensor made from a product's result (productTensor) remembers where its
// values still lie in the pool, until the products' region is written again
// (counted per pool): the token NLLs then read them there instead of copying
// them back in (kernels/token_nll.ts). A result's pool is found by its
// memory's buffer (an entry per buffer, not per result: a WeakMap entry for
// each of a 15M decode step's 25 results cost 28 µs of its 0.9 ms).
const bufferPools = new WeakMap<ArrayBufferLike, WorkerPool>();
const residents = new WeakMap<tf.Tensor, { pool: WorkerPool; offset: number; write: number }>();

/** Operand space for the products' results (and their other uses of the pool's memory), on a cache line's start. */
function scratch(pool: WorkerPool, bytes: number): number {
  productsOf(pool).writes++;
  return lineStart(poolScratch(pool, 'products', bytes + 48));
}

/**
 * Space for a product's x (padded, and for q8 quantised), on a cache line's
 * start: apart from the results, so that lines a worker wrote results into
 * (its rows of the last product) are never the ones the caller writes the
 * next x into, which would move each such line between the cores once more.
 */
function operandScratch(pool: WorkerPool, bytes: number): number {
  return lineStart(poolScratch(pool, 'product operands', bytes + 48));
}

/** offset (16-byte aligned) rounded up to a multiple of 64. */
const lineStart = (offset: number) => Math.ceil(offset / 64) * 64;

// The results' views, by length (a product's result always lies at the
// products' region's start), reused from call to call while the pool's
// memory has not grown; the operands are written through the pool's own
// views (WorkerPool.views). A view made for every operand and result, with
// the jobs' argument arrays, was about a quarter of the 34 KB a 15M decode
// step allocated.
const resultViews = new WeakMap<WorkerPool, { buffer: ArrayBufferLike; byLength: Map<number, Float32Array> }>();

/** A view of n floats at `offset` in the pool's memory (a result): the same object as the last one of that length and place, where the memory has not grown since. */
function resultView(pool: WorkerPool, offset: number, n: number): Float32Array {
  const buffer = pool.memory.buffer;
  let r = resultViews.get(pool);
  if (r === undefined || r.buffer !== buffer) resultViews.set(pool, (r = { buffer, byLength: new Map() }));
  let view = r.byLength.get(n);
  if (view === undefined || view.byteOffset !== offset) r.byLength.set(n, (view = new Float32Array(buffer, offset, n)));
  return view;
}

// The jobs' arguments (run's args): an array per kind of job, filled for
// each product (run reads them only while it runs). A product's last is the
// picks' records (F32Pick, Q8Pick; 0 for a product that does not pick).
const f32Args = [0, 0, 0, 0, 0, 0, 0];
const q8Args = [0, 0, 0, 0, 0, 0, 0, 0];
const gatedArgs = [0, 0, 0, 0, 0, 0, 0];

/** f32Args holding a float32 product's arguments. */
function f32JobArgs(w: number, x: number, out: number, cols: number, tokens: number, rows: number, records: number): number[] {
  const args = f32Args;
  args[0] = w;
  args[1] = x;
  args[2] = out;
  args[3] = cols;
  args[4] = tokens;
  args[5] = rows;
  args[6] = records;
  return args;
}

/** `args` holding a q8 job's arguments: the product's (with the picks' records), or the gated job's seven (see pool_ops.ts GATED_SCRATCH_FLOATS). */
function q8JobArgs(args: number[], w: number, xq: number, xd: number, out: number, cols: number, tokens: number, rows: number, records = 0): number[] {
  args[0] = w;
  args[1] = xq;
  args[2] = xd;
  args[3] = out;
  args[4] = cols;
  args[5] = tokens;
  args[6] = rows;
  if (args.length > 7) args[7] = records;
  return args;
}

/**
 * The last product that picked (pooledPickingProduct), per pool: where its
 * result and its claims' records lie, and the products' region's write
 * count then (the records are read only while the result is still there).
 */
interface Pick {
  out: number;
  rows: number;
  records: number;
  group: number;
  write: number;
}

/**
 * A pool's products: how often their region was written, and the last
 * picking product. One entry a pool, so that a decode step looks it up
 * once to note its pick and once to read it (each lookup of a table that
 * the step's weights have evicted from the CPU's caches costs reads from
 * memory).
 */
interface Products {
  writes: number;
  pick: Pick | undefined;
}
const products = new WeakMap<WorkerPool, Products>();

function productsOf(pool: WorkerPool): Products {
  let p = products.get(pool);
  if (p === undefined) products.set(pool, (p = { writes: 0, pick: undefined }));
  return p;
}

/** Where in `pool`'s memory the values of `t` (made by productTensor) still lie, if they do: a byte offset. */
export function residentOffset(t: tf.Tensor, pool: WorkerPool): number | undefined {
  const r = residents.get(t);
  return r !== undefined && r.pool === pool && r.write === products.get(pool)?.writes ? r.offset : undefined;
}

/** Write row `row` of `m` from values[at .. at + cols) (quantising it for q8). */
export function writeRow(m: PooledMatrix, row: number, values: Float32Array, at = 0): void {
  const { pool, cols, stride, format } = m;
  if (!(Number.isInteger(row) && row >= 0 && row < m.rows)) throw new RangeError(`writeRow: row ${row} outside 0..${m.rows - 1}`);
  const group = m.data + Math.floor(row / groupRows(format)) * groupBytes(format, stride);
  const lane = row % groupRows(format);
  if (format === 'f32') {
    // column c of the row: the float at group + 64 c + 4 lane
    const dst = new Float32Array(pool.memory.buffer, group, F32_GROUP * stride);
    for (let c = 0; c < cols; c++) dst[c * F32_GROUP + lane] = values[at + c]!;
    return;
  }
  const x = scratch(pool, 4 * stride + stride + (4 * stride) / Q8_BLOCK);
  const q = x + 4 * stride;
  const d = q + stride;
  const padded = new Float32Array(pool.memory.buffer, x, stride);
  padded.set(values.subarray(at, at + cols));
  padded.fill(0, cols);
  pool.loops.quantizeQ8(x, stride, q, d);
  // block b of the row: 32 int8 at group + 144 b + 32 lane, its scale at group + 144 b + 128 + 4 lane
  // moved as int32 words (every offset here is a multiple of 4): a call per block would cost more than its 32 bytes
  const words = new Int32Array(pool.memory.buffer);
  const blockWords = (GROUP * Q8_BLOCK + 4 * GROUP) / 4;
  const from = q / 4;
  for (let b = 0, to = group / 4 + lane * (Q8_BLOCK / 4); b < stride / Q8_BLOCK; b++, to += blockWords) {
    for (let k = 0; k < Q8_BLOCK / 4; k++) words[to + k] = words[from + b * (Q8_BLOCK / 4) + k]!;
    words[to - lane * (Q8_BLOCK / 4) + (GROUP * Q8_BLOCK) / 4 + lane] = words[d / 4 + b]!; // the scale's bits
  }
}

/** Row `row` of a q8 matrix as stored: its int8 values and block scales (for tests). */
export function readRowQ8(m: PooledMatrix, row: number): { q: Int8Array; d: Float32Array } {
  if (m.format !== 'q8') throw new Error('readRowQ8: an f32 matrix');
  const group = m.data + Math.floor(row / GROUP) * groupBytes('q8', m.stride);
  const lane = row % GROUP;
  const blocks = m.stride / Q8_BLOCK;
  const all = new Int8Array(m.pool.memory.buffer);
  const view = new DataView(m.pool.memory.buffer);
  const q = new Int8Array(m.stride);
  const d = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const block = group + b * (GROUP * Q8_BLOCK + 4 * GROUP);
    q.set(all.subarray(block + lane * Q8_BLOCK, block + (lane + 1) * Q8_BLOCK), b * Q8_BLOCK);
    d[b] = view.getFloat32(block + GROUP * Q8_BLOCK + 4 * lane, true);
  }
  return { q, d };
}

/** An RMSNorm that a product applies to its x first (kernels/rmsnorm.ts): weight [cols]. */
export interface InputNorm {
  weight: Float32Array;
  eps: number;
  /** Where a copy of weight lies in the pool's memory (a byte offset), if it does: read there, not copied in for each product. */
  at?: number;
}

/**
 * x ([tokens, cols]) into the operand region at xp as [tokens, stride], the
 * padding zero, normalised there by `norm` if given (loops.wat rmsNormRows:
 * rmsNormRows' bits, without the intermediate array and its copy; its weight
 * copied in at weightAt).
 */
function writeOperand(
  pool: WorkerPool,
  xp: number,
  x: Float32Array,
  tokens: number,
  cols: number,
  stride: number,
  norm: InputNorm | undefined,
  weightAt: number,
): void {
  const n = tokens * stride;
  const floats = pool.views().floats;
  const at = xp / 4; // x: [tokens, stride] from here
  if (stride === cols) floats.set(x.length === n ? x : x.subarray(0, n), at);
  else {
    for (let t = 0; t < tokens; t++) {
      floats.set(x.subarray(t * cols, (t + 1) * cols), at + t * stride);
      floats.fill(0, at + t * stride + cols, at + (t + 1) * stride);
    }
  }
  if (norm === undefined) return;
  if (norm.weight.length !== cols) throw new RangeError(`pooled product: a norm weight of ${norm.weight.length} values for ${cols} columns`);
  if (norm.at === undefined) floats.set(norm.weight, weightAt / 4);
  pool.shared.rmsNormRows(xp, norm.at ?? weightAt, tokens, cols, stride, norm.eps, xp);
}

/**
 * out[t, r] = sum_c m[r, c] * x[t, c] for `tokens` rows of x ([tokens, cols]),
 * each row of x first normalised by `norm` if given.
 * Returns a view of the result in the pool's memory: [tokens, rows], valid
 * until the pool's next product or allocation.
 */
export function pooledProduct(m: PooledMatrix, x: Float32Array, tokens: number, norm?: InputNorm): Float32Array {
  return product(m, x, tokens, norm, false);
}

/**
 * pooledProduct of one token (x: [cols]) that also finds the first largest
 * of its result, greedy decoding's pick of a classifier's logits, in the
 * same job: each thread picks from the rows it computed, where they lie
 * (see pool_ops.ts PICK_RECORD_BYTES); pickedArgmax gives the pick while the
 * result is there. The same result [rows] as pooledProduct's.
 */
export function pooledPickingProduct(m: PooledMatrix, x: Float32Array, norm?: InputNorm): Float32Array {
  return product(m, x, 1, norm, true);
}

/**
 * The first largest of `values`, a picking product's result while it lies
 * where that product wrote it (no product since), or -1 when any of them is
 * NaN or infinite, as argmaxFinite finds them (kernels/logits_argmax.ts);
 * undefined for any other values.
 */
export function pickedArgmax(pool: WorkerPool, values: Float32Array): number | undefined {
  const made = products.get(pool);
  const p = made?.pick;
  if (p === undefined || p.write !== made!.writes || values.byteOffset !== p.out || values.length !== p.rows) return undefined;
  if (values.buffer !== pool.memory.buffer) return undefined;
  // the claims' records in row order, each naming where the next claim
  // starts (in WebAssembly: as JavaScript, V8 ran this loop as bytecode
  // through a process's first ~100 tokens, then compiled it on a background
  // thread that took one of the pool's cores)
  const best = pool.shared.pickOfClaims(p.out, p.rows, p.records, p.group);
  if (best === -2) throw new Error(`pickedArgmax: the records at ${p.records} are not the claims of rows 0..${p.rows - 1}`);
  return best;
}

/**
 * A picking product of one token of m (F32Pick or Q8Pick) ran outside
 * pooledPickingProduct (a step of a decode program): its result [rows] at
 * `out`, its claims' records at `records`. pickedArgmax then gives its pick
 * while no product has run since. Call it after each run: it also counts
 * as the products' write that makes results written before no longer
 * resident (residentOffset).
 */
export function notePickingProduct(m: PooledMatrix, out: number, records: number): void {
  const { pool, rows } = m;
  // (counted as a product's write: a tensor made from an earlier result there, productTensor, is no longer resident)
  const made = productsOf(pool);
  made.writes++;
  notePick(made, out, rows, records, splitRows(m.format === 'f32' ? PoolOp.F32Pick : PoolOp.Q8Pick));
}

/** The last picking product's result and records, at the products' region's write count now (pickedArgmax reads them while it holds). */
function notePick(made: Products, out: number, rows: number, records: number, group: number): void {
  let p = made.pick;
  if (p === undefined) made.pick = p = { out, rows, records, group, write: 0 };
  p.out = out;
  p.rows = rows;
  p.records = records;
  p.group = group;
  p.write = made.writes;
}

/** pooledProduct, and with `pick` (one token) pooledPickingProduct. */
function product(m: PooledMatrix, x: Float32Array, tokens: number, norm: InputNorm | undefined, pick: boolean): Float32Array {
  const { pool, rows, cols, stride } = m;
  if (x.length < tokens * cols) throw new RangeError(`pooledProduct: x holds ${x.length} values, ${tokens} x ${cols} needed`);
  const n = tokens * stride;
  const outBytes = 4 * tokens * rows;
  const quantBytes = m.format === 'q8' ? 2 * n + (4 * n) / Q8_BLOCK : 0; // x as int16, and its scales
  const normBytes = norm === undefined ? 0 : 4 * cols;
  const xp = operandScratch(pool, 4 * n + quantBytes + normBytes); // [x padded | xq | xd | norm weight]
  const out = scratch(pool, outBytes);
  const op = m.format === 'f32' ? (pick ? PoolOp.F32Pick : PoolOp.F32) : pick ? PoolOp.Q8Pick : PoolOp.Q8;
  const group = splitRows(op);
  const records = pick ? poolScratch(pool, 'product picks', PICK_RECORD_BYTES * Math.ceil(rows / group)) : 0;
  writeOperand(pool, xp, x, tokens, cols, stride, norm, xp + 4 * n + quantBytes);
  // the bytes the call reads, for the pool's choice to split it: a block of tokens reads the weights once per token (from cache)
  const weightBytes = tokens * matrixBytes(m.format, rows, cols);
  if (m.format === 'f32') {
    pool.run(op, f32JobArgs(m.data, xp, out, stride, tokens, rows, records), rows, weightBytes);
  } else {
    const xq = xp + 4 * n; // (n a multiple of 32: on a line's start, as xd is)
    const xd = xq + 2 * n;
    pool.loops.quantizeX16(xp, n, xq, xd);
    pool.run(op, q8JobArgs(q8Args, m.data, xq, xd, out, stride, tokens, rows, records), rows, weightBytes);
  }
  if (pick) notePick(productsOf(pool), out, rows, records, group);
  const result = resultView(pool, out, tokens * rows);
  if (bufferPools.get(result.buffer) !== pool) bufferPools.set(result.buffer, pool);
  return result;
}

/**
 * SwiGLU of one token's product with a q8 gate|up matrix m ([2 hidden,
 * cols]: gate rows, then up rows), x: [cols] (normalised by `norm` first if
 * given) -> silu(gate) * up: [hidden],
 * in one pool job (PoolOp.Q8Gated): the same bits as pooledProduct then
 * pooledSwiglu, without the second job. A view of the pool's memory, valid
 * until the next pooled SwiGLU (it shares pooledSwiglu's region); undefined
 * where the job does not apply: a float32 matrix (see GATED_SCRATCH_FLOATS),
 * hidden not a whole number of row groups (4), or no room in the memory.
 */
export function pooledGatedProduct(m: PooledMatrix, x: Float32Array, norm?: InputNorm): Float32Array | undefined {
  const { pool, rows, cols, stride } = m;
  const hidden = rows / 2;
  if (m.format !== 'q8' || !Number.isInteger(hidden) || hidden % GROUP !== 0 || !poolScratchFits(pool, 'swiglu', 4 * hidden)) return undefined;
  if (x.length < cols) throw new RangeError(`pooledGatedProduct: x holds ${x.length} values, ${cols} needed`);
  const gated = poolScratch(pool, 'swiglu', 4 * hidden); // [hidden]
  const quantBytes = 2 * stride + (4 * stride) / Q8_BLOCK;
  const xp = operandScratch(pool, 4 * stride + quantBytes + (norm === undefined ? 0 : 4 * cols)); // [x padded | xq | xd | norm weight]
  const span = scratch(pool, 4 * GATED_SCRATCH_FLOATS * hidden); // the job's scratch
  writeOperand(pool, xp, x, 1, cols, stride, norm, xp + 4 * stride + quantBytes);
  const xq = xp + 4 * stride;
  const xd = xq + 2 * stride;
  pool.loops.quantizeX16(xp, stride, xq, xd);
  pool.run(PoolOp.Q8Gated, q8JobArgs(gatedArgs, m.data, xq, xd, span, stride, gated, hidden), hidden, matrixBytes('q8', rows, cols));
  return resultView(pool, gated, hidden);
}

/** A tensor of a product's result (a view into the pool's memory, which the next product overwrites; any view of a pool's memory is taken for one). */
export function productTensor(product: Float32Array, shape: [number, number]): tf.Tensor2D {
  // The wasm backend copies a new tensor's values into its heap at once; the
  // cpu backend keeps the array itself.
  const t = tf.tensor2d(tf.getBackend() === 'wasm' ? product : product.slice(), shape);
  const pool = bufferPools.get(product.buffer);
  if (pool !== undefined) residents.set(t, { pool, offset: product.byteOffset, write: products.get(pool)?.writes ?? 0 });
  return t;
}

/** x: [T, cols] @ m^T (+ bias: [rows]) -> [T, rows], a new tensor; inference only (no gradient). */
export function pooledLinear(x: tf.Tensor2D, m: PooledMatrix, bias?: tf.Tensor1D): tf.Tensor2D {
  const [T, inDim] = x.shape;
  if (inDim !== m.cols) throw new RangeError(`pooledLinear: x has ${inDim} features, the matrix takes ${m.cols}`);
  // The view of a wasm tensor is read at once, before any tfjs allocation.
  const values = hasDirectMemory() ? float32View(x) : (x.dataSync() as Float32Array);
  const y = productTensor(pooledProduct(m, values, T), [T, m.rows]); // [T, rows]
  if (bias === undefined) return y;
  const biased = y.add<tf.Tensor2D>(bias);
  y.dispose();
  return biased;
}
