// The worker pool's failures and its keeper (kernels/pool.ts,
// pool_keeper.ts, pool_control.ts): a loop or a program's step that fails
// makes the call throw, on the caller or a worker, and leaves the pool
// usable; a worker or the keeper gone breaks the pool with a WorkerPoolError
// naming it, and every call after it throws; the caller's probes of the
// keeper; and a process with a live (or broken) pool exits by itself.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import t, { type Test } from 'tap';
import { WorkerPool } from '../kernels/pool.js';
import { type JobOp, PoolOp } from '../kernels/pool_ops.js';
import { PoolProgram, type ProgramOpStep, type ProgramStep } from '../kernels/pool_program.js';
import { productF32Reference } from '../kernels/products.ref.js';
import { pooledProduct } from '../kernels/split_products.js';
import { floatsOf, matrix, seededRandom } from './pool_helpers.js';
import { ROOT } from './paths.js';

const { randn } = seededRandom('pool failures');

const one = new WorkerPool(1);
const pool2 = new WorkerPool(2, { splitMinBytes: 0 });
t.teardown(() => Promise.all([one.dispose(), pool2.dispose()]));
await pool2.ready();

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
  const pool = pool2;
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
