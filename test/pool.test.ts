// The worker pool and its products (kernels/pool.ts, kernels/split_products.ts):
// q8 quantisation and products equal the plain loops bit for bit, float32
// products agree with float64 within float32 rounding, a product split over
// threads equals the same product on one thread bit for bit however it is
// cut into chunks and whichever thread claims them (a thread made late, the
// caller or a worker), a loop that fails makes the call throw and leaves the
// pool usable, and the pool neither leaks tensors nor keeps a process alive.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import t, { type Test } from 'tap';
import { attendDirect } from '../kernels/attention_fused.js';
import {
  adviseHugePages,
  HUGE_PAGE_BYTES,
  hugePageEnd,
  hugePagesUnavailable,
  type PageAdvice,
  reservedFrom,
  transparentHugePageMode,
} from '../kernels/huge_pages.js';
import { POOL_MAX_BYTES, WorkerPool } from '../kernels/pool.js';
import { type JobOp, PoolOp } from '../kernels/pool_ops.js';
import { poolRegions, PoolRegions } from '../kernels/pool_regions.js';
import { attendInPool } from '../kernels/pooled_attention.js';
import { PoolProgram, type ProgramOpStep, type ProgramStep } from '../kernels/pool_program.js';
import { pooledSwiglu } from '../kernels/pooled_swiglu.js';
import { qkvHeadsInto } from '../kernels/qkv_heads.js';
import { qkvRopeInPool, qkvRopeRecordBytes, setQkvRopeSlot, writeQkvRopeRecord } from '../kernels/qkv_rope.js';
import { BLOCK, FRAME, FRAME_WORDS, FRAMES_BLOCK_WORDS, ROW, ROW_WORDS } from '../kernels/decode_patch.js';
import { patchDecodeLayersRef } from '../kernels/decode_patch.ref.js';
import { ropeAngleArrays } from '../kernels/rope.js';
import { WASM_BASE64 as SHARED_LOOPS_WASM } from '../kernels/simd/loops.shared.wasm.js';
import { WASM_BASE64 as PRODUCTS_WASM } from '../kernels/simd/products.wasm.js';
import { WASM_BASE64 as WALKER_WASM } from '../kernels/simd/walker.wasm.js';
import { matMul2d } from '../kernels/matmul.js';
import { rmsNormRows } from '../kernels/rmsnorm.js';
import { rmsNormReference } from '../kernels/rmsnorm.ref.js';
import {
  pickOfClaimsReference,
  productF32Reference,
  productQ8Reference,
  productReference,
  quantizeReference,
  quantizeX16Reference,
} from '../kernels/products.ref.js';
import {
  allocMatrix,
  matrixBytes,
  type PooledMatrix,
  pooledGatedProduct,
  pickedArgmax,
  pooledLinear,
  pooledPickingProduct,
  pooledProduct,
  readRowQ8,
  type WeightFormat,
  writeRow,
} from '../kernels/split_products.js';
import { initTestBackend, maxAbsDiff, vmFlagsAt } from './helpers.js';
import { ROOT } from './paths.js';

const backend = await initTestBackend();
const rng = seedrandom('pool');
const randn = (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1);

function matrix(pool: WorkerPool, format: WeightFormat, w: Float32Array, rows: number, cols: number): PooledMatrix {
  const m = allocMatrix(pool, format, rows, cols);
  for (let r = 0; r < rows; r++) writeRow(m, r, w, r * cols);
  return m;
}

/** [n, cols] -> [n, stride], zeros after each row. */
function padded(a: Float32Array, n: number, cols: number, stride: number): Float32Array {
  const out = new Float32Array(n * stride);
  for (let i = 0; i < n; i++) out.set(a.subarray(i * cols, (i + 1) * cols), i * stride);
  return out;
}

// rows that leave every tail: groups of four and single rows, one and several tokens
const SHAPES = [
  [1, 32, 1],
  [5, 64, 1],
  [37, 96, 3],
  [7, 48, 2], // 48 inputs: padded to 64 with zeros
  [64, 128, 2],
  [203, 256, 5],
] as const;

// splitMinBytes 0: every product is split, however small; spinMicros 0: the
// threads sleep between jobs at once (the others spin first)
const one = new WorkerPool(1);
const pools = [...[2, 3, 4].map((n) => new WorkerPool(n, { splitMinBytes: 0 })), new WorkerPool(2, { splitMinBytes: 0, spinMicros: 0 })];
t.teardown(() => Promise.all([one, ...pools].map((p) => p.dispose())));
await Promise.all(pools.map((p) => p.ready()));

t.test('q8 quantisation equals the reference loop', async (t) => {
  const cols = 256;
  const x = randn(cols);
  x.fill(0, 64, 96); // an all-zero block: scale 0, every q 0
  x[10] = 0.5 * (x[11] = 1.27); // values on a rounding boundary, given the block's scale
  const m = matrix(one, 'q8', x, 1, cols);
  const want = quantizeReference(x);
  const stored = readRowQ8(m, 0);
  t.same(Array.from(stored.q), Array.from(want.q));
  t.same(Array.from(stored.d), Array.from(want.d));
  t.equal(want.d[2], 0, 'the zero block has scale 0');
});

t.test('q8 products equal the reference loop, on one thread and split', async (t) => {
  for (const [rows, cols, tokens] of SHAPES) {
    const w = randn(rows * cols);
    const x = randn(tokens * cols);
    const stride = Math.ceil(cols / 32) * 32;
    const wq = quantizeReference(padded(w, rows, cols, stride));
    const xq = quantizeX16Reference(padded(x, tokens, cols, stride));
    const want = productQ8Reference(wq.q, wq.d, xq.q, xq.d, rows, stride, tokens);
    for (const pool of [one, ...pools]) {
      const got = pooledProduct(matrix(pool, 'q8', w, rows, cols), x, tokens);
      t.same(Array.from(got), Array.from(want), `${rows}x${cols}, ${tokens} tokens, ${pool.threads} threads`);
    }
  }
});

t.test('q8 products: x in int16 blocks, block sums past 2^24 rounded as float32, as the reference does', async (t) => {
  // weights and x of one sign: every block's integer sum is near 32 * 127 * 32767 = 1.3e8
  const [rows, cols] = [32, 96];
  const w = Float32Array.from({ length: rows * cols }, () => 1 + rng());
  const x = Float32Array.from({ length: cols }, () => 1 + rng());
  x[5] = 0.5 * (x[6] = 2.5); // on a rounding boundary given the block's scale (2.5 / 32767 per step)
  const wq = quantizeReference(w);
  const xq = quantizeX16Reference(x);
  t.equal(Math.max(...Array.from(xq.q, Math.abs)), 32767, 'the largest |x| of a block is 32767');
  const want = productQ8Reference(wq.q, wq.d, xq.q, xq.d, rows, cols, 1);
  t.same(Array.from(pooledProduct(matrix(one, 'q8', w, rows, cols), x, 1)), Array.from(want), 'bit for bit');
  // the float64 product within the two quantisations' error (int8 weights: 1/254 of a block's largest weight)
  const exact = productReference(w, x, rows, cols, 1);
  t.ok(
    want.every((v, r) => Math.abs(v - exact[r]!) / exact[r]! < 2e-3),
    'near the float32 product',
  );
});

t.test('float32 products: the column-order float32 loop bit for bit, on one thread and split; the float64 loop within rounding', async (t) => {
  for (const [rows, cols, tokens] of SHAPES) {
    const w = randn(rows * cols);
    const x = randn(tokens * cols);
    const single = Array.from(pooledProduct(matrix(one, 'f32', w, rows, cols), x, tokens));
    t.same(single, Array.from(productF32Reference(w, x, rows, cols, tokens)), `${rows}x${cols}, ${tokens} tokens: the float32 loop`);
    const want = productReference(w, x, rows, cols, tokens);
    const worst = Math.max(...single.map((v, i) => Math.abs(v - want[i]!)));
    t.ok(worst < 1e-5 * Math.sqrt(cols), `${rows}x${cols}, ${tokens} tokens: the float64 product within ${worst.toExponential(2)}`);
    for (const pool of pools) {
      t.same(Array.from(pooledProduct(matrix(pool, 'f32', w, rows, cols), x, tokens)), single, `${pool.threads} threads`);
    }
  }
});

t.test('float32 products equal the backend matMul (XNNPACK on wasm) bit for bit', { skip: backend !== 'wasm' && 'XNNPACK runs on wasm' }, async (t) => {
  for (const [rows, cols, tokens] of [...SHAPES, [100, 288, 1], [33, 768, 4]] as const) {
    const w = randn(rows * cols); // [rows, cols]
    const x = randn(tokens * cols);
    const before = tf.memory().numTensors;
    const want = tf.tidy(() => matMul2d(tf.tensor2d(x, [tokens, cols]), tf.tensor2d(w, [rows, cols]).transpose()).dataSync());
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    for (const pool of [one, pools[1]!]) {
      t.same(
        Array.from(pooledProduct(matrix(pool, 'f32', w, rows, cols), x, tokens)),
        Array.from(want),
        `${rows}x${cols}, ${tokens} tokens, ${pool.threads} threads`,
      );
    }
  }
});

t.test('the float32 loop over a range of rows that cuts its groups of 16 stores only that range', async (t) => {
  const [rows, cols, tokens] = [40, 64, 3];
  const w = randn(rows * cols);
  const x = randn(tokens * cols);
  const m = matrix(one, 'f32', w, rows, cols);
  const want = productF32Reference(w, x, rows, cols, tokens);
  const xp = one.alloc(4 * tokens * cols);
  new Float32Array(one.memory.buffer, xp, tokens * cols).set(x);
  const out = one.alloc(4 * tokens * rows);
  const got = new Float32Array(one.memory.buffer, out, tokens * rows);
  for (const [row0, row1] of [
    [4, 20],
    [8, 12],
    [20, 37],
    [36, 40],
  ] as const) {
    got.fill(-1);
    one.loops.productF32(m.data, xp, out, row0, row1, cols, tokens, rows);
    const inRange = (i: number) => i % rows >= row0 && i % rows < row1;
    t.same(
      Array.from(got).filter((_, i) => inRange(i)),
      Array.from(want).filter((_, i) => inRange(i)),
      `rows [${row0}, ${row1})`,
    );
    t.ok(
      got.every((v, i) => inRange(i) || v === -1),
      'nothing outside it written',
    );
  }
});

t.test('a product of one token equals its row of a product of several', async (t) => {
  const [rows, cols, tokens] = [37, 96, 3];
  const w = randn(rows * cols);
  const x = randn(tokens * cols);
  for (const format of ['f32', 'q8'] as const) {
    const m = matrix(pools[0]!, format, w, rows, cols);
    const all = Array.from(pooledProduct(m, x, tokens));
    const last = Array.from(pooledProduct(m, x.subarray((tokens - 1) * cols), 1));
    t.same(last, all.slice((tokens - 1) * rows), format);
  }
});

t.test('products reuse their views of the memory, and make new ones once it has grown: the same bits either way', async (t) => {
  const [rows, cols, tokens] = [37, 96, 200];
  const w = randn(rows * cols);
  const x = randn(tokens * cols);
  for (const format of ['f32', 'q8'] as const) {
    const pool = new WorkerPool(1);
    const m = matrix(pool, format, w, rows, cols);
    const first = pooledProduct(m, x, 1);
    const want = Array.from(first);
    t.equal(pooledProduct(m, x, 1), first, `${format}: the same view for the same result`);
    const lastRow = Array.from(pooledProduct(m, x.subarray((tokens - 1) * cols), 1));
    // a grown memory (a new buffer), and operands too large for the regions it had: new regions past its old end
    pool.alloc(pool.memory.buffer.byteLength);
    const all = pooledProduct(m, x, tokens);
    t.not(all.buffer, first.buffer, `${format}: a view of the grown memory`);
    t.same(Array.from(all.subarray(0, rows)), want, `${format}: the first token's row`);
    t.same(Array.from(all.subarray((tokens - 1) * rows)), lastRow, `${format}: the last token's row`);
    await pool.dispose();
  }
});

t.test("loops.wat rmsNormRows: rmsNormRows' bits (and the float64 reference's, rounded once), rows apart by a stride, the padding untouched", async (t) => {
  const pool = pools[0]!;
  for (const [rows, dim, stride] of [
    [1, 1, 1],
    [2, 3, 5],
    [3, 33, 40],
    [1, 289, 289],
    [2, 767, 768],
    [1, 768, 768],
  ] as const) {
    const x = randn(rows * dim).map((v, i) => (i % 7 === 0 ? v * 1e3 : v)); // some large values: sums that round
    const w = randn(dim);
    const eps = 1e-5;
    const want = new Float32Array(rows * dim);
    rmsNormRows(x, w, eps, dim, want);
    const reference = Float32Array.from(rmsNormReference(x, w, eps));
    const at = pool.alloc(4 * (rows * stride + dim));
    const memory = new Float32Array(pool.memory.buffer, at, rows * stride + dim);
    memory.set(padded(x, rows, dim, stride).map((v, i) => (i % stride < dim ? v : 7))); // 7 in the padding
    memory.set(w, rows * stride);
    for (const inPlace of [false, true]) {
      // in place last: it replaces x
      const out = inPlace ? at : pool.alloc(4 * rows * stride);
      const outValues = new Float32Array(pool.memory.buffer, out, rows * stride);
      if (!inPlace) outValues.fill(7);
      pool.shared.rmsNormRows(at, at + 4 * rows * stride, rows, dim, stride, eps, out);
      const got = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) got.set(outValues.subarray(r * stride, r * stride + dim), r * dim);
      const name = `[${rows}, ${dim}] stride ${stride}${inPlace ? ', in place' : ''}`;
      t.same(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `${name}: rmsNormRows' bits`);
      t.same(new Uint32Array(got.buffer), new Uint32Array(reference.buffer), `${name}: the reference's bits`);
      t.ok(
        outValues.every((v, i) => i % stride < dim || v === 7),
        `${name}: padding untouched`,
      );
    }
  }
});

t.test('loops.wat addInto: the float32 sums JavaScript gives, a tail of one to three, nothing past n written', async (t) => {
  const pool = pools[0]!;
  for (const n of [1, 3, 4, 7, 770]) {
    const x = randn(n).map((v, i) => (i % 5 === 0 ? v * 1e7 : v)); // sums that round
    const y = randn(n);
    const want = x.map((v, i) => v + y[i]!);
    const at = pool.alloc(4 * (2 * n + 1));
    const memory = new Float32Array(pool.memory.buffer, at, 2 * n + 1); // [x | guard | y]
    memory.set(x);
    memory[n] = 7;
    memory.set(y, n + 1);
    pool.shared.addInto(at, at + 4 * (n + 1), n);
    t.same(new Uint32Array(memory.slice(0, n).buffer), new Uint32Array(want.buffer), `${n}: bit for bit`);
    t.equal(memory[n], 7, `${n}: the float after x untouched`);
  }
});

