// The worker pool's jobs and their products (kernels/pool.ts, pool_ops.ts,
// pool_control.ts, pool_busy.ts, kernels/split_products.ts): q8 quantisation
// and products equal the plain loops bit for bit, float32 products agree with
// float64 within float32 rounding, a product split over threads equals the
// same product on one thread bit for bit however it is cut into chunks and
// whichever thread claims them (a thread made late, the caller or a worker),
// the decode step's ops, attention in the pool, and busy cores. The pool's
// memory: pool_memory.test; programs: pool_program.test; failures and the
// keeper: pool_failures.test (their shared set-up: pool_helpers.ts).
import * as tf from '@tensorflow/tfjs';
import t, { type Test } from 'tap';
import { attendDirect } from '../kernels/attention_fused.js';
import { WorkerPool } from '../kernels/pool.js';
import { PoolOp } from '../kernels/pool_ops.js';
import { poolRegions } from '../kernels/pool_regions.js';
import { attendInPool } from '../kernels/pooled_attention.js';
import { PoolProgram } from '../kernels/pool_program.js';
import { pooledSwiglu } from '../kernels/pooled_swiglu.js';
import { qkvHeadsInto } from '../kernels/qkv_heads.js';
import { qkvRopeInPool, qkvRopeRecordBytes, setQkvRopeSlot, writeQkvRopeRecord } from '../kernels/qkv_rope.js';
import { BLOCK, FRAME, FRAME_WORDS, FRAMES_BLOCK_WORDS, ROW, ROW_WORDS } from '../kernels/decode_patch.js';
import { patchDecodeLayersRef } from '../kernels/decode_patch.ref.js';
import { inverseFrequencies, ropeAngleArrays, ropeAnglesFrom } from '../kernels/rope.js';
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
import { matrixBytes, pooledGatedProduct, pickedArgmax, pooledLinear, pooledPickingProduct, pooledProduct, readRowQ8 } from '../kernels/split_products.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';
import { bits, floatsOf, matrix, seededRandom, testPools } from './pool_helpers.js';

const backend = await initTestBackend();
const { rng, randn } = seededRandom('pool');

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

const { one, pools } = await testPools(t);

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
  // (one token reads a range's groups two at a time, half the range apart, the middle one of an odd count alone, in
  // turns of 32 columns: ranges of 1 to 7 groups, cut at either end or not, row0 a multiple of 4 as products.wat asks,
  // groups of 1, 2 and 3 turns; several tokens read a group at a time)
  const rows = 100;
  for (const [tokens, cols] of [
    [3, 64],
    [1, 64],
    [1, 32],
    [1, 96],
  ] as const) {
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
      [16, 64],
      [36, 100],
      [0, 100],
      [12, 84],
      [4, 60],
    ] as const) {
      got.fill(-1);
      one.loops.productF32(m.data, xp, out, row0, row1, cols, tokens, rows);
      const inRange = (i: number) => i % rows >= row0 && i % rows < row1;
      t.same(
        Array.from(got).filter((_, i) => inRange(i)),
        Array.from(want).filter((_, i) => inRange(i)),
        `${tokens} token${tokens > 1 ? 's' : ''}, ${cols} columns, rows [${row0}, ${row1})`,
      );
      t.ok(
        got.every((v, i) => inRange(i) || v === -1),
        'nothing outside it written',
      );
    }
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
  "loops.wat ropeAngles: ropeAnglesFrom's bits (kernels/fdlibm.ts's cos and sin, on every Node) over positions, specs and angles near multiples of pi/2; 0 past 2^20 pi/2",
  async (t) => {
    const pool = one;
    const half = 64;
    const freqs = pool.alloc(8 * half);
    const cos = pool.alloc(4 * half);
    const sin = pool.alloc(4 * half);
    const want = { cos: new Float32Array(half), sin: new Float32Array(half) };
    let compared = 0;
    let differ = 0;
    let refused = 0;
    // (float32 bits: a float64 result an ulp off shows in about one angle in 10^8, so these catch a wrong
    // reduction, quadrant or kernel, not every operation of the copy: the last digit of __kernel_cos's C6, the
    // third round of the reduction or the n = 1 case's near-pi/2 branch changed, this passes)
    /** p's angles both ways, with frequencies f (every angle in ropeAngles' range: a refusal counts) */
    const check = (p: number, f: Float64Array): void => {
      const { floats } = pool.views();
      new Float64Array(pool.memory.buffer, freqs, f.length).set(f);
      if (pool.shared.ropeAngles(p, freqs, f.length, cos, sin) === 0) {
        refused++;
        return;
      }
      ropeAnglesFrom(p, 1, f, want.cos, 0, want.sin, 0);
      for (let i = 0; i < f.length; i++) {
        compared++;
        if (!Object.is(floats[cos / 4 + i], want.cos[i]) || !Object.is(floats[sin / 4 + i], want.sin[i])) differ++;
      }
    };
    // the specs' frequencies at decode positions (scale 1 and 4)
    for (const [theta, rotaryDim] of [
      [10000, 48],
      [10000, 128],
      [500000, 64],
      [1e6, 32],
    ] as const) {
      const f = inverseFrequencies({ theta, rotaryDim, layout: 'pairs', scale: 1 });
      for (let p = 0; p < 200000; p += p < 4096 ? 1 : 97) check(p, f);
      for (let p = 0; p < 4096; p++) check(p / 4, f);
    }
    // angles of every size up to the range, and near multiples of pi/2 (the reduction's cancellations)
    const one64 = new Float64Array(half).fill(1);
    const some = new Float64Array(half);
    for (let k = 0; k < 4000; k++) {
      for (let i = 0; i < half; i++) some[i] = (rng() - 0.5) * 2 ** (40 * rng() - 20);
      check(1, some);
      for (let i = 0; i < half; i++) some[i] = rng() * 1647000;
      check(1, some);
      const m = (k * 131 + 1) * (Math.PI / 2);
      for (let i = 0; i < half; i++) some[i] = m * (1 + (i - half / 2) * 2 ** -52);
      check(1, some);
      check(
        k + 1,
        one64.map((_, i) => (Math.PI / 2) * (i + 1)),
      );
    }
    // the range's ends: the largest float64 whose high word is 0x413921fb (|x| just under 1,647,100), either sign
    const highWords = new DataView(new ArrayBuffer(8));
    highWords.setUint32(0, 0x413921fb);
    highWords.setUint32(4, 0xffffffff);
    const last = highWords.getFloat64(0);
    check(last, one64);
    check(-last, one64);
    t.equal(refused, 0, 'every angle up to the range taken');
    t.equal(differ, 0, `${compared} angles: the same bits`);
    t.ok(compared > 2e6, `${compared} compared`);
    // past the range: refused (the caller computes them), as for an infinity or NaN
    new Float64Array(pool.memory.buffer, freqs, 1)[0] = 1;
    for (const p of [1647100, -1647100, 823550 * Math.PI, Infinity, -Infinity, NaN]) t.equal(pool.shared.ropeAngles(p, freqs, 1, cos, sin), 0, `${p} refused`);
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
