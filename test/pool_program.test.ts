// The worker pool's programs and their walker (kernels/pool_program.ts,
// pool_walker.ts, simd/walker.wat): a program's steps equal the same steps
// run one by one, bit for bit, on any thread count, with late threads,
// every-thread steps, arguments patched between runs, and stale walkers.
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import t from 'tap';
import { WorkerPool } from '../kernels/pool.js';
import { PoolOp } from '../kernels/pool_ops.js';
import { poolRegions } from '../kernels/pool_regions.js';
import { attendInPool } from '../kernels/pooled_attention.js';
import { PoolProgram, type ProgramOpStep, type ProgramStep } from '../kernels/pool_program.js';
import { WASM_BASE64 as SHARED_LOOPS_WASM } from '../kernels/simd/loops.shared.wasm.js';
import { WASM_BASE64 as PRODUCTS_WASM } from '../kernels/simd/products.wasm.js';
import { WASM_BASE64 as WALKER_WASM } from '../kernels/simd/walker.wasm.js';
import { rmsNormRows } from '../kernels/rmsnorm.js';
import { productF32Reference } from '../kernels/products.ref.js';
import { matrixBytes, type PooledMatrix } from '../kernels/split_products.js';
import { initTestBackend } from './helpers.js';
import { bits, floatsOf, matrix, seededRandom, testPools } from './pool_helpers.js';

await initTestBackend();
const { randn } = seededRandom('pool program');

// Programs (kernels/pool_program.ts): steps run as one pool job with a
// barrier after each. A program of products (f32, q8, the gated and picking
// jobs), attention and caller steps that read what the step before wrote
// equals the same steps run one by one with pool.run, bit for bit, on 1, 2
// and 3 threads, with late threads, and with arguments patched between runs.

const { one, pools } = await testPools(t);

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
  // (not t.notSame: on a difference tap writes a diff of the two arrays' 16384 lines, which took 2.5 minutes)
  t.ok(
    wantNow.some((v, i) => v !== want[i]),
    'other queries, another output',
  );
  for (let run = 0; run < 3; run++) {
    floatsOf(pool).set(queries, queriesAt / 4);
    floatsOf(pool).fill(0, outAt / 4, outAt / 4 + heads * headDim);
    program.run();
    t.same(seen, wantNow, `run ${run}: the caller step saw every head's output`);
  }
  program.dispose();
  poolRegions(pool).releaseFloats(entries);
});

// programTimes with alone set (bench/step_phases.ts's one-thread table):
// a program run alone counts itself in alone, not runs, and adds each
// step's whole time, caller steps included, to own (barrier 0); a caller
// step's time there holds the span it timed itself. Without alone, a run
// alone records nothing.
t.test('programTimes.alone: a run alone times each of its steps, caller steps included', async (t) => {
  const [rows, cols] = [16, 8];
  const w = randn(rows * cols);
  const x = randn(cols);
  const m = matrix(one, 'f32', w, rows, cols);
  const xp = one.alloc(4 * cols);
  floatsOf(one).set(x, xp / 4);
  const out = one.alloc(4 * rows);
  let callerMs = 0;
  const program = new PoolProgram(one, [
    { op: PoolOp.F32, args: [m.data, xp, out, m.stride, 1, rows], rows, weightBytes: 4 * rows * cols },
    {
      caller: () => {
        const started = performance.now();
        while (performance.now() - started < 2); // 2 ms, timed here too
        callerMs += performance.now() - started;
      },
    },
  ]);
  const off = (one.programTimes = { runs: 0, own: [] as number[], barrier: [] as number[], ops: [] as number[] });
  program.run();
  t.same(off, { runs: 0, own: [], barrier: [], ops: [] }, 'without alone: nothing recorded');
  callerMs = 0;
  const times = (one.programTimes = { runs: 0, own: [] as number[], barrier: [] as number[], ops: [] as number[], alone: 0 });
  for (let r = 0; r < 3; r++) program.run();
  one.programTimes = undefined;
  t.equal(times.alone, 3, 'three runs alone');
  t.equal(times.runs, 0, 'none split');
  t.same(times.ops, [PoolOp.F32, -1], 'the op step, then the caller step (-1)');
  t.same(times.barrier, [0, 0], 'no barriers');
  t.ok(times.own[0]! >= 0, 'the op step timed');
  t.ok(times.own[1]! >= callerMs && callerMs >= 6, `the caller step: at least the ${callerMs.toFixed(1)} ms it timed itself`);
  const want = productF32Reference(w, x, rows, cols, 1);
  t.same(Array.from(floatsOf(one).subarray(out / 4, out / 4 + rows)), Array.from(want), 'the product, as the reference');
  program.dispose();
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