t.test('a normed product equals the norm (rmsNormRows) then the product, bit for bit: f32, q8, gated; the weight also read in the pool', async (t) => {
  for (const [rows, cols, tokens] of [
    [40, 96, 3],
    [8, 48, 2], // padded to 64
    [24, 33, 1],
  ] as const) {
    const w = randn(rows * cols);
    const x = randn(tokens * cols);
    const given = Array.from(x);
    const norm = { weight: randn(cols), eps: 1e-6 };
    const normed = new Float32Array(tokens * cols);
    rmsNormRows(x, norm.weight, norm.eps, cols, normed);
    // the weight also as a copy in the pool's memory, read there (at)
    const pool = pools[0]!;
    const at = pool.alloc(4 * cols);
    new Float32Array(pool.memory.buffer, at, cols).set(norm.weight);
    const resident = { ...norm, at };
    for (const format of ['f32', 'q8'] as const) {
      const m = matrix(pool, format, w, rows, cols);
      const want = Array.from(pooledProduct(m, normed, tokens));
      t.same(Array.from(pooledProduct(m, x, tokens, norm)), want, `${format} ${rows}x${cols}, ${tokens} tokens`);
      t.same(Array.from(x), given, 'x itself unchanged');
      t.same(Array.from(pooledProduct(m, x, tokens, resident)), want, `${format} ${rows}x${cols}, ${tokens} tokens, the weight read in the pool`);
    }
    // read in place: the copy's values, not the array's
    const doubled = norm.weight.map((v) => 2 * v);
    new Float32Array(pool.memory.buffer, at, cols).set(doubled);
    const m = matrix(pool, 'f32', w, rows, cols);
    rmsNormRows(x, doubled, norm.eps, cols, normed);
    t.same(Array.from(pooledProduct(m, x, tokens, resident)), Array.from(pooledProduct(m, normed, tokens)), 'the copy in the pool is what the norm reads');
    rmsNormRows(x, norm.weight, norm.eps, cols, normed);
    const q8 = matrix(pool, 'q8', w, rows, cols);
    const gated = Array.from(pooledGatedProduct(q8, normed.subarray(0, cols)) ?? []);
    t.ok(gated.length === rows / 2, `gated ${rows}x${cols}: the job applies`);
    t.same(Array.from(pooledGatedProduct(q8, x, norm) ?? []), gated, `gated ${rows}x${cols}`);
  }
  t.throws(
    () => pooledProduct(matrix(one, 'f32', randn(32), 1, 32), randn(32), 1, { weight: randn(31), eps: 1e-5 }),
    /norm weight of 31 values for 32 columns/,
  );
});

/** Floats as their bits, for comparisons bit for bit. */
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer));

t.test(
  "the decode step's ops: NormOperand and Quantize give the operand pooledProduct writes (the norm's and quantizeX16's bits), on 1-4 threads",
  async (t) => {
    for (const [tokens, dim, stride] of [
      [1, 288, 288],
      [5, 33, 64],
      [9, 96, 96],
    ] as const) {
      const x = randn(tokens * dim).map((v, i) => (i % 7 === 0 ? v * 1e3 : v));
      const w = randn(dim);
      const eps = 1e-5;
      const normed = new Float32Array(tokens * dim);
      rmsNormRows(x, w, eps, dim, normed);
      const operand = padded(normed, tokens, dim, stride); // [tokens, stride]
      const { q, d } = quantizeX16Reference(operand);
      for (const pool of [one, ...pools]) {
        const n = tokens * stride;
        // [x | w | eps | out | xq | xd]
        const xAt = pool.alloc(4 * tokens * dim);
        const wAt = pool.alloc(4 * dim);
        const epsAt = pool.alloc(8);
        const out = pool.alloc(4 * n);
        const xq = pool.alloc(2 * n);
        const xd = pool.alloc(n / 8);
        new Float32Array(pool.memory.buffer, xAt, tokens * dim).set(x);
        new Float32Array(pool.memory.buffer, wAt, dim).set(w);
        new Float64Array(pool.memory.buffer, epsAt, 1)[0] = eps;
        new Float32Array(pool.memory.buffer, out, n).fill(7); // the padding is zeroed
        const name = `[${tokens}, ${dim}] stride ${stride}, ${pool.threads} threads`;
        pool.run(PoolOp.NormOperand, [xAt, wAt, epsAt, dim, stride, out, 0, 0], tokens, n * 4);
        t.same(bits(new Float32Array(pool.memory.buffer, out, n)), bits(operand), `${name}: float32, the norm's bits, padding zero`);
        new Float32Array(pool.memory.buffer, out, n).fill(7);
        pool.run(PoolOp.NormOperand, [xAt, wAt, epsAt, dim, stride, out, xq, xd], tokens, n * 4);
        t.same(bits(new Float32Array(pool.memory.buffer, out, n)), bits(operand), `${name}: q8, the norm's bits`);
        t.same(Array.from(new Int16Array(pool.memory.buffer, xq, n)), Array.from(q), `${name}: q8, quantizeX16's blocks`);
        t.same(bits(new Float32Array(pool.memory.buffer, xd, n / 32)), bits(d), `${name}: q8, quantizeX16's scales`);
        new Int16Array(pool.memory.buffer, xq, n).fill(0);
        new Float32Array(pool.memory.buffer, xd, n / 32).fill(0);
        pool.run(PoolOp.Quantize, [out, stride, xq, xd], tokens, n * 4);
        t.same(Array.from(new Int16Array(pool.memory.buffer, xq, n)), Array.from(q), `${name}: Quantize's blocks`);
        t.same(bits(new Float32Array(pool.memory.buffer, xd, n / 32)), bits(d), `${name}: Quantize's scales`);
      }
    }
  },
);

t.test("the decode step's ops: F32Add and Q8Add, a product that adds its rows into the residual, equal the product then the float32 add", async (t) => {
  for (const [rows, cols] of [
    [288, 288],
    [37, 48],
    [203, 256],
  ] as const) {
    const w = randn(rows * cols);
    const x = randn(cols);
    const residual = randn(rows).map((v, i) => (i % 5 === 0 ? v * 1e7 : v)); // sums that round
    for (const format of ['f32', 'q8'] as const) {
      for (const pool of [one, ...pools]) {
        const m = matrix(pool, format, w, rows, cols);
        const product = pooledProduct(m, x, 1);
        const want = residual.map((v, i) => v + product[i]!);
        const at = pool.alloc(4 * rows);
        new Float32Array(pool.memory.buffer, at, rows).set(residual);
        // the operand as pooledProduct writes it: x padded (and quantised)
        const xp = pool.alloc(4 * m.stride + 2 * m.stride + m.stride / 8);
        new Float32Array(pool.memory.buffer, xp, m.stride).set(x);
        const out = pool.alloc(4 * rows);
        const bytes = matrixBytes(format, rows, cols);
        if (format === 'f32') pool.run(PoolOp.F32Add, [m.data, xp, out, m.stride, 1, rows, at], rows, bytes);
        else {
          const xq = xp + 4 * m.stride;
          const xd = xq + 2 * m.stride;
          pool.loops.quantizeX16(xp, m.stride, xq, xd);
          pool.run(PoolOp.Q8Add, [m.data, xq, xd, out, m.stride, 1, rows, at], rows, bytes);
        }
        const name = `${format} ${rows}x${cols}, ${pool.threads} threads`;
        t.same(bits(new Float32Array(pool.memory.buffer, out, rows)), bits(pooledProduct(m, x, 1)), `${name}: the product`);
        t.same(bits(new Float32Array(pool.memory.buffer, at, rows)), bits(want), `${name}: the residual, added`);
      }
    }
  }
});

t.test(
  "the decode step's ops: QkvRope writes qkvHeadsInto's keys, values and queries for one token a record, keys and values into a cache's slot",
  async (t) => {
    const late = [new WorkerPool(2, { splitMinBytes: 0, lateMicros: [2000, 0] }), new WorkerPool(3, { splitMinBytes: 0, lateMicros: [0, 0, 3000] })];
    t.teardown(() => Promise.all(late.map((p) => p.dispose())));
    await Promise.all(late.map((p) => p.ready()));
    for (const { heads, kvHeads, headDim, rotaryDim, pairs, frames } of [
      { heads: 6, kvHeads: 6, headDim: 48, rotaryDim: 48, pairs: true, frames: 2 },
      { heads: 8, kvHeads: 2, headDim: 16, rotaryDim: 8, pairs: false, frames: 1 },
      { heads: 4, kvHeads: 2, headDim: 10, rotaryDim: 6, pairs: true, frames: 3 },
    ]) {
      const width = (heads + 2 * kvHeads) * headDim;
      const tokens = 3;
      const capacity = 7;
      const spec = { theta: 10000, layout: pairs ? ('pairs' as const) : ('halves' as const), rotaryDim, scale: 1 };
      const qkv = randn(tokens * width); // each token's row
      const keyPositions = [5, 300, 1e6 + 3];
      const framePositions = Array.from({ length: frames }, (_, f) => keyPositions.map((p) => p - 2 * f));
      const slots = [0, 3, 6];
      for (const pool of [one, ...pools, ...late]) {
        const half = rotaryDim / 2;
        const recordBytes = qkvRopeRecordBytes(frames);
        const records = pool.alloc(tokens * recordBytes);
        const qkvAt = pool.alloc(4 * tokens * width);
        new Float32Array(pool.memory.buffer, qkvAt, tokens * width).set(qkv);
        const keysAt = pool.alloc(4 * kvHeads * capacity * headDim); // [kvHeads, capacity, headDim], a cache's runs
        const valuesAt = pool.alloc(4 * kvHeads * capacity * headDim);
        const queriesAt = pool.alloc(4 * tokens * frames * heads * headDim); // per token, per frame [heads, headDim]
        const anglesAt = pool.alloc(4 * tokens * (1 + frames) * rotaryDim); // per token: the keys' cos|sin, each frame's
        const floats = new Float32Array(pool.memory.buffer);
        for (let i = 0; i < tokens; i++) {
          const angles = [keyPositions[i]!, ...framePositions.map((p) => p[i]!)].map((p) => ropeAngleArrays([p], spec));
          const base = anglesAt + 4 * i * (1 + frames) * rotaryDim;
          const at = (k: number) => ({ cos: base + 4 * k * rotaryDim, sin: base + 4 * (k * rotaryDim + half) });
          angles.forEach((a, k) => {
            floats.set(a.cos, at(k).cos / 4);
            floats.set(a.sin, at(k).sin / 4);
          });
          const rowBytes = 4 * headDim;
          writeQkvRopeRecord(
            pool,
            records + i * recordBytes,
            { heads, kvHeads, headDim },
            { pairs, rotaryDim },
            {
              qkv: qkvAt + 4 * i * width,
              keyAngles: at(0),
              keys: 0,
              values: 0,
              kvStride: 0,
              frames: Array.from({ length: frames }, (_, f) => ({ ...at(1 + f), queries: queriesAt + 4 * (i * frames + f) * heads * headDim })),
            },
          );
          // the slot, patched as a program's token would
          setQkvRopeSlot(pool.views().ints, records + i * recordBytes, keysAt + slots[i]! * rowBytes, valuesAt + slots[i]! * rowBytes, capacity * rowBytes);
        }
        qkvRopeInPool(pool, records, recordBytes, tokens);
        const stored = {
          keys: new Float32Array(pool.memory.buffer, keysAt, kvHeads * capacity * headDim).slice(),
          values: new Float32Array(pool.memory.buffer, valuesAt, kvHeads * capacity * headDim).slice(),
        };
        const name = `${heads} heads over ${kvHeads}, headDim ${headDim}, rotaryDim ${rotaryDim} ${spec.layout}, ${frames} frames, ${pool.threads} threads`;
        let untouched = true;
        for (let i = 0; i < tokens; i++) {
          const keyAngles = ropeAngleArrays([keyPositions[i]!], spec);
          const frameAngles = framePositions.flatMap((p) => {
            const a = ropeAngleArrays([p[i]!], spec);
            return [a.cos, a.sin];
          });
          const keys = new Float32Array(kvHeads * headDim);
          const values = new Float32Array(kvHeads * headDim);
          const queries = Array.from({ length: frames }, () => new Float32Array(heads * headDim));
          qkvHeadsInto(qkv, i, 1, { heads, kvHeads, headDim }, { pairs, rotaryDim }, keyAngles.cos, keyAngles.sin, frameAngles, keys, values, queries);
          const slot = (a: Float32Array, g: number) => a.subarray((g * capacity + slots[i]!) * headDim, (g * capacity + slots[i]! + 1) * headDim);
          for (let g = 0; g < kvHeads; g++) {
            t.same(
              bits(slot(stored.keys, g)),
              bits(keys.subarray(g * headDim, (g + 1) * headDim)),
              `${name}: token ${i}, kv head ${g}: the rotated key in its slot`,
            );
            t.same(
              bits(slot(stored.values, g)),
              bits(values.subarray(g * headDim, (g + 1) * headDim)),
              `${name}: token ${i}, kv head ${g}: the value in its slot`,
            );
          }
          queries.forEach((q, f) => {
            const got = new Float32Array(pool.memory.buffer, queriesAt + 4 * (i * frames + f) * heads * headDim, heads * headDim);
            t.same(bits(got), bits(q), `${name}: token ${i}, frame ${f}: the rotated queries`);
          });
        }
        // no slot but the tokens' written
        for (let g = 0; g < kvHeads; g++) {
          for (let s = 0; s < capacity; s++) {
            if (slots.includes(s)) continue;
            const run = stored.keys.subarray((g * capacity + s) * headDim, (g * capacity + s + 1) * headDim);
            if (run.some((v) => v !== 0)) untouched = false;
          }
        }
        t.ok(untouched, `${name}: the other slots untouched`);
      }
    }
  },
);

t.test(
  "loops.wat patchDecodeLayers: the records' setters' words (decode_patch.ref.ts), word for word, nothing else written; addresses past 2^31 wrapped alike",
  async (t) => {
    // three layers: the first two share a view of two frames, the third has its own of three; a cache's runs past 2^31 (stored wrapped)
    const heads = 6;
    const group = 3;
    const rowBytes = 4 * 12;
    const layers = 3;
    const maxFrames = 3;
    const ropeBytes = qkvRopeRecordBytes(maxFrames);
    const attendBytes = heads * (12 * maxFrames + 8);
    const recordsBytes = layers * (ropeBytes + attendBytes);
    const pool = one;
    const records = pool.alloc(recordsBytes);
    const table = pool.alloc(4 * (ROW_WORDS * layers + 2 * FRAMES_BLOCK_WORDS));
    const blocks = [table + 4 * ROW_WORDS * layers, table + 4 * (ROW_WORDS * layers + FRAMES_BLOCK_WORDS)];
    const ints = pool.views().ints;
    const word = () => Math.floor(rng() * 2 ** 32) | 0;
    const fillBlock = (at: number, F: number) => {
      const b = at / 4;
      ints[b + BLOCK.frames] = F;
      ints[b + BLOCK.keysCos] = word();
      ints[b + BLOCK.keysSin] = word();
      for (let f = 0; f < F; f++) {
        const w = b + 3 + FRAME_WORDS * f;
        ints[w + FRAME.cos] = word();
        ints[w + FRAME.sin] = word();
        ints[w + FRAME.queries] = word();
        ints[w + FRAME.lo] = Math.floor(rng() * 50);
        ints[w + FRAME.hi] = ints[w + FRAME.lo]! + Math.floor(rng() * 50);
      }
    };
    fillBlock(blocks[0]!, 2);
    fillBlock(blocks[1]!, 3);
    for (let l = 0; l < layers; l++) {
      const row = table / 4 + ROW_WORDS * l;
      ints[row + ROW.rope] = records + l * (ropeBytes + attendBytes);
      ints[row + ROW.attend] = records + l * (ropeBytes + attendBytes) + ropeBytes;
      ints[row + ROW.keys] = (2 ** 31 + 4096 * l + 64) | 0; // (past 2^31: negative as an int32)
      ints[row + ROW.values] = (2 ** 32 - 65536 + 1024 * l) | 0;
      ints[row + ROW.kvBytes] = 64 * rowBytes;
      ints[row + ROW.slot] = 5 + 20 * l;
      ints[row + ROW.frames] = blocks[l === 2 ? 1 : 0]!;
    }
    // the records' words random: what the patch does not write stays
    const region = new Int32Array(pool.memory.buffer, records, recordsBytes / 4);
    region.set(Int32Array.from({ length: region.length }, word));
    const before = region.slice();
    pool.shared.patchDecodeLayers(table, layers, heads, group, rowBytes);
    const patched = region.slice();
    region.set(before);
    patchDecodeLayersRef(pool.views().ints, table, layers, { heads, group, rowBytes });
    t.same(patched, region.slice(), "every word of the three layers' records as the setters write them");
    t.not(patched.filter((w, i) => w !== before[i]).length, 0, 'the patch wrote words');
    t.ok(
      patched.some((w, i) => w !== before[i] && w < 0),
      'some written addresses are past 2^31 (negative as int32), the same bits both ways',
    );
  },
);

t.test(
  'loops.wat pickOfClaims: the records followed as the reference follows them (products.ref.ts); -1 for a non-finite claim, -2 for a record that is no claim',
  async (t) => {
    const pool = one;
    const rows = 200;
    const group = 4;
    const x = pool.alloc(4 * rows);
    const records = pool.alloc(8 * (rows / group));
    const { floats, ints } = pool.views();
    const values = floats.subarray(x / 4, x / 4 + rows);
    // claims of random lengths (whole groups); ties between claims: the first wins
    const claims = (): [number, number][] => {
      const out: [number, number][] = [];
      for (let row = 0; row < rows;) {
        const end = Math.min(rows, row + group * (1 + Math.floor(rng() * 6)));
        out.push([row, end]);
        row = end;
      }
      return out;
    };
    const write = (cs: [number, number][]) => {
      for (const [row, end] of cs) {
        const claim = values.subarray(row, end);
        const at = row + claim.indexOf(Math.max(...claim));
        ints[(records + 8 * (row / group)) / 4] = end;
        ints[(records + 8 * (row / group)) / 4 + 1] = at;
      }
    };
    const both = () => [pool.shared.pickOfClaims(x, rows, records, group), pickOfClaimsReference(floats, ints, x, rows, records, group)];
    for (let trial = 0; trial < 20; trial++) {
      values.set(Float32Array.from({ length: rows }, () => Math.round(8 * rng()) / 8)); // (many ties)
      const cs = claims();
      write(cs);
      const [got, want] = both();
      t.equal(got, want, `trial ${trial}: ${cs.length} claims`);
      t.equal(want, values.indexOf(Math.max(...values)), `trial ${trial}: the reference's pick is the first largest`);
    }
    const cs = claims();
    write(cs);
    const second = (records + 8 * (cs[1]![0] / group)) / 4;
    ints[second + 1] = -1;
    t.same(both(), [-1, -1], 'a claim that found a NaN or an infinity: -1');
    write(cs);
    ints[second] = cs[1]![0]; // an end not past its row
    t.same(both(), [-2, -2], 'a record whose end is its row: -2');
    write(cs);
    ints[second] = cs[1]![0] + 1; // the next claim off a group's start
    t.same(both(), [-2, -2], 'a record naming a row inside a group: -2');
    write(cs);
    ints[second + 1] = cs[1]![1]; // a pick outside its rows
    t.same(both(), [-2, -2], 'a pick outside its claim: -2');
  },
);

t.test('pooledLinear: a tensor in, a tensor out, bias added, nothing leaked', async (t) => {
  const [rows, cols, tokens] = [40, 64, 3];
  const w = randn(rows * cols);
  const m = matrix(pools[0]!, 'f32', w, rows, cols);
  const before = tf.memory().numTensors;
  const x = tf.tensor2d(randn(tokens * cols), [tokens, cols]);
  const bias = tf.tensor1d(randn(rows));
  const y = pooledLinear(x, m, bias);
  t.same(y.shape, [tokens, rows]);
  const want = productReference(w, x.dataSync(), rows, cols, tokens);
  const b = bias.dataSync();
  const got = y.dataSync();
  t.ok(Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]! - b[i % rows]!))) < 1e-4, 'x @ W^T + b');
  tf.dispose([x, bias, y]);
  t.equal(tf.memory().numTensors, before, 'no tensors left behind');
  t.throws(() => pooledLinear(tf.zeros<tf.Rank.R2>([1, 32]), m), /64/, 'a wrong input width is refused');
});

t.test('allocation: sizes, alignment, and the 4 GiB limit', async (t) => {
  // rows padded to whole groups: q8 of four (10 -> 12), f32 of sixteen (10 -> 16)
  t.equal(matrixBytes('q8', 10, 64), 12 * 64 + 4 * 24);
  t.equal(matrixBytes('f32', 10, 64), 4 * 16 * 64);
  const pool = new WorkerPool(1);
  t.equal(pool.alloc(3) % 16, 0);
  t.equal(pool.alloc(5) % 16, 0);
  t.throws(() => pool.alloc(5 * 2 ** 30), /4 GiB/);
  t.throws(() => allocMatrix(pool, 'q8', 4, 0), /bad shape/);
  t.equal(matrixBytes('f32', 2, 40), 4 * 16 * 64, 'columns padded to whole blocks, rows to a group');
  t.throws(() => new WorkerPool(0), /positive integer/);
  await pool.dispose();
  t.throws(() => pooledProduct(allocMatrix(one, 'f32', 4, 32), new Float32Array(16), 1), /16 values/);
});

t.test(
  "2 MB pages: the pool's memory asks for them (VmFlags hg) and grows in whole 2 MB blocks; unasked, in 64 KB wasm pages",
  // (npm install builds the addon, native/huge_pages.c, where it can: CI fails where it did not, .ci/run)
  { skip: hugePagesUnavailable() ?? false },
  async (t) => {
    const pool = new WorkerPool(1);
    const advice = pool.pageAdvice;
    t.ok(advice.hugePages, advice.hugePages ? 'advised' : `not advised: ${advice.why}`);
    if (advice.hugePages) {
      t.match(vmFlagsAt(advice.address), /\bhg\b/, 'the mapping under the memory carries MADV_HUGEPAGE');
      t.equal(advice.address % 65536, 0, 'the memory starts on a wasm page');
      for (const bytes of [3, 3 * 2 ** 20, 5 * 2 ** 20 + 7]) {
        pool.alloc(bytes);
        const end = advice.address + pool.bytes().length;
        t.equal(end % HUGE_PAGE_BYTES, 0, `after alloc(${bytes}): mapped to the end of a 2 MB block`);
        t.ok(end - HUGE_PAGE_BYTES < advice.address + pool.allocatedBytes, 'and no further than the block that holds the last byte');
      }
    }
    await pool.dispose();

    const unasked = new WorkerPool(1, { hugePages: false });
    t.same(unasked.pageAdvice, { hugePages: false, why: 'not asked (hugePages: false)' });
    unasked.alloc(3 * 2 ** 20);
    t.equal(unasked.bytes().length, Math.ceil(unasked.allocatedBytes / 65536) * 65536, 'grown in 64 KB wasm pages, no further');
    await unasked.dispose();
  },
);

t.test('2 MB pages: an addon not built or not loadable says why, and nothing is advised', async (t) => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
  const dir = mkdtempSync(join(tmpdir(), 'streamllm-pages-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'huge_pages.node');
  const garbled = join(dir, 'garbled.node');
  writeFileSync(garbled, 'not a shared object');
  const mode = transparentHugePageMode();
  if (mode === undefined || mode === 'never') {
    t.match(adviseHugePages(memory.buffer, 4 * 65536, missing), { hugePages: false, why: /transparent huge pages/ });
    return;
  }
  t.same(adviseHugePages(memory.buffer, 4 * 65536, missing), {
    hugePages: false,
    why: `${missing} was not built (npm install builds native/huge_pages.c with node-gyp)`,
  });
  t.match(adviseHugePages(memory.buffer, 4 * 65536, garbled), { hugePages: false, why: new RegExp(`^${garbled} did not load: `) });
  const stale = join(dir, 'stale.cjs'); // loads, but is not this version's addon
  writeFileSync(stale, 'module.exports = { advise: () => 0 };');
  t.same(adviseHugePages(memory.buffer, 4 * 65536, stale), { hugePages: false, why: `${stale} has no advise and address functions` });
  // (an empty buffer has no first byte to advise from: said, not thrown)
  t.same(adviseHugePages(new ArrayBuffer(0), 65536), { hugePages: false, why: 'the memory is empty: no first byte to advise from' });
  // growth rounds to absolute 2 MB blocks, at most the maximum; unadvised, exactly the bytes asked
  const at = { hugePages: true as const, address: 5 * HUGE_PAGE_BYTES + 65536, bytes: 2 ** 32 };
  t.equal(hugePageEnd(at, 1, 2 ** 32), HUGE_PAGE_BYTES - 65536);
  t.equal(hugePageEnd(at, HUGE_PAGE_BYTES - 65536, 2 ** 32), HUGE_PAGE_BYTES - 65536);
  t.equal(hugePageEnd(at, HUGE_PAGE_BYTES - 65535, 2 ** 32), 2 * HUGE_PAGE_BYTES - 65536);
  t.equal(hugePageEnd(at, 3 * 65536, 2 * 65536), 2 * 65536, 'never past the maximum');
  t.equal(hugePageEnd({ hugePages: false, why: '' }, 12345, 2 ** 32), 12345);
});

/** What a child node process needs to run this file's siblings: tap's loader where this runs from TypeScript source (test/), nothing from dist/test/. */
const loaderArgs = () => (extname(process.argv[1]!) === '.ts' ? process.execArgv : []);

t.test('2 MB pages: what is advised is the memory reservation as /proc/self/maps shows it, never past it', async (t) => {
  const maps = (lines: [number, number, string, string?][]) =>
    lines
      .map(([from, to, perms, path]) => `${from.toString(16)}-${to.toString(16)} ${perms} 00000000 00:00 ${path === undefined ? '0 ' : `0 ${path}`}`)
      .join('\n');
  const M = 2 ** 20;
  const at = 0x7f0000000000;
  // V8 with guard regions: the accessible part, then no-access pages well past 4 GiB
  const guarded = maps([
    [at - 2048 * M, at, '---p'],
    [at, at + 16 * M, 'rw-p'],
    [at + 16 * M, at + 8192 * M, '---p'],
    [at + 8192 * M, at + 8194 * M, 'rw-p'],
  ]);
  t.equal(reservedFrom(guarded, at, 4096 * M), 4096 * M, 'guard regions: the most asked for');
  // bounds checks instead: exactly the maximum, then a gap or another mapping
  const exact = maps([
    [at, at + M / 16, 'rw-p'],
    [at + M / 16, at + 100 * (M / 16), '---p'],
    [at + 100 * (M / 16) + 4096, at + 101 * (M / 16), '---p', ''],
    [at + 101 * (M / 16), at + 200 * (M / 16), 'rw-p'],
  ]);
  t.equal(reservedFrom(exact, at, 4096 * M), 100 * (M / 16), 'the maximum of 100 wasm pages: to the gap, not across it');
  const stack = maps([
    [at, at + M, 'rw-p'],
    [at + M, at + 2 * M, '---p'],
    [at + 2 * M, at + 3 * M, 'rw-p', '[stack:1]'],
  ]);
  t.equal(reservedFrom(stack, at, 4096 * M), 2 * M, 'an accessible neighbour directly after: not taken');
  const file = maps([
    [at, at + M, 'rw-p'],
    [at + M, at + 2 * M, '---p', '/lib/x.so'],
  ]);
  t.equal(reservedFrom(file, at + 4096, 4096 * M), M - 4096, "a file's mapping directly after: not taken; from an address inside the first mapping");
  t.equal(reservedFrom(guarded, at - 2048 * M - 1, 4096 * M), undefined, 'an address no mapping holds');
  if (hugePagesUnavailable() !== undefined) return;
  // for real: with bounds checks instead of the trap handler's guard regions, V8 reserves a memory's maximum alone;
  // a madvise over 4 GiB from its first byte failed (ENOMEM) after advising the mappings beyond (a thread's stack)
  const module = pathToFileURL(join(dirname(process.argv[1]!), '..', 'kernels', `huge_pages${extname(process.argv[1]!)}`)).href;
  const script = `
    import { readFileSync } from 'node:fs';
    import { adviseHugePages } from ${JSON.stringify(module)};
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 100 });
    const advice = adviseHugePages(memory.buffer, 2 ** 32);
    // the VmFlags of each mapping from the memory's start to 4 GiB past it
    const flags = readFileSync('/proc/self/smaps', 'utf8').split(/\\n(?=[0-9a-f]+-[0-9a-f]+ )/).map((block) => {
      const [from, to] = block.split(' ')[0].split('-').map((hex) => parseInt(hex, 16));
      return { from, to, hg: /^VmFlags:.*\\bhg\\b/m.test(block) };
    }).filter((m) => advice.hugePages && m.to > advice.address && m.from < advice.address + 2 ** 32);
    process.stdout.write(JSON.stringify({ advice, flags }));`;
  const r = spawnSync(process.execPath, [...loaderArgs(), '--disable-wasm-trap-handler', '--input-type=module', '-e', script], { encoding: 'utf8' });
  t.equal(r.status, 0, `the child ran (${r.stderr.trim().split('\n')[0] ?? ''})`);
  const { advice, flags } = JSON.parse(r.stdout || '{}') as { advice?: PageAdvice; flags?: { from: number; to: number; hg: boolean }[] };
  t.match(advice, { hugePages: true, bytes: 100 * 65536 }, "advised: the memory's 100 wasm pages, all it reserved");
  if (advice?.hugePages !== true || flags === undefined) return;
  const end = advice.address + advice.bytes;
  t.ok(
    flags.filter((m) => m.to <= end).every((m) => m.hg),
    'every mapping of the reservation carries MADV_HUGEPAGE',
  );
  t.same(
    flags.filter((m) => m.from >= end && m.hg),
    [],
    'no mapping past it does',
  );
});

t.test('without the addon (a machine without a C compiler): the 2 MB-page tests skip, naming it, and the fallback says why', async (t) => {
  // this file's and simd.test's "2 MB pages: " tests, each file in a process whose addon path is a missing file
  const missing = join(tmpdir(), 'streamllm-no-addon', 'huge_pages.node');
  const why = hugePagesUnavailable(missing)!;
  const mode = transparentHugePageMode();
  if (mode === 'madvise' || mode === 'always')
    t.equal(why, `${missing} was not built (npm install builds native/huge_pages.c with node-gyp)`, 'the reason names the addon');
  const [self, dir] = [process.argv[1]!, dirname(process.argv[1]!)];
  for (const file of [self, join(dir, `simd.test${extname(self)}`)]) {
    const env = { ...process.env, STREAMLLM_HUGE_PAGES_ADDON: missing, TAP_GREP: '^2 MB pages: ' };
    const r = spawnSync(process.execPath, [...loaderArgs(), file], { env, encoding: 'utf8' });
    const name = basename(file);
    t.equal(r.status, 0, `${name}: passes (${r.stderr.trim().split('\n')[0] ?? ''})`);
    t.notMatch(r.stdout, /^\s*not ok/m, `${name}: no failure`);
    const skipped = r.stdout.split('\n').filter((line) => /^ok \d+ - 2 MB pages: .* # SKIP /.test(line));
    t.same(
      skipped.map((line) => line.slice(line.indexOf(' # SKIP ') + 8)),
      [why],
      `${name}: its 2 MB-page test skips, saying why`,
    );
    if (file === self) t.match(r.stdout, /^ok \d+ - 2 MB pages: an addon not built or not loadable says why/m, `${name}: the fallback's own test runs`);
  }
});

t.test('split products stay right across the spin bound: workers spinning, asleep, and waking', async (t) => {
  const [rows, cols] = [64, 96];
  const w = randn(rows * cols);
  const x = randn(cols);
  const want = Array.from(pooledProduct(matrix(one, 'q8', w, rows, cols), x, 1));
  const pool = new WorkerPool(2, { splitMinBytes: 0, spinMicros: 100 });
  await pool.ready();
  const m = matrix(pool, 'q8', w, rows, cols);
  // pauses below and above the bound: a worker is caught spinning, then asleep
  for (const pauseMs of [0, 0, 1, 0, 5, 0, 0, 20, 0, 1]) {
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    t.same(Array.from(pooledProduct(m, x, 1)), want, `after a pause of ${pauseMs} ms`);
  }
  await pool.dispose();
  t.throws(() => new WorkerPool(2, { spinMicros: -1 }), /spinMicros/);
  t.throws(() => new WorkerPool(2, { spinMicros: NaN }), /spinMicros/);
});

t.test('work stealing: any chunking, and a late thread, give the same bits as one thread', async (t) => {
  // unitBytes 1: every group of rows its own chunk; lateMicros: a thread
  // that waits after each job is posted, as one preempted or woken late
  // would (the caller late: the workers claim every chunk)
  const stealing = [
    new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1 }),
    new WorkerPool(3, { splitMinBytes: 0, unitBytes: 1 }),
    new WorkerPool(2, { splitMinBytes: 0, unitBytes: 256, lateMicros: [0, 2000] }),
    new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [2000, 0] }),
    new WorkerPool(3, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 0, 3000], spinMicros: 0 }),
  ];
  t.teardown(() => Promise.all(stealing.map((p) => p.dispose())));
  await Promise.all(stealing.map((p) => p.ready()));
  const name = (p: WorkerPool) => `${p.threads} threads, unitBytes ${p.unitBytes}`;
  for (const [rows, cols, tokens] of [...SHAPES, [300, 64, 1], [300, 64, 4]] as const) {
    const w = randn(rows * cols);
    const x = randn(tokens * cols);
    for (const format of ['f32', 'q8'] as const) {
      const want = Array.from(pooledProduct(matrix(one, format, w, rows, cols), x, tokens));
      for (const pool of stealing) {
        t.same(Array.from(pooledProduct(matrix(pool, format, w, rows, cols), x, tokens)), want, `${format} ${rows}x${cols}, ${tokens} tokens, ${name(pool)}`);
      }
    }
  }
  // a job of another loop (SwiGLU), cut in a block's chunks
  const [rows, hidden] = [37, 64];
  const gateUp = randn(rows * 2 * hidden).map((v) => 8 * v);
  const on = (pool: WorkerPool) => {
    const at = pool.alloc(4 * gateUp.length); // before the buffer is read: alloc may grow the memory
    const view = new Float32Array(pool.memory.buffer, at, gateUp.length);
    view.set(gateUp);
    return Array.from(pooledSwiglu(pool, view, rows, hidden) ?? []);
  };
  const want = on(one);
  t.equal(want.length, rows * hidden, 'SwiGLU on one thread');
  for (const pool of stealing) t.same(on(pool), want, `SwiGLU, ${name(pool)}`);
  // the gated job (a q8 gate|up product of one token and its SwiGLU in one job): the product, then the SwiGLU job, bit for bit
  for (const [hidden, cols] of [
    [4, 32],
    [20, 40],
    [96, 64],
    [324, 96],
  ] as const) {
    const w = randn(2 * hidden * cols).map((v) => 3 * v);
    const x = randn(cols);
    const m = matrix(one, 'q8', w, 2 * hidden, cols);
    const want = Array.from(pooledSwiglu(one, pooledProduct(m, x, 1), 1, hidden)!);
    t.same(Array.from(pooledGatedProduct(m, x)!), want, `gated ${hidden}x${cols}, one thread`);
    for (const pool of [...stealing, ...pools]) {
      const got = pooledGatedProduct(matrix(pool, 'q8', w, 2 * hidden, cols), x);
      t.same(Array.from(got!), want, `gated ${hidden}x${cols}, ${name(pool)}`);
    }
  }
  // the picking product (a classifier's job that also picks greedy decoding's
  // token): the product's bits, and the first largest of them (-1 with a NaN
  // or an infinity), however the claims fell; rows repeating every 13, so the
  // largest value recurs in other claims (ties: the first wins)
  const firstLargest = (v: Float32Array) => (v.some((x) => !Number.isFinite(x)) ? -1 : v.reduce((best, x, i) => (x > v[best]! ? i : best), 0));
  for (const [rows, cols] of [
    [1, 32],
    [37, 96],
    [300, 64],
    [1000, 32],
  ] as const) {
    const w = randn(rows * cols);
    for (let r = 13; r < rows; r++) w.copyWithin(r * cols, (r % 13) * cols, (r % 13) * cols + cols);
    const x = randn(cols);
    for (const format of ['f32', 'q8'] as const) {
      const want = pooledProduct(matrix(one, format, w, rows, cols), x, 1);
      const pick = firstLargest(want);
      t.ok(rows < 14 || pick < 13, `${format} ${rows} rows: the largest recurs, the first is picked`);
      for (const pool of [one, ...stealing, ...pools]) {
        const got = pooledPickingProduct(matrix(pool, format, w, rows, cols), x);
        t.same(Array.from(got), Array.from(want), `picking ${format} ${rows}x${cols}, ${name(pool)}: the product`);
        t.equal(pickedArgmax(pool, got), pick, `picking ${format} ${rows}x${cols}, ${name(pool)}: the pick`);
      }
    }
    // a row of NaN, one of infinities: -1, wherever it lies
    for (const [bad, row] of [
      [NaN, rows - 1],
      [Infinity, rows >> 1],
    ] as const) {
      const nonFinite = Float32Array.from(w);
      nonFinite.fill(bad, row * cols, (row + 1) * cols);
      for (const pool of [one, ...stealing]) {
        const got = pooledPickingProduct(matrix(pool, 'f32', nonFinite, rows, cols), x);
        t.equal(pickedArgmax(pool, got), -1, `picking f32 ${rows}x${cols}, ${bad} in row ${row}, ${name(pool)}`);
      }
    }
  }
  // the pick is that result's only while it is there, and no other values'
  const m = matrix(pools[0]!, 'q8', randn(40 * 32), 40, 32);
  const picked = pooledPickingProduct(m, randn(32));
  t.equal(pickedArgmax(pools[0]!, picked.subarray(1)), undefined, 'other values: none');
  pooledProduct(m, randn(32), 1);
  t.equal(pickedArgmax(pools[0]!, picked), undefined, 'after another product: none');
  // not a gated job: float32, or hidden not a whole number of row groups
  t.equal(pooledGatedProduct(matrix(one, 'f32', randn(2 * 16 * 32), 32, 32), randn(32)), undefined, 'f32: undefined');
  t.equal(pooledGatedProduct(matrix(one, 'q8', randn(2 * 18 * 32), 36, 32), randn(32)), undefined, 'q8, hidden 18: undefined');
});

t.test('pool regions: reused smallest-first, split, merged with free neighbours, zeroed; growing and freeing does not grow the memory', async (t) => {
  const pool = new WorkerPool(1);
  const regions = new PoolRegions(pool);
  const a = regions.alloc(100); // 112 bytes
  const b = regions.alloc(64);
  const c = regions.alloc(32);
  t.equal(a % 16, 0);
  t.equal(b, a + 112, 'fresh regions one after another, 16-byte aligned');
  t.equal(regions.heldBytes, 112 + 64 + 32);
  new Uint8Array(pool.memory.buffer).fill(7, b, b + 64);
  regions.release(b);
  t.equal(regions.alloc(48), b, 'a freed region is reused');
  t.equal(regions.freeBytes, 16, 'its tail stays free');
  t.same(Array.from(new Uint8Array(pool.memory.buffer, b, 48)), new Array(48).fill(0), 'and zeroed');
  regions.release(b);
  regions.release(a);
  t.equal(regions.freeBytes, 112 + 64, 'neighbours merged');
  regions.release(c);
  t.equal(regions.freeBytes, 112 + 64 + 32, 'and merged again');
  t.equal(regions.alloc(200), a, 'one region from the three');
  t.throws(() => regions.release(a + 16), /no region/, 'only what alloc returned');
  // a cache that doubles, then is disposed, many times over: the memory stops growing
  const top = () => pool.allocatedBytes;
  const cycle = () => {
    let held = regions.alloc(1024);
    for (let size = 2048; size <= 64 * 1024; size *= 2) {
      const grown = regions.alloc(size);
      regions.release(held);
      held = grown;
    }
    regions.release(held);
  };
  cycle();
  const after = top();
  for (let i = 0; i < 20; i++) cycle();
  t.equal(top(), after, 'twenty more caches grew and went in the same memory');
  const floats = regions.allocFloats(10);
  t.equal(floats.length, 10);
  t.equal(floats.buffer.byteLength >= floats.byteOffset + 40, true, 'an array over the memory, after it grew');
  regions.releaseFloats(floats);
  t.ok(regions.room >= 2 ** 31, 'room: what the 4 GiB still hold');
  t.equal(regions.roomLeaving(2 ** 20), regions.room - 2 ** 20, 'room leaving a spare: less of the fresh memory');
  await pool.dispose();
  const other = new WorkerPool(1);
  const few = new PoolRegions(other);
  const freed = few.alloc(96);
  few.alloc(16);
  few.release(freed);
  t.equal(few.roomLeaving(POOL_MAX_BYTES), 96, 'no fresh memory to give: the largest free region');
  await other.dispose();
});

t.test('attention in the pool at T = 1, split over heads on 1, 2, 3 threads and with late threads, equals attendDirect bit for bit', async (t) => {
  const late = [
    new WorkerPool(2, { splitMinBytes: 0, lateMicros: [0, 2000] }),
    new WorkerPool(2, { splitMinBytes: 0, lateMicros: [2000, 0] }),
    new WorkerPool(3, { splitMinBytes: 0, lateMicros: [0, 0, 3000] }),
  ];
  t.teardown(() => Promise.all(late.map((p) => p.dispose())));
  await Promise.all(late.map((p) => p.ready()));
  const before = tf.memory().numTensors;
  // (heads, kvHeads, headDim, capacity, frames as [lo, hi] each): grouped heads, two frames (sinks), a row of one entry
  const cases = [
    { heads: 6, kvHeads: 6, headDim: 48, capacity: 264, ranges: [[0, 264]] },
    {
      heads: 8,
      kvHeads: 2,
      headDim: 16,
      capacity: 40,
      ranges: [
        [3, 40],
        [0, 3],
      ],
    },
    { heads: 3, kvHeads: 1, headDim: 4, capacity: 5, ranges: [[4, 5]] },
  ];
  for (const { heads, kvHeads, headDim, capacity, ranges } of cases) {
    for (const variant of ['softmax', 'softmax1', 'learned-sink'] as const) {
      const queries = ranges.map(() => randn(heads * headDim)); // per frame [heads, 1, headDim]
      const rowRanges = ranges.map((r) => Int32Array.from(r));
      const keys = randn(kvHeads * capacity * headDim).map((v) => 3 * v); // [kvHeads, capacity, headDim]
      const values = randn(kvHeads * capacity * headDim);
      const sinkValues = randn(heads);
      const shape: [number, number, number] = [kvHeads, capacity, headDim];
      const sinkLogits = variant === 'learned-sink' ? tf.tensor1d(sinkValues) : undefined;
      const want = new Float32Array(heads * headDim);
      const [k, v] = [tf.tensor3d(keys, shape), tf.tensor3d(values, shape)];
      attendDirect(queries, rowRanges, k, v, { variant, sinkLogits }, want);
      tf.dispose([k, v, sinkLogits]);
      for (const pool of [one, ...pools.slice(0, 2), ...late]) {
        const regions = poolRegions(pool);
        const [keysIn, valuesIn] = [regions.allocFloats(keys.length), regions.allocFloats(values.length)];
        keysIn.set(keys);
        valuesIn.set(values);
        const at = { keysAt: keysIn.byteOffset, valuesAt: valuesIn.byteOffset, kvHeads, capacity, headDim };
        const got = new Float32Array(heads * headDim);
        const sinks = variant === 'learned-sink' ? sinkValues : undefined;
        t.ok(attendInPool(pool, queries, rowRanges, at, variant, sinks, got), 'room in the pool');
        const name = `${heads} heads over ${kvHeads}, headDim ${headDim}, ${ranges.length} frames, ${variant}, ${pool.threads} threads, late ${pool === late[0] ? 'worker' : pool === late[1] ? 'caller' : pool === late[2] ? 'third' : 'none'}`;
        // (on cpu attendDirect is the JavaScript loop, in float64: within rounding)
        if (backend === 'wasm') t.same(Array.from(got), Array.from(want), name);
        else t.ok(maxAbsDiff(got, want) < 1e-5, name);
        regions.releaseFloats(keysIn);
        regions.releaseFloats(valuesIn);
      }
    }
  }
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});

/**
 * The busy-cores tests' pool and product. The default pool watches the CPU
 * time the process gets while it splits (kernels/pool_busy.ts); a
 * worker that sleeps 3 ms after every job is posted adds almost none, as one
 * on a busy core would. A q8 [256, 256] product (72 KB: split, but under the
 * 1 MiB that still splits while calm), its matrix in the pool, its x, and
 * its one-thread result.
 */
async function busyPool(t: Test) {
  const [rows, cols] = [256, 256];
  const w = randn(rows * cols);
  const x = randn(cols);
  const want = Array.from(pooledProduct(matrix(one, 'q8', w, rows, cols), x, 1));
  const pool = new WorkerPool(2, { lateMicros: [0, 3000] });
  t.teardown(() => pool.dispose());
  await pool.ready();
  return { pool, m: matrix(pool, 'q8', w, rows, cols), x, want, rows, cols };
}

t.test('busy cores: a worker that gets no CPU time makes the workers stop spinning, and products stay right', async (t) => {
  const { pool, m, x, want } = await busyPool(t);
  let right = true;
  // (bounded by calls, not time: the watch needs 25 ms of split jobs)
  for (let i = 0; i < 200_000 && pool.calmPeriods === 0; i++) right &&= Array.from(pooledProduct(m, x, 1)).every((v, j) => v === want[j]);
  t.ok(right, 'every product as on one thread');
  t.ok(pool.calmPeriods > 0, 'the workers were told to stop spinning');
  // while calm, this product runs on the caller alone; still the same bits
  t.same(Array.from(pooledProduct(m, x, 1)), want, 'calm: the same bits');
});

t.test('busy cores: programs feed the watch too, then run on the caller alone, right', async (t) => {
  const { pool, m, x, want, rows, cols } = await busyPool(t);
  const out = pool.alloc(4 * rows);
  const xq = pool.alloc(2 * cols);
  const xd = pool.alloc(cols / 8);
  const xAt = pool.alloc(4 * cols);
  floatsOf(pool).set(x, xAt / 4);
  pool.loops.quantizeX16(xAt, cols, xq, xd);
  const step = { op: PoolOp.Q8, args: [m.data, xq, xd, out, cols, 1, rows], rows, weightBytes: matrixBytes('q8', rows, cols) } as const;
  let seen: number[] = [];
  const program = new PoolProgram(pool, [step, { caller: () => (seen = Array.from(floatsOf(pool).subarray(out / 4, out / 4 + rows))) }]);
  t.ok(program.unitsOf(0) >= 2, 'a split step');
  let right = true;
  for (let i = 0; i < 200_000 && pool.calmPeriods === 0; i++) {
    program.run();
    right &&= seen.every((v, j) => v === want[j]);
  }
  t.ok(right, 'every run as on one thread');
  t.ok(pool.calmPeriods > 0, 'the workers were told to stop spinning');
  program.run();
  t.same(seen, want, 'calm: the same bits');
});

t.test('a loop that fails makes the call throw, on the caller or a worker, and the pool stays usable', async (t) => {
  const [rows, cols] = [64, 32];
  const w = randn(rows * cols);
  const x = randn(cols);
  const want = Array.from(pooledProduct(matrix(one, 'f32', w, rows, cols), x, 1));
  // a weight pointer past the memory's end: the loop traps wherever it runs
  const failing = (pool: WorkerPool) => () => {
    const out = pool.alloc(4 * rows);
    pool.run(PoolOp.F32, [2 ** 31 - 2 ** 20, pool.alloc(4 * cols), out, cols, 1, rows], rows, 4 * rows * cols);
  };
  // the caller late: the worker claims every chunk, and fails
  // (200 ms: a worker woken on a loaded machine must still come first)
  const lateCaller = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [200_000, 0] });
  // the worker late: the caller fails first, and goes on claiming until the job is closed
  const lateWorker = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 20_000] });
  t.teardown(() => Promise.all([lateCaller.dispose(), lateWorker.dispose()]));
  await Promise.all([lateCaller.ready(), lateWorker.ready()]);
  t.throws(failing(lateCaller), /a worker failed/, 'a worker failed: the caller throws');
  t.throws(failing(lateWorker), /out of bounds/, "the caller's own error");
  for (const pool of [lateCaller, lateWorker]) {
    t.same(Array.from(pooledProduct(matrix(pool, 'f32', w, rows, cols), x, 1)), want, `then a product is right (${pool.threads} threads)`);
  }
});

/**
 * A pool whose worker's unit fails (diesOnFailure `how`), the caller late
 * so that the worker claims first, as a job and as a program: the failing
 * call, then a job, a program and (disposed) a job again, each throw the
 * WorkerPoolError whose line says `died` (a regular expression's text).
 */
async function throwsOnceDied(t: Test, how: NonNullable<ConstructorParameters<typeof WorkerPool>[1]>['diesOnFailure'], died: string): Promise<void> {
  const [rows, cols] = [64, 32];
  const nowhere = 2 ** 31 - 2 ** 20; // past the memory's end: the loop traps wherever it runs
  const w = randn(rows * cols);
  const x = randn(cols);
  const message = new RegExp(
    `^WorkerPool: ${died} while the pool was in use \\(a worker must run until dispose\\(\\)\\): the pool is unusable; dispose it and make a new one$`,
  );
  for (const kind of ['job', 'program'] as const) {
    const pool = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [200_000, 0], diesOnFailure: how });
    await pool.ready();
    const m = matrix(pool, 'f32', w, rows, cols);
    const [xp, out] = [pool.alloc(4 * cols), pool.alloc(4 * rows)];
    floatsOf(pool).set(x, xp / 4);
    const step = (data: number): ProgramOpStep => ({ op: PoolOp.F32, args: [data, xp, out, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols });
    const failing = step(nowhere);
    t.throws(
      () => (kind === 'job' ? pool.run(failing.op, failing.args, rows, failing.weightBytes) : new PoolProgram(pool, [failing]).run()),
      { name: 'WorkerPoolError', message },
      `${how}, a ${kind}: the call throws, saying who ended and how`,
    );
    const good = step(m.data);
    t.throws(() => pool.run(good.op, good.args, rows, good.weightBytes), { name: 'WorkerPoolError', message }, `${how}, a ${kind}: then a job throws it`);
    t.throws(() => new PoolProgram(pool, [good]).run(), { name: 'WorkerPoolError', message }, `${how}, a ${kind}: and a program`);
    await pool.dispose(); // (resolves once the keeper, and every worker before it, has exited: its 'error' event, if any, came before)
    t.throws(() => pool.run(good.op, good.args, rows, good.weightBytes), { name: 'WorkerPoolError', message }, `${how}, a ${kind}: disposed, the same line`);
  }
}

// A worker that dies holding a claim (the test pools' diesOnFailure: its
// unit fails, and instead of counting the claim its thread exits, throws, or
// is terminated while it waits): the units it held are never counted. The
// keeper (kernels/pool_keeper.ts) sees its exit and breaks the pool; the call
// that waits for those units throws (before, it waited forever), and so does
// every call after it; dispose resolves once every worker is gone.
t.test('a worker that dies holding a claim: the call throws a WorkerPoolError naming it, then every call; dispose ends', async (t) => {
  const [rows, cols] = [64, 32];
  const w = randn(rows * cols);
  const x = randn(cols);
  for (const how of ['exit', 'throw', 'terminate'] as const) {
    const died = {
      exit: 'exited \\(exit code 3\\)',
      throw: "threw \\(Error: a unit failed \\(the test pool's diesOnFailure\\)\\)",
      terminate: 'exited \\(exit code 1\\)',
    }[how];
    await throwsOnceDied(t, how, `worker 1 of 1 ${died}`);
  }
  // the keeper itself gone (terminated here, between calls: its workers go with it)
  const pool = new WorkerPool(2, { splitMinBytes: 0 });
  await pool.ready();
  const m = matrix(pool, 'f32', w, rows, cols);
  t.same(Array.from(pooledProduct(m, x, 1)), Array.from(productF32Reference(w, x, rows, cols, 1)), 'a pool that works');
  await (pool as unknown as { keeper: Worker }).keeper.terminate();
  const message = /^WorkerPool: the keeper thread exited \(exit code 1\) while the pool was in use .*: the pool is unusable; dispose it and make a new one$/;
  t.throws(() => pooledProduct(m, x, 1), { name: 'WorkerPoolError', message }, 'its keeper terminated: a job throws, naming it');
  await pool.dispose();
});

// The keeper itself gone while the caller waits for a claim of its worker
// (diesOnFailure 'keeper ...': the worker's unit fails, the worker holds its
// claim, and the keeper dies instead; its workers end with it). An uncaught
// error there: its process 'exit' handler breaks the pool, naming the error,
// and the keeper's 'error' event is heard on this thread (before, with no
// listener, it threw here, and the line said only 'exited (exit code 1)').
// Out of memory (as terminated): no handler runs there; the caller's probe
// of the keeper after a slice of its wait finds it gone and breaks the pool
// (before, the call waited forever).
t.test('the keeper gone while the caller waits: the call throws a WorkerPoolError saying how, then every call; dispose ends', async (t) => {
  for (const how of ['keeper throws', 'keeper out of memory'] as const) {
    const died = {
      'keeper throws': "the keeper threw \\(Error: the keeper failed \\(the test pool's diesOnFailure\\)\\)",
      'keeper out of memory': 'the keeper thread ended \\(terminated, or out of memory\\)',
    }[how];
    await throwsOnceDied(t, how, died);
  }
});

// A worker that cannot instantiate its WebAssembly (the test option
// unlinkableWorkers: its products module is the walker's, which does not
// link against the loops' imports) breaks the pool as it starts: once
// ready() resolves, every call throws the WorkerPoolError naming it.
// (Before, the worker took no part in programs, which ran on the caller
// alone, and made every split job throw 'a worker failed to run its share
// of a job', a plain Error.)
t.test('a worker whose WebAssembly does not instantiate: once ready() resolves, every call throws a WorkerPoolError naming it', async (t) => {
  const [rows, cols] = [64, 32];
  for (const threads of [2, 3]) {
    const pool = new WorkerPool(threads, { splitMinBytes: 0, unitBytes: 1, unlinkableWorkers: true });
    await pool.ready();
    const message = new RegExp(
      `^WorkerPool: worker [12] of ${threads - 1} threw \\(Error: could not instantiate its WebAssembly \\(LinkError: .*\\)\\) while the pool was in use .*: the pool is unusable; dispose it and make a new one$`,
    );
    const m = matrix(pool, 'f32', randn(rows * cols), rows, cols);
    const [xp, out] = [pool.alloc(4 * cols), pool.alloc(4 * rows)];
    const step: ProgramOpStep = { op: PoolOp.F32, args: [m.data, xp, out, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols };
    t.throws(() => pool.run(step.op, step.args, rows, step.weightBytes), { name: 'WorkerPoolError', message }, `${threads} threads: a job`);
    t.throws(() => new PoolProgram(pool, [step]).run(), { name: 'WorkerPoolError', message }, `${threads} threads: a program`);
    await pool.dispose();
  }
});

// The caller's probe of a keeper that lives (pool.ts probeKeeper, called
// here as after a slice of a wait that ran out): probes answered or not
// yet answered never break the pool; once the keeper is gone (terminated
// here), a probe says so (STOP set: word 8 = STOP_BROKEN 2).
t.test("the caller's probe of the keeper: a live keeper's pool never breaks, a gone keeper's does", async (t) => {
  const pool = new WorkerPool(2, { splitMinBytes: 0 });
  await pool.ready();
  const inside = pool as unknown as { probeKeeper(): void; control: Int32Array; keeperAt: number; keeper: Worker };
  const answers = () => Atomics.load(inside.control, inside.keeperAt + 1);
  for (let i = 1; i <= 3; i++) {
    inside.probeKeeper();
    for (let waited = 0; answers() < i && waited < 5000; waited += 5) await new Promise((r) => setTimeout(r, 5));
    t.equal(answers(), i, `probe ${i}: answered`);
  }
  // probes faster than the keeper answers (fewer than its 256 waiters): each finds one, and all are answered
  for (let i = 0; i < 10; i++) inside.probeKeeper();
  t.equal(Atomics.load(inside.control, 8), 0, 'never broken');
  for (let waited = 0; answers() < 13 && waited < 5000; waited += 5) await new Promise((r) => setTimeout(r, 5));
  t.equal(answers(), 13, 'every probe answered');
  const [w, x] = [randn(64 * 32), randn(32)];
  const m = matrix(pool, 'f32', w, 64, 32);
  t.same(Array.from(pooledProduct(m, x, 1)), Array.from(productF32Reference(w, x, 64, 32, 1)), 'the pool runs, right');
  void inside.keeper.terminate();
  for (let waited = 0; Atomics.load(inside.control, 8) === 0 && waited < 5000; waited += 5) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // (no event: the pool learns of it only through the probe)
    inside.probeKeeper();
  }
  t.equal(Atomics.load(inside.control, 8), 2, 'the keeper terminated: a probe breaks the pool');
  t.throws(() => pooledProduct(m, x, 1), {
    name: 'WorkerPoolError',
    message: /^WorkerPool: the keeper thread ended \(terminated, or out of memory\) while the pool was in use/,
  });
  await pool.dispose();
});

// A keeper alive but that has left every one of its waiters' wakes
// unanswered (busy, or starved of CPU time: here the caller's count of
// wakes is set as if so): a probe breaks the pool only once the last wake
// has waited KEEPER_ANSWER_MS (5 s), and names what it saw.
t.test("the caller's probe of a keeper that answers none of its waiters' wakes: the pool breaks after 5 s, not before", async (t) => {
  const pool = new WorkerPool(2, { splitMinBytes: 0 });
  await pool.ready();
  const inside = pool as unknown as { probeKeeper(): void; control: Int32Array; keeperAt: number; keeperWakes: number; keeperWokenAt: number };
  const answers = Atomics.load(inside.control, inside.keeperAt + 1);
  inside.keeperWakes = answers + 256; // (KEEPER_WAITERS wakes unanswered)
  inside.keeperWokenAt = performance.now() - 4000;
  inside.probeKeeper();
  t.equal(Atomics.load(inside.control, 8), 0, 'the last wake 4 s ago: not broken');
  t.equal(inside.keeperWakes, answers + 256, 'and no new wake (none would be answered)');
  inside.keeperWokenAt = performance.now() - 5100;
  inside.probeKeeper();
  t.equal(Atomics.load(inside.control, 8), 2, 'the last wake 5.1 s ago: broken (STOP_BROKEN)');
  const [w, x] = [randn(64 * 32), randn(32)];
  t.throws(
    () => pooledProduct(matrix(pool, 'f32', w, 64, 32), x, 1),
    {
      name: 'WorkerPoolError',
      message: /^WorkerPool: the keeper thread left 256 probes unanswered, the last for 5 s while the pool was in use/,
    },
    'a job throws, naming what the probe saw',
  );
  await pool.dispose();
});

// The pool broken between calls (a worker gone while no call waits): the
// keeper has stored FAILED, then STOP, but this thread's event loop has not
// yet turned to bring its line. The next call, which the caller then runs
// alone, sees FAILED: it throws the WorkerPoolError (the keeper's line if
// posted, else 'a worker exited'), not 'a worker failed' (a plain Error:
// the CLI's stack trace), and so does every call after it (before, the
// one after ran on as if nothing had happened). The keeper's stores are
// made here (pool_control.ts's FAILED word 4, STOP word 8 = STOP_BROKEN 2), at once,
// no event between them and the calls; its workers leave on STOP.
t.test('a pool broken between calls, before an event brings its line: the next call throws the WorkerPoolError, and every call after it', async (t) => {
  const [rows, cols] = [64, 32];
  const w = randn(rows * cols);
  const x = randn(cols);
  const message =
    /^WorkerPool: a worker exited while the pool was in use \(a worker must run until dispose\(\)\): the pool is unusable; dispose it and make a new one$/;
  for (const kind of ['job', 'program'] as const) {
    const pool = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1 });
    await pool.ready();
    const m = matrix(pool, 'f32', w, rows, cols);
    const [xp, out] = [pool.alloc(4 * cols), pool.alloc(4 * rows)];
    floatsOf(pool).set(x, xp / 4);
    const step: ProgramOpStep = { op: PoolOp.F32, args: [m.data, xp, out, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols };
    const program = new PoolProgram(pool, [step]);
    const call = () => (kind === 'job' ? pool.run(step.op, step.args, rows, step.weightBytes) : program.run());
    call();
    t.same(Array.from(floatsOf(pool).subarray(out / 4, out / 4 + rows)), Array.from(productF32Reference(w, x, rows, cols, 1)), `a ${kind}: before, right`);
    const control = (pool as unknown as { control: Int32Array }).control;
    Atomics.store(control, 4, 1); // FAILED
    Atomics.store(control, 8, 2); // STOP = STOP_BROKEN
    t.throws(call, { name: 'WorkerPoolError', message }, `a ${kind}: the next call throws it`);
    t.throws(call, { name: 'WorkerPoolError', message }, `a ${kind}: and the one after`);
    program.dispose();
    await pool.dispose(); // (the worker left on STOP)
  }
});

t.test('splitMinBytes 0 splits every job of two row groups or more, however few its bytes', async (t) => {
  // The tests that compare a job on several threads with one thread (kernels,
  // cache_policies, pooled_model) make their pools with splitMinBytes 0 and
  // tiny shapes. Seen through a loop that traps: with the caller late, only a
  // split job reaches the worker, whose failure the caller then reports.
  const pool = new WorkerPool(2, { splitMinBytes: 0, lateMicros: [200_000, 0] });
  t.teardown(() => pool.dispose());
  await pool.ready();
  const nowhere = 2 ** 31 - 2 ** 20; // past the memory's end
  // a float32 product of two groups of 16 rows, 4 KB of weights
  t.throws(() => pool.run(PoolOp.F32, [nowhere, pool.alloc(4 * 32), pool.alloc(4 * 32), 32, 1, 32], 32, 4 * 32 * 32), /a worker failed/, 'f32, 4 KB');
  // SwiGLU over two groups of 4 rows, 384 bytes
  t.throws(() => pool.run(PoolOp.Swiglu, [nowhere, 4, pool.alloc(4 * 8 * 4)], 8, 3 * 4 * 8 * 4), /a worker failed/, 'SwiGLU, 384 bytes');
});

t.test('dispose stops every worker', async (t) => {
  const pool = new WorkerPool(3, { splitMinBytes: 0 });
  await pool.ready();
  pooledProduct(matrix(pool, 'f32', randn(64 * 32), 64, 32), randn(32), 1);
  await pool.dispose(); // resolves once each worker has exited
  t.throws(() => pool.run(0, [], 4, 0), { name: 'WorkerPoolError', message: 'WorkerPool: used after dispose()' });
});

t.test('a job with more arguments than the control words hold is refused before it is posted', async (t) => {
  const pool = new WorkerPool(2, { splitMinBytes: 0 });
  t.teardown(() => pool.dispose());
  await pool.ready();
  t.throws(() => pool.run(PoolOp.F32, [0, 0, 0, 0, 0, 0, 0, 0, 0], 32, 4096), /at most 8 arguments besides its row range, got 9/);
  // the pool still runs a well-formed job afterwards
  const w = randn(64 * 32);
  const x = randn(32);
  t.same(Array.from(pooledProduct(matrix(pool, 'f32', w, 64, 32), x, 1)), Array.from(productF32Reference(w, x, 64, 32, 1)));
});

t.test('a process with a live pool exits by itself', async (t) => {
  const script = `
    import { WorkerPool } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/kernels/pool.js')).href)};
    import { PoolProgram } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/kernels/pool_program.js')).href)};
    import { allocMatrix, pooledProduct } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/kernels/split_products.js')).href)};
    const pool = new WorkerPool(3, { splitMinBytes: 0 });
    await pool.ready();
    const m = allocMatrix(pool, 'q8', 64, 64);
    pooledProduct(m, new Float32Array(64), 1);
    // and a program (the workers walk it, then wait as after a job)
    const step = { op: 1, args: [m.data, pool.alloc(128), pool.alloc(8), pool.alloc(256), 64, 1, 64], rows: 64, weightBytes: 64 * 72 };
    new PoolProgram(pool, [step, { caller: () => undefined }, step]).run();
    // and a pool broken by a worker that died holding a claim (terminated by the keeper), not disposed
    const broken = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [200_000, 0], diesOnFailure: 'terminate' });
    await broken.ready();
    try {
      broken.run(0, [2 ** 31 - 2 ** 20, broken.alloc(128), broken.alloc(256), 32, 1, 64], 64, 64 * 128);
    } catch (e) {
      if (e.name !== 'WorkerPoolError') throw e;
    }
    process.stdout.write('done');
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(child.error, undefined, 'no timeout');
  t.equal(child.status, 0, child.stderr);
  t.equal(child.stdout, 'done');
});

// Programs (kernels/pool_program.ts): steps run as one pool job with a
// barrier after each. A program of products (f32, q8, the gated and picking
// jobs), attention and caller steps that read what the step before wrote
// equals the same steps run one by one with pool.run, bit for bit, on 1, 2
// and 3 threads, with late threads, and with arguments patched between runs.

/** The floats of a pool's memory (a fresh view: allocations may grow it). */
const floatsOf = (pool: WorkerPool) => new Float32Array(pool.memory.buffer);

/**
 * A chain of steps in `pool`: x -> f32 product -> (caller: quantise it) ->
 * q8 product, gated product, q8 picking product; an f32 picking product of
 * x; attention (the job attendInPool posts, recorded); a caller step that
 * reads the results. The same operands and matrices whatever the pool.
 */
function chain(pool: WorkerPool, seed: string) {
  const r = seedrandom(seed);
  const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => scale * (2 * r() - 1));
  const cols = 96;
  const mid = 64; // the f32 product's rows: the q8 products' columns (a whole number of blocks)
  const a = matrix(pool, 'f32', rand(mid * cols), mid, cols);
  const b = matrix(pool, 'q8', rand(40 * mid), 40, mid);
  const hidden = 24;
  const g = matrix(pool, 'q8', rand(2 * hidden * mid, 3), 2 * hidden, mid);
  const p = matrix(pool, 'q8', rand(100 * mid), 100, mid);
  const c = matrix(pool, 'f32', rand(50 * cols), 50, cols);
  const xs = [pool.alloc(4 * cols), pool.alloc(4 * cols)]; // two x, for setArg
  xs.forEach((at, i) => floatsOf(pool).set(rand(cols, i + 1), at / 4));
  const y1 = pool.alloc(4 * mid);
  const xq = pool.alloc(2 * mid);
  const xd = pool.alloc(4 * (mid / 32));
  const y2 = pool.alloc(4 * 40);
  const span = pool.alloc(4 * 3 * hidden);
  const gated = pool.alloc(4 * hidden);
  const y3 = pool.alloc(4 * 100);
  const records3 = pool.alloc(8 * 25);
  const y4 = pool.alloc(4 * 50);
  const records4 = pool.alloc(8 * 4);
  // attention: the job attendInPool posts (its records and queries in the pool's 'attention' region), recorded, not run
  const [heads, kvHeads, headDim, capacity] = [4, 2, 16, 40];
  const entries = pool.alloc(4 * 2 * kvHeads * capacity * headDim);
  floatsOf(pool).set(rand(2 * kvHeads * capacity * headDim, 2), entries / 4);
  const at = { keysAt: entries, valuesAt: entries + 4 * kvHeads * capacity * headDim, kvHeads, capacity, headDim };
  let attend: ProgramOpStep | undefined;
  const run = pool.run;
  pool.run = (op, args, rows, weightBytes) => void (attend = { op, args: [...args], rows, weightBytes });
  attendInPool(pool, [rand(heads * headDim)], [Int32Array.from([3, 40])], at, 'softmax', undefined, new Float32Array(heads * headDim));
  pool.run = run;
  const attendRecords = attend!.args[0]!;
  const outputs = { y1: [y1, mid], y2: [y2, 40], gated: [gated, hidden], y3: [y3, 100], y4: [y4, 50] } as const;
  const seen: { y1?: number[]; after?: number[] } = {};
  const read = (pool: WorkerPool) => {
    const f = floatsOf(pool);
    const values = ([offset, n]: readonly [number, number]) => Array.from(f.subarray(offset / 4, offset / 4 + n));
    // the attention's output [heads, headDim]: where its first item's record says (query, first key, count, sink, output row)
    const outAt = new Int32Array(pool.memory.buffer)[attendRecords / 4 + 4]!;
    return {
      y1: values(outputs.y1),
      y2: values(outputs.y2),
      gated: values(outputs.gated),
      y3: values(outputs.y3),
      y4: values(outputs.y4),
      attention: values([outAt, heads * headDim]),
    };
  };
  const clear = () => {
    const f = floatsOf(pool);
    for (const [offset, n] of Object.values(outputs)) f.fill(0, offset / 4, offset / 4 + n);
  };
  const steps: ProgramStep[] = [
    { op: PoolOp.F32, args: [a.data, xs[0]!, y1, a.stride, 1, mid], rows: mid, weightBytes: matrixBytes('f32', mid, cols) },
    {
      caller: () => {
        seen.y1 = Array.from(floatsOf(pool).subarray(y1 / 4, y1 / 4 + mid)); // what the step before wrote, whole
        pool.loops.quantizeX16(y1, mid, xq, xd);
      },
    },
    { op: PoolOp.Q8, args: [b.data, xq, xd, y2, mid, 1, 40], rows: 40, weightBytes: matrixBytes('q8', 40, mid) },
    { op: PoolOp.Q8Gated, args: [g.data, xq, xd, span, mid, gated, hidden], rows: hidden, weightBytes: matrixBytes('q8', 2 * hidden, mid) },
    { op: PoolOp.Q8Pick, args: [p.data, xq, xd, y3, mid, 1, 100, records3], rows: 100, weightBytes: matrixBytes('q8', 100, mid) },
    { op: PoolOp.F32Pick, args: [c.data, xs[0]!, y4, c.stride, 1, 50, records4], rows: 50, weightBytes: matrixBytes('f32', 50, cols) },
    attend!,
    { caller: () => (seen.after = read(pool).y4!) },
  ];
  /** The picks, as pickedArgmax finds them: the claims' records followed in row order, the first largest of their rows (the records themselves depend on how the claims fell). */
  const picks = () => {
    const ints = new Int32Array(pool.memory.buffer);
    const f = floatsOf(pool);
    const follow = (out: number, records: number, rows: number, group: number) => {
      let best = -1;
      for (let row = 0; row < rows;) {
        const at = (records + 8 * (row / group)) / 4;
        const found = ints[at + 1]!;
        if (best < 0 || f[out / 4 + found]! > f[out / 4 + best]!) best = found;
        row = ints[at]!;
      }
      return best;
    };
    return { q8: follow(y3, records3, 100, 4), f32: follow(y4, records4, 50, 16) };
  };
  return { steps, xs, read, clear, seen, picks };
}

/** The steps one by one: run() for an op step, the function for a caller step. */
function runOneByOne(pool: WorkerPool, steps: readonly ProgramStep[]): void {
  for (const step of steps) {
    if ('caller' in step) step.caller();
    else pool.run(step.op, step.args, step.rows, step.weightBytes);
  }
}

t.test(
  'a program of products, attention and caller steps equals its steps run one by one, bit for bit, on 1, 2, 3 threads and with late threads',
  async (t) => {
    const more = [
      new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1 }),
      new WorkerPool(3, { splitMinBytes: 0, unitBytes: 1 }),
      new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 2000] }),
      new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [2000, 0] }),
      new WorkerPool(3, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 0, 3000], spinMicros: 0 }),
      new WorkerPool(2), // the default cut: steps under 64 KB one unit
      new WorkerPool(2, { splitMinBytes: 0, unitBytes: 32 * 1024 }), // each step one unit, but for a program's own units (below)
    ];
    t.teardown(() => Promise.all(more.map((p) => p.dispose())));
    await Promise.all(more.map((p) => p.ready()));
    const before = tf.memory().numTensors;
    const name = (p: WorkerPool) => `${p.threads} threads, unitBytes ${p.unitBytes}, splitMinBytes ${p.splitMinBytes}`;
    // one thread, one by one: the reference, for each x
    const reference = chain(one, 'program');
    const want = reference.xs.map((x) => {
      for (const s of [0, 5]) (reference.steps[s] as ProgramOpStep & { args: number[] }).args[1] = x;
      reference.clear();
      runOneByOne(one, reference.steps);
      return { ...reference.read(one), seenY1: reference.seen.y1, picks: reference.picks() };
    });
    t.notSame(want[0]!.y2, want[1]!.y2, 'the two x give two results');
    // (the last pool twice: the second time its program cut in units of 1 KB)
    for (const [pool, unitBytes] of [[one], [pools[0]!], [pools[1]!], ...more.map((p) => [p]), [more[6]!, 1024]] as [WorkerPool, number?][]) {
      const c = chain(pool, 'program');
      const program = new PoolProgram(pool, c.steps, { unitBytes });
      if (unitBytes !== undefined) t.ok(program.unitsOf(0) > new PoolProgram(pool, c.steps).unitsOf(0), `units of ${unitBytes} B: more units`);
      if (pool.threads > 1 && pool.unitBytes === 1) t.ok(program.unitsOf(0) > 1 && program.unitsOf(6) > 1, `${name(pool)}: steps of several units`);
      // runs with x patched between them (setArg), x alternating
      for (let run = 0; run < 6; run++) {
        const i = run % 2;
        program.setArg(0, 1, c.xs[i]!);
        program.setArg(5, 1, c.xs[i]!);
        c.clear();
        program.run();
        const got = { ...c.read(pool), seenY1: c.seen.y1, picks: c.picks() };
        t.same(got, want[i], `${name(pool)}, run ${run}, x ${i}`);
        t.same(c.seen.after, want[i]!.y4, `${name(pool)}, run ${run}: the last caller step sees the results`);
      }
      // the same pool, the steps one by one with run(): the same bits
      c.steps[0] = { ...(c.steps[0] as ProgramOpStep), args: (c.steps[0] as ProgramOpStep).args.map((v, k) => (k === 1 ? c.xs[1]! : v)) };
      c.steps[5] = { ...(c.steps[5] as ProgramOpStep), args: (c.steps[5] as ProgramOpStep).args.map((v, k) => (k === 1 ? c.xs[1]! : v)) };
      c.clear();
      runOneByOne(pool, c.steps);
      t.same({ ...c.read(pool), seenY1: c.seen.y1, picks: c.picks() }, want[1], `${name(pool)}: one by one`);
      program.dispose();
      t.throws(() => program.run(), { name: 'WorkerPoolError', message: 'PoolProgram: used after dispose()' }, 'a disposed program refuses to run');
    }
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  },
);

t.test("a program's caller step sees the whole result of a step the worker ran (the caller late)", async (t) => {
  // An attention job of 256 heads over 8192 entries as one unit
  // (splitMinBytes past it): tens of ms of work, which the spinning worker
  // claims at once; the caller, 5 ms late, finds nothing to claim, and must
  // wait at the barrier before its caller step reads the output.
  const pool = new WorkerPool(2, { splitMinBytes: 2 ** 31, lateMicros: [5000, 0] });
  t.teardown(() => pool.dispose());
  await pool.ready();
  const [heads, headDim, capacity] = [256, 64, 8192];
  const entries = poolRegions(pool).allocFloats(2 * capacity * headDim); // [keys | values], one kv head
  entries.set(randn(2 * capacity * headDim));
  const at = { keysAt: entries.byteOffset, valuesAt: entries.byteOffset + 4 * capacity * headDim, kvHeads: 1, capacity, headDim };
  const out = new Float32Array(heads * headDim);
  t.ok(attendInPool(pool, [randn(heads * headDim)], [Int32Array.from([0, capacity])], at, 'softmax', undefined, out), 'room in the pool');
  const want = Array.from(out);
  // the job attendInPool posts, recorded: its queries, records and output stay where they are
  let job: ProgramOpStep | undefined;
  const run = pool.run;
  pool.run = (op, args, rows, weightBytes) => void (job = { op, args: [...args], rows, weightBytes });
  attendInPool(pool, [new Float32Array(heads * headDim)], [Int32Array.from([0, capacity])], at, 'softmax', undefined, out);
  pool.run = run;
  const outAt = new Int32Array(pool.memory.buffer)[job!.args[0]! / 4 + 4]!; // the first item's record: its output row, the output's start
  const queriesAt = new Int32Array(pool.memory.buffer)[job!.args[0]! / 4]!;
  let seen: number[] = [];
  const program = new PoolProgram(pool, [job!, { caller: () => (seen = Array.from(floatsOf(pool).subarray(outAt / 4, outAt / 4 + heads * headDim))) }]);
  t.equal(program.unitsOf(0), 1, 'the long step: one unit');
  const queries = randn(heads * headDim);
  floatsOf(pool).set(queries, queriesAt / 4);
  attendInPool(pool, [queries], [Int32Array.from([0, capacity])], at, 'softmax', undefined, out);
  const wantNow = Array.from(out);
  t.notSame(wantNow, want, 'other queries, another output');
  for (let run = 0; run < 3; run++) {
    floatsOf(pool).set(queries, queriesAt / 4);
    floatsOf(pool).fill(0, outAt / 4, outAt / 4 + heads * headDim);
    program.run();
    t.same(seen, wantNow, `run ${run}: the caller step saw every head's output`);
  }
  program.dispose();
  poolRegions(pool).releaseFloats(entries);
});

t.test("a program's SumsOfExps and Swiglu steps (ops no decode program runs, dispatched by the walker's own copy of the dispatch): run()'s bits", async (t) => {
  await Promise.all(pools.map((p) => p.ready()));
  const [n, vocab, hidden, rows] = [12, 40, 16, 8];
  for (const pool of [one, ...pools]) {
    const x = pool.alloc(4 * n * vocab);
    floatsOf(pool).set(randn(n * vocab), x / 4);
    const g = pool.alloc(4 * 2 * hidden * rows); // [rows, gate | up]
    floatsOf(pool).set(randn(2 * hidden * rows), g / 4);
    const [sumsJob, sumsProgram] = [pool.alloc(16 * n), pool.alloc(16 * n)];
    const [gatedJob, gatedProgram] = [pool.alloc(4 * hidden * rows), pool.alloc(4 * hidden * rows)];
    pool.run(PoolOp.SumsOfExps, [x, vocab, sumsJob], n, 4 * n * vocab);
    pool.run(PoolOp.Swiglu, [g, hidden, gatedJob], rows, 3 * 4 * hidden * rows);
    const program = new PoolProgram(pool, [
      { op: PoolOp.SumsOfExps, args: [x, vocab, sumsProgram], rows: n, weightBytes: 4 * n * vocab },
      { op: PoolOp.Swiglu, args: [g, hidden, gatedProgram], rows, weightBytes: 3 * 4 * hidden * rows },
    ]);
    t.ok(pool.threads === 1 || program.unitsOf(0) > 1, `${pool.threads} threads: the sums split`);
    program.run();
    const ints = (at: number, bytes: number) => Array.from(new Int32Array(pool.memory.buffer, at, bytes / 4));
    t.same(ints(sumsProgram, 16 * n), ints(sumsJob, 16 * n), `${pool.threads} threads: the sums' bits`);
    t.same(ints(gatedProgram, 4 * hidden * rows), ints(gatedJob, 4 * hidden * rows), `${pool.threads} threads: SwiGLU's bits`);
    program.dispose();
  }
});

// A decode layer's shape with every-thread steps (pool_program.ts
// everyThread, perThread): a norm into each thread's own copy of the
// product's operand, the product's claims reading their thread's copy,
// SwiGLU and the quantisation of a product's output likewise. The reference:
// the same steps without those marks, one by one with run() on one thread
// (every thread then uses copy 0).
function everyThreadChain(pool: WorkerPool, every: boolean) {
  const [dim, hidden, mid] = [40, 32, 64];
  const seeded = seedrandom('every thread');
  const values = (n: number) => Float32Array.from({ length: n }, () => 2 * seeded() - 1);
  const [residual0, normW] = [values(dim), values(dim)];
  const m1 = matrix(pool, 'f32', values(2 * hidden * dim), 2 * hidden, dim); // gate | up
  const m2 = matrix(pool, 'f32', values(dim * hidden), dim, hidden);
  const m3 = matrix(pool, 'q8', values(mid * dim), mid, dim);
  const m4 = matrix(pool, 'q8', values(dim * mid), dim, mid);
  // an operand of `stride` floats: x, then its int16 blocks and scales; one copy a thread, `copy` bytes apart
  const copy = (stride: number) => Math.ceil((4 * stride + 2 * stride + stride / 8) / 64) * 64;
  const operand = (stride: number) => {
    const x = pool.alloc(pool.threads * copy(stride));
    return { x, q: x + 4 * stride, d: x + 6 * stride, copy: copy(stride), bytes: pool.threads * copy(stride) };
  };
  const [normed, gated, normedQ8, quantized] = [operand(m1.stride), operand(m2.stride), operand(m3.stride), operand(m4.stride)];
  const [residual, normAt, epsAt, gateUp, y3, y4, product] = [
    pool.alloc(4 * dim),
    pool.alloc(4 * dim),
    pool.alloc(8),
    pool.alloc(8 * hidden),
    pool.alloc(4 * mid),
    pool.alloc(4 * dim),
    pool.alloc(4 * dim),
  ];
  floatsOf(pool).set(normW, normAt / 4);
  new Float64Array(pool.memory.buffer, epsAt, 1)[0] = 1e-5;
  const marks = (args: number[], bytes: number, everyThread = false) => (every ? { perThread: { args, bytes }, ...(everyThread ? { everyThread } : {}) } : {});
  const seen: { residual?: number[] } = {};
  const steps: ProgramStep[] = [
    {
      op: PoolOp.NormOperand,
      args: [residual, normAt, epsAt, dim, m1.stride, normed.x, 0, 0],
      rows: 1,
      weightBytes: 4 * dim,
      ...marks([5], normed.copy, true),
    },
    {
      op: PoolOp.F32,
      args: [m1.data, normed.x, gateUp, m1.stride, 1, 2 * hidden],
      rows: 2 * hidden,
      weightBytes: matrixBytes('f32', 2 * hidden, dim),
      ...marks([1], normed.copy),
    },
    { op: PoolOp.Swiglu, args: [gateUp, hidden, gated.x], rows: 1, weightBytes: 12 * hidden, ...marks([2], gated.copy, true) },
    {
      op: PoolOp.F32Add,
      args: [m2.data, gated.x, product, m2.stride, 1, dim, residual],
      rows: dim,
      weightBytes: matrixBytes('f32', dim, hidden),
      ...marks([1], gated.copy),
    },
    {
      op: PoolOp.NormOperand,
      args: [residual, normAt, epsAt, dim, m3.stride, normedQ8.x, normedQ8.q, normedQ8.d],
      rows: 1,
      weightBytes: 4 * dim,
      ...marks([5, 6, 7], normedQ8.copy, true),
    },
    {
      op: PoolOp.Q8,
      args: [m3.data, normedQ8.q, normedQ8.d, y3, m3.stride, 1, mid],
      rows: mid,
      weightBytes: matrixBytes('q8', mid, dim),
      ...marks([1, 2], normedQ8.copy),
    },
    { op: PoolOp.Quantize, args: [y3, m4.stride, quantized.q, quantized.d], rows: 1, weightBytes: 4 * mid, ...marks([2, 3], quantized.copy, true) },
    {
      op: PoolOp.Q8Add,
      args: [m4.data, quantized.q, quantized.d, y4, m4.stride, 1, dim, residual],
      rows: dim,
      weightBytes: matrixBytes('q8', dim, mid),
      ...marks([1, 2], quantized.copy),
    },
    { caller: () => (seen.residual = bits(floatsOf(pool).slice(residual / 4, residual / 4 + dim))) },
  ];
  /** Before a run: the residual's start, every copy of every operand zeroed. */
  const reset = () => {
    floatsOf(pool).set(residual0, residual / 4);
    for (const o of [normed, gated, normedQ8, quantized]) new Uint8Array(pool.memory.buffer, o.x, o.bytes).fill(0);
  };
  const read = () => ({
    y3: bits(floatsOf(pool).slice(y3 / 4, y3 / 4 + mid)),
    residual: bits(floatsOf(pool).slice(residual / 4, residual / 4 + dim)),
    seen: seen.residual,
  });
  /** Thread t's copy of the first norm's output (the operand's dim floats). */
  const normedCopy = (t: number) => bits(floatsOf(pool).slice((normed.x + t * normed.copy) / 4, (normed.x + t * normed.copy) / 4 + dim));
  const wantNormed = new Float32Array(dim);
  rmsNormRows(residual0, normW, 1e-5, dim, wantNormed);
  return { steps, reset, read, normedCopy, wantNormed: bits(wantNormed) };
}

t.test(
  'a program with every-thread steps (each thread its own copy of an operand) equals its steps run one by one, bit for bit, on 1-4 threads and with late threads',
  async (t) => {
    const late = [
      new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [20_000, 0] }), // the worker runs nearly everything (copy 1)
      new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 2000] }),
      new WorkerPool(3, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 0, 3000], spinMicros: 0 }),
    ];
    t.teardown(() => Promise.all(late.map((p) => p.dispose())));
    await Promise.all(late.map((p) => p.ready()));
    const reference = everyThreadChain(one, false);
    reference.reset();
    runOneByOne(one, reference.steps);
    const want = reference.read();
    t.same(reference.normedCopy(0), reference.wantNormed, 'the reference: the norm is rmsNormRows');
    t.notSame(want.residual, bits(new Float32Array(40)), 'the residual moved');
    for (const pool of [one, ...pools, ...late]) {
      const c = everyThreadChain(pool, true);
      const program = new PoolProgram(pool, c.steps);
      t.equal(program.unitsOf(0), 0, 'an every-thread step is not cut into units');
      const name = `${pool.threads} threads${pool === late[0] ? ', the caller late' : ''}`;
      let workerCopies = 0;
      for (let run = 0; run < 4; run++) {
        c.reset();
        program.run();
        t.same(c.read(), want, `${name}, run ${run}`);
        if (pool.threads > 1 && bits(new Float32Array(40)).join() !== c.normedCopy(1).join()) {
          t.same(c.normedCopy(1), c.wantNormed, `${name}, run ${run}: the worker's copy is the norm`);
          workerCopies++;
        }
      }
      if (pool === late[0]) t.ok(workerCopies > 0, `${name}: the worker ran the every-thread norm into its own copy`);
      // the steps one by one with run() (copy 0): the same bits
      c.reset();
      runOneByOne(pool, c.steps);
      t.same(c.read(), want, `${name}: one by one`);
      program.dispose();
    }
    const step = { op: PoolOp.F32, args: [0, 0, 0, 4, 1, 4], rows: 4, weightBytes: 64 } as const;
    const every = { ...step, everyThread: true, perThread: { args: [2], bytes: 64 } };
    t.throws(() => new PoolProgram(one, [step, every]), /step 1 runs on every thread: the step after it must be an op step that does not/);
    t.throws(() => new PoolProgram(one, [every, { caller: () => undefined }]), /step 0 runs on every thread: the step after it must be an op step/);
    t.throws(() => new PoolProgram(one, [every, every, step]), /step 0 runs on every thread: the step after it must be an op step that does not/);
    t.throws(() => new PoolProgram(one, [{ ...step, everyThread: true }, step]), /step 0 runs on every thread: it needs perThread arguments/);
    t.throws(
      () => new PoolProgram(one, [{ ...step, perThread: { args: [6], bytes: 64 } }]),
      /step 0's perThread.args must be indices of its 6 arguments, got 6/,
    );
    t.throws(() => new PoolProgram(one, [{ ...step, perThread: { args: [1], bytes: -4 } }]), /step 0's perThread.bytes must be a non-negative integer/);
  },
);

t.test('a program whose step fails throws, on the caller or a worker, runs no step after it, and the pool stays usable', async (t) => {
  const [rows, cols] = [64, 32];
  const nowhere = 2 ** 31 - 2 ** 20; // past the memory's end: the loop traps wherever it runs
  // as the failing jobs' test: the caller late (the worker fails), the worker late (the caller fails)
  const lateCaller = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [200_000, 0] });
  const lateWorker = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [0, 20_000] });
  t.teardown(() => Promise.all([lateCaller.dispose(), lateWorker.dispose()]));
  await Promise.all([lateCaller.ready(), lateWorker.ready()]);
  const w = randn(rows * cols);
  const x = randn(cols);
  const want = Array.from(productF32Reference(w, x, rows, cols, 1));
  for (const [pool, expected] of [
    [lateCaller, /a worker failed/],
    [lateWorker, /out of bounds/],
    [one, /out of bounds/],
  ] as const) {
    const m = matrix(pool, 'f32', w, rows, cols);
    const xp = pool.alloc(4 * cols);
    floatsOf(pool).set(x, xp / 4);
    const [out, after] = [pool.alloc(4 * rows), pool.alloc(4 * rows)];
    let called = 0;
    const product = (w: number, to: number): ProgramStep => ({ op: PoolOp.F32, args: [w, xp, to, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols });
    const program = new PoolProgram(pool, [product(m.data, out), product(nowhere, out), { caller: () => called++ }, product(m.data, after)]);
    floatsOf(pool).fill(7, after / 4, after / 4 + rows);
    t.throws(() => program.run(), expected, `${pool.threads} threads: the error`);
    t.equal(called, 0, `${pool.threads} threads: no caller step after the failure`);
    t.ok(
      floatsOf(pool)
        .subarray(after / 4, after / 4 + rows)
        .every((v) => v === 7),
      `${pool.threads} threads: no product after it`,
    );
    // patched to a good matrix: the program runs, and so do jobs
    program.setArg(1, 0, m.data);
    program.run();
    t.equal(called, 1, `${pool.threads} threads: patched, the caller step runs`);
    t.same(Array.from(floatsOf(pool).subarray(after / 4, after / 4 + rows)), want, `${pool.threads} threads: patched, the program's product`);
    t.same(Array.from(pooledProduct(m, x, 1)), want, `${pool.threads} threads: then a job`);
    // a caller step that throws: its error, after the run closed
    const throwing = new PoolProgram(pool, [
      product(m.data, out),
      {
        caller: () => {
          throw new Error('caller step failed');
        },
      },
      { caller: () => called++ },
    ]);
    t.throws(() => throwing.run(), /caller step failed/, `${pool.threads} threads: a caller step's error`);
    t.equal(called, 1, `${pool.threads} threads: nothing after it`);
    t.same(Array.from(pooledProduct(m, x, 1)), want, `${pool.threads} threads: then a job`);
  }
  // a caller step's own job runs on the caller alone, right, inside the program
  const pool = pools[0]!;
  const m = matrix(pool, 'f32', w, rows, cols);
  let inside: number[] = [];
  new PoolProgram(pool, [{ caller: () => (inside = Array.from(pooledProduct(m, x, 1))) }]).run();
  t.same(inside, want, "a job run from a caller step: the job's bits");
  // a caller step that patches the next step (its x), and an empty step (no rows): the patched x's product
  const [x0, x1] = [pool.alloc(4 * cols), pool.alloc(4 * cols)];
  floatsOf(pool).set(randn(cols), x0 / 4);
  floatsOf(pool).set(x, x1 / 4);
  const out = pool.alloc(4 * rows);
  let patching: PoolProgram | undefined = undefined;
  patching = new PoolProgram(pool, [
    { caller: () => patching!.setArg(2, 1, x1) },
    { op: PoolOp.F32, args: [], rows: 0, weightBytes: 0 },
    { op: PoolOp.F32, args: [m.data, x0, out, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols },
  ]);
  t.equal(patching.unitsOf(1), 0, 'the empty step: no units');
  t.ok(patching.unitsOf(2) > 1, 'the product: split');
  patching.run();
  t.same(Array.from(floatsOf(pool).subarray(out / 4, out / 4 + rows)), want, 'patched from the caller step before it: the product of x');
  t.equal(patching.arg(2, 1), x1, 'and the runs after it see the patch');
  // bad programs: one line naming what is wrong
  t.throws(() => new PoolProgram(pool, []), /1 to 2048 steps, got 0/);
  t.throws(() => new PoolProgram(pool, [{ op: PoolOp.F32, args: new Array(9).fill(0), rows: 4, weightBytes: 0 }]), /step 0 takes at most 8 arguments/);
  t.throws(() => new PoolProgram(pool, [{ op: PoolOp.F32, args: [], rows: -1, weightBytes: 0 }]), /step 0's rows must be a non-negative integer, got -1/);
  // an op the dispatch lacks (it trapped in the walker, on whichever thread claimed it); -1 is the caller steps' op word
  for (const op of [2, 14, -1, 1.5]) {
    const steps: ProgramStep[] = [{ caller: () => undefined }, { op: op as JobOp, args: [], rows: 4, weightBytes: 0 }];
    t.throws(() => new PoolProgram(pool, steps), new RangeError(`PoolProgram: step 1's op ${op} is not a pool op (PoolOp: a JobOp)`), `op ${op}: refused`);
  }
  const small = new PoolProgram(pool, [{ caller: () => undefined }, { op: PoolOp.F32, args: [], rows: 0, weightBytes: 0 }]);
  t.throws(() => small.setArg(0, 0, 1), /step 0 is not an op step/);
  t.throws(() => small.setArg(1, 8, 1), /argument index 8 outside 0..7/);
});

// A fault of the caller's walk outside its units (the stack running out in
// one of its calls, say; here its clock, process.uptime as the pool's
// walker imported it, throwing where the walk reads it after a caller step,
// with programTimes on): it holds no unit
// then, so it walks on from its step with FAILED set, as after a unit's
// trap, and the run closes with every thread's units counted; it throws the
// fault. (Before, it threw at once, the run left to the workers, which ran
// the steps after it while the caller went on.) A fault that comes back
// every time breaks the pool after MAX_WALK_FAULTS (3).
t.test("a fault of the caller's walk outside its units: the run still closes, nothing after it runs; a fault that persists breaks the pool", async (t) => {
  const [rows, cols] = [64, 32];
  const w = randn(rows * cols);
  const x = randn(cols);
  const want = Array.from(productF32Reference(w, x, rows, cols, 1));
  const uptime = process.uptime;
  const restore = () => (process.uptime = uptime);
  t.teardown(restore);
  for (const persists of [false, true]) {
    let faults = 0;
    let armed = false;
    // the clock the caller's walker takes when the pool is made (the workers have their own)
    process.uptime = () => {
      if (armed && (persists || faults === 0)) {
        faults++;
        throw new Error('the clock failed');
      }
      return uptime();
    };
    // the caller late: the worker is at the caller step's barrier when the fault comes
    const pool = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1, lateMicros: [20_000, 0] });
    restore();
    t.teardown(() => pool.dispose());
    await pool.ready();
    pool.programTimes = { runs: 0, own: [], barrier: [], ops: [] };
    const m = matrix(pool, 'f32', w, rows, cols);
    const xp = pool.alloc(4 * cols);
    floatsOf(pool).set(x, xp / 4);
    const out = pool.alloc(4 * rows);
    let after = 0;
    const program = new PoolProgram(pool, [
      { caller: () => (armed = true) },
      { op: PoolOp.F32, args: [m.data, xp, out, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols },
      { caller: () => after++ },
    ]);
    floatsOf(pool).fill(7, out / 4, out / 4 + rows);
    const untouched = () =>
      floatsOf(pool)
        .subarray(out / 4, out / 4 + rows)
        .every((v) => v === 7);
    if (!persists) {
      t.throws(() => program.run(), /^the clock failed$/, 'once: the run throws the fault');
      armed = false;
      t.equal(faults, 1, 'once: one fault');
      t.equal(after, 0, 'once: no caller step after it');
      t.ok(untouched(), 'once: no product after it');
      // the next run (another program, on every thread): right, and the product of the failed run was never run by a worker
      const other = pool.alloc(4 * rows);
      new PoolProgram(pool, [{ op: PoolOp.F32, args: [m.data, xp, other, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols }]).run();
      t.same(Array.from(floatsOf(pool).subarray(other / 4, other / 4 + rows)), want, 'once: then a program is right');
      t.ok(untouched(), 'once: and the failed run left nothing running');
      program.run();
      t.same(Array.from(floatsOf(pool).subarray(out / 4, out / 4 + rows)), want, 'once: the program runs again, right');
      t.equal(after, 1, 'once: every step');
    } else {
      const message = /^WorkerPool: the calling thread's walk of a program failed 3 times outside its units \(Error: the clock failed\): the pool is unusable$/;
      t.throws(() => program.run(), { name: 'WorkerPoolError', message }, 'persists: the pool breaks');
      armed = false;
      t.equal(faults, 3, 'persists: after 3 faults');
      t.equal(after, 0, 'persists: no caller step after it');
      t.throws(() => pooledProduct(m, x, 1), { name: 'WorkerPoolError', message }, 'persists: then a job throws it');
      await pool.dispose(); // (the workers left the run on STOP)
    }
  }
});

// A stale walker: a worker that stalled in its walk of an earlier run (say
// between loading a step's claim word and its compareExchange) and comes
// back when the open run's tag equals its old one (tags are 10 bits), while
// that run is at an earlier step. Played here by a second walker instance
// on a thread of the test's, started from the program's first (caller)
// step with the open run's tag at the last step: its claims succeed (valid
// claims of the run), but it must not run them before the steps they read
// are done. (Without the wait after a claim, it ran them at once, from the
// product before's unwritten output, and the run closed normally.) It walks
// as thread `thread` (its own copy of a per-thread operand: the pool's
// worker is thread 1), its arguments' line at `own`.
const STALE_WALKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { memory, modules, flags, ctrl, program, steps, from, thread, own } = workerData;
const loops = new WebAssembly.Instance(modules[0], { env: { memory } }).exports;
const shared = new WebAssembly.Instance(modules[1], { env: { memory } }).exports;
const walker = new WebAssembly.Instance(modules[2], {
  env: {
    memory,
    productF32: loops.productF32, productQ8: loops.productQ8, quantizeX16: loops.quantizeX16,
    attendRows: shared.attendRows, sumsOfExps: shared.sumsOfExps, swigluRange: shared.swigluRange, pickRows: shared.pickRows,
    normOperand: shared.normOperand, qkvRope: shared.qkvRope, addInto: shared.addInto,
    callerStep: () => {}, uptime: process.uptime, slept: () => {},
  },
}).exports;
const f = new Int32Array(flags);
parentPort.postMessage('ready');
while (Atomics.load(f, 0) === 0) Atomics.wait(f, 0, 0); // the open run's tag + 1
const walked = walker.walk(ctrl, program, Atomics.load(f, 0) - 1, steps, from, thread, 2, 0, 50000000n, 0, own);
Atomics.store(f, 1, 1);
Atomics.notify(f, 1);
parentPort.postMessage(walked);
`;

/**
 * A stale walker (STALE_WALKER_SOURCE) on `pool`'s program, started and
 * ready: it walks steps [from, steps) as thread `thread` once flags[0] holds
 * the open run's tag + 1; `walked` is what its walk returned.
 */
async function staleWalker(pool: WorkerPool, flags: Int32Array, own: number, steps: number, from: number, thread: number) {
  const modules = [PRODUCTS_WASM, SHARED_LOOPS_WASM, WALKER_WASM].map((b64) => new WebAssembly.Module(Buffer.from(b64, 'base64')));
  const inside = pool as unknown as { controlAt: number; programAt: number };
  const ctrl = inside.controlAt;
  const program = ctrl + 4 * inside.programAt;
  const stale = new Worker(STALE_WALKER_SOURCE, {
    eval: true,
    workerData: { memory: pool.memory, modules, flags: flags.buffer, ctrl, program, steps, from, thread, own },
  });
  const messages: unknown[] = [];
  const walked = new Promise<unknown>((resolve, reject) => {
    stale.on('message', (m) => (messages.push(m), messages.length === 2 && resolve(m))).once('error', reject);
  });
  while (messages.length === 0) await new Promise((r) => setTimeout(r, 5));
  return { stale, walked };
}

/** A float32 product step of `m` ([n, n]) from `from` into `to`. */
function productStep(m: PooledMatrix, from: number, to: number): ProgramStep {
  return { op: PoolOp.F32, args: [m.data, from, to, m.stride, 1, m.rows], rows: m.rows, weightBytes: 4 * m.rows * m.cols };
}

t.test('a stale walker that claims a later step of the open run waits for the steps before it: the same bits', async (t) => {
  const pool = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1 });
  t.teardown(() => pool.dispose());
  await pool.ready();
  const n = 64;
  const [w1, w2, x, normW] = [randn(n * n), randn(n * n), randn(n), randn(n)];
  const want = productF32Reference(w2, productF32Reference(w1, x, n, n, 1), n, n, 1);
  const normed = new Float32Array(n);
  rmsNormRows(productF32Reference(w1, x, n, n, 1), normW, 1e-5, n, normed);
  const wantNormed = productF32Reference(w2, normed, n, n, 1); // W2 norm(W1 x)
  const [m1, m2] = [matrix(pool, 'f32', w1, n, n), matrix(pool, 'f32', w2, n, n)];
  const [xp, y1, y2, normAt, epsAt, own] = [pool.alloc(4 * n), pool.alloc(4 * n), pool.alloc(4 * n), pool.alloc(4 * n), pool.alloc(8), pool.alloc(64)];
  const copies = pool.alloc(3 * 4 * n); // the norm's output: copies for threads 0, 1 and the stale walker's 2
  floatsOf(pool).set(x, xp / 4);
  floatsOf(pool).set(normW, normAt / 4);
  new Float64Array(pool.memory.buffer, epsAt, 1)[0] = 1e-5;
  const inside = pool as unknown as { tag: number };
  // the stale walk from the last step: the one before it (the reviewer's
  // case), past an empty step (whose LEFT word starts done), and past an
  // every-thread step (a norm the stale claim must run, on its own copy,
  // only after the product before it is done)
  for (const kind of ['the step before', 'past an empty step', 'past an every-thread step'] as const) {
    const flags = new Int32Array(new SharedArrayBuffer(8));
    const steps: ProgramStep[] = [
      {
        caller: () => {
          // the stale walker starts (the run at this step), and gets up to 300 ms
          Atomics.store(flags, 0, inside.tag + 1);
          Atomics.notify(flags, 0);
          Atomics.wait(flags, 1, 0, 300);
        },
      },
      productStep(m1, xp, y1),
      ...(kind === 'past an empty step' ? [{ op: PoolOp.F32, args: [], rows: 0, weightBytes: 0 }] : []),
      ...(kind === 'past an every-thread step'
        ? [
            {
              op: PoolOp.NormOperand,
              args: [y1, normAt, epsAt, n, n, copies, 0, 0],
              rows: 1,
              weightBytes: 4 * n,
              everyThread: true,
              perThread: { args: [5], bytes: 4 * n },
            },
            { ...productStep(m2, copies, y2), perThread: { args: [1], bytes: 4 * n } },
          ]
        : [productStep(m2, y1, y2)]),
    ];
    const program = new PoolProgram(pool, steps);
    t.ok(program.unitsOf(steps.length - 1) > 1, 'the last step: several units');
    const { stale, walked } = await staleWalker(pool, flags, own, steps.length, steps.length - 1, kind === 'past an every-thread step' ? 2 : 1);
    floatsOf(pool).fill(0, y1 / 4, y1 / 4 + n); // the product before's output, not yet written
    floatsOf(pool).fill(7, y2 / 4, y2 / 4 + n);
    floatsOf(pool).fill(0, copies / 4, copies / 4 + 3 * n);
    program.run();
    t.equal(await walked, 1, `${kind}: the stale walk ends with the run`);
    await stale.terminate();
    if (kind === 'past an every-thread step') {
      t.same(Array.from(floatsOf(pool).subarray(y2 / 4, y2 / 4 + n)), Array.from(wantNormed), `${kind}: W2 norm(W1 x)`);
      t.same(bits(floatsOf(pool).slice(copies / 4 + 2 * n, copies / 4 + 3 * n)), bits(normed), `${kind}: the stale walker normed into its own copy`);
    } else t.same(Array.from(floatsOf(pool).subarray(y2 / 4, y2 / 4 + n)), Array.from(want), `${kind}: W2 (W1 x)`);
    program.dispose();
  }
});

// dispose() from a caller step, while a stale walker (as above) holds a
// claim of a later step and waits for the steps before it: dispose's STOP
// ends that wait. dispose stores FAILED first (as the keeper and breakPool
// do), so the claim is counted, not run, and the run computes nothing after
// the caller step and throws 'used after dispose()'. (Before, STOP alone:
// the stale claims ran at once, from the product before's unwritten output,
// and the run returned as if it were right.)
t.test('dispose from a caller step while a stale walker holds a later claim: nothing runs after it, and the run throws', async (t) => {
  const pool = new WorkerPool(2, { splitMinBytes: 0, unitBytes: 1 });
  await pool.ready();
  const n = 64;
  const [m1, m2] = [matrix(pool, 'f32', randn(n * n), n, n), matrix(pool, 'f32', randn(n * n), n, n)];
  const [xp, y1, y2, own] = [pool.alloc(4 * n), pool.alloc(4 * n), pool.alloc(4 * n), pool.alloc(64)];
  floatsOf(pool).set(randn(n), xp / 4);
  const inside = pool as unknown as { tag: number };
  const flags = new Int32Array(new SharedArrayBuffer(8));
  let disposed: Promise<void> | undefined;
  const steps: ProgramStep[] = [
    {
      caller: () => {
        // the stale walker starts (the run at this step), the pool is disposed, and the walker gets up to 2 s to end its walk
        Atomics.store(flags, 0, inside.tag + 1);
        Atomics.notify(flags, 0);
        disposed = pool.dispose();
        Atomics.wait(flags, 1, 0, 2000);
      },
    },
    productStep(m1, xp, y1),
    productStep(m2, y1, y2),
  ];
  const program = new PoolProgram(pool, steps);
  t.ok(program.unitsOf(2) > 1, 'the last step: several units');
  const { stale, walked } = await staleWalker(pool, flags, own, 3, 2, 1);
  floatsOf(pool).fill(0, y1 / 4, y1 / 4 + n);
  floatsOf(pool).fill(7, y2 / 4, y2 / 4 + n);
  t.throws(() => program.run(), { name: 'WorkerPoolError', message: 'WorkerPool: used after dispose()' }, 'the run throws');
  t.equal(await walked, 1, 'the stale walk ends with the run');
  await stale.terminate();
  t.ok(
    floatsOf(pool)
      .subarray(y1 / 4, y1 / 4 + n)
      .every((v) => v === 0),
    'the product after the caller step: not run',
  );
  t.ok(
    floatsOf(pool)
      .subarray(y2 / 4, y2 / 4 + n)
      .every((v) => v === 7),
    "the stale walker's claims: not run",
  );
  program.dispose();
  await disposed;
});

t.test('a job whose pointer was left 0 throws, and the pool runs the next job', async (t) => {
  const [rows, cols] = [64, 32];
  const w = randn(rows * cols);
  const x = randn(cols);
  const want = Array.from(productF32Reference(w, x, rows, cols, 1));
  for (const pool of [new WorkerPool(2, { splitMinBytes: 0 }), new WorkerPool(1)]) {
    t.teardown(() => pool.dispose());
    await pool.ready();
    const m = matrix(pool, 'f32', w, rows, cols);
    const xp = pool.alloc(4 * cols);
    floatsOf(pool).set(x, xp / 4);
    const out = pool.alloc(4 * rows);
    // out = 0: the rows land in the low bytes nothing is allocated in
    t.throws(() => pool.run(PoolOp.F32, [m.data, xp, 0, m.stride, 1, rows], rows, 4 * rows * cols), /wrote at byte 0 .* pointers was left 0/);
    t.same(Array.from(pooledProduct(m, x, 1)), want, `${pool.threads} threads: the next job`);
    // so in a program
    const program = new PoolProgram(pool, [{ op: PoolOp.F32, args: [m.data, xp, 0, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols }]);
    t.throws(() => program.run(), /pointers was left 0/, `${pool.threads} threads: a program's step`);
    program.setArg(0, 2, out);
    program.run();
    t.same(Array.from(floatsOf(pool).subarray(out / 4, out / 4 + rows)), want, `${pool.threads} threads: patched, the program runs`);
    t.same(Array.from(pooledProduct(m, x, 1)), want, `${pool.threads} threads: then a job`);
    program.dispose();
  }
});
