// A program for the worker pool (kernels/pool.ts): a sequence of steps run
// as ONE pool job, with a barrier after each step, instead of a job per step
// with JavaScript between them (each job costs the caller about 2 µs of
// posting, claims and waiting, and the workers a look at the next job). The
// structure of llama2.c's run.c under OpenMP and of llama.cpp's graph
// compute: a model builds the program of a decode step once, and patches a
// few arguments a token (setArg: the token's embedding row, the cache
// slot's addresses, ...).
//
// A step is either
//   - a pool op (any JobOp) with its arguments, rows and bytes read, cut
//     into units as WorkerPool.run cuts that job (splitRows, unitBytes, a
//     step under splitMinBytes one unit; the program may have units of its
//     own size: a step's units only balance the threads' work, the bits do
//     not depend on them), or
//   - a caller step: a function the calling thread alone runs, while the
//     workers wait at its barrier (JavaScript work between the ops, until
//     it is a pool op of its own).
// Every thread walks the steps in order: it claims units of a step until
// none is left, then waits until all the step's units are done, then goes
// on to the next; each output row is computed by exactly one claim of one
// step, and a step starts only once the step before it is finished, so the
// results are the bits of running the steps one by one with pool.run (the
// protocol, and why a late or sleeping worker never holds the caller, are in
// kernels/pool_walker.ts).
//
// An op step may instead run on every thread (everyThread): each thread
// that takes part in the next step runs it whole, into its own copy of its
// output (perThread: arguments that are, on thread t, the argument + t
// bytes), just before its first units of that step, which read the same
// copy: no barrier between them. For a step too small to split whose
// output only the next step reads (a decode step's norms and
// quantisations: a barrier each, and one thread idle while the other ran
// it, before). The bits are those of the steps one by one, every thread's
// copy computed by the same loop from the same inputs (pool_walker.ts, "Every-
// thread steps").
import { type ProgramPlan, type WorkerPool } from './pool.js';
import { CALLER_STEP, MAX_PROGRAM_STEPS } from './pool_control.js';
import { WorkerPoolError } from './pool_error.js';
import { isJobOp, type JobOp } from './pool_ops.js';

/** What a pool op step runs: run()'s four arguments. */
export interface ProgramOpStep {
  op: JobOp;
  /** The op's arguments without the row range (at most 8), int32 as run() takes them. */
  args: readonly number[];
  rows: number;
  /** The bytes the step reads (run()'s weightBytes): how it is cut into units. */
  weightBytes: number;
  /**
   * Arguments that point into each thread's own copy of something (an
   * every-thread step's output, or the operand a step reads from one): on
   * thread t (0: the caller) argument i is args[i] + t * bytes, for each i
   * in `args`. The copies are the program's to lay out: pool.threads of
   * them, `bytes` apart. (Where the steps run one by one, as run() jobs,
   * every thread uses copy 0.)
   */
  perThread?: { args: readonly number[]; bytes: number };
  /**
   * Every thread runs this step whole (all its rows), at its first claim
   * of the step after it, instead of the threads claiming its units and
   * waiting at its barrier: no barrier of its own. For a small step (a
   * norm of one token's residual) whose output only the next step reads:
   * each thread writes its own copy (perThread, required) and the next
   * step's units read that thread's copy (perThread there too). The next
   * step must be an op step that is not an every-thread one.
   */
  everyThread?: boolean;
}

/** A step only the calling thread runs (the workers wait at its barrier). */
export interface ProgramCallerStep {
  caller: () => void;
}

export type ProgramStep = ProgramOpStep | ProgramCallerStep;

/** The most arguments an op step takes (run()'s limit). */
const MAX_STEP_ARGS = 8;

export class PoolProgram {
  readonly pool: WorkerPool;
  /** Steps in the program. */
  readonly length: number;
  private readonly plan: ProgramPlan;
  private disposed = false;

  /**
   * unitBytes: the least bytes a unit of an op step reads (default: the
   * pool's, as run() cuts its jobs). Smaller units balance a small step's
   * work better between the threads at the price of more claims
   * (bench/pool_program.ts --units).
   */
  constructor(pool: WorkerPool, steps: readonly ProgramStep[], options: { unitBytes?: number } = {}) {
    const unitBytes = options.unitBytes ?? pool.unitBytes;
    if (!(Number.isInteger(unitBytes) && unitBytes >= 1)) throw new RangeError(`PoolProgram: unitBytes must be a positive integer, got ${unitBytes}`);
    if (steps.length < 1 || steps.length > MAX_PROGRAM_STEPS)
      throw new RangeError(`PoolProgram: a program has 1 to ${MAX_PROGRAM_STEPS} steps, got ${steps.length}`);
    const n = steps.length;
    const plan = {
      ops: new Int32Array(n),
      unitRows: new Int32Array(n),
      rows: new Int32Array(n),
      units: new Int32Array(n),
      weightBytes: new Float64Array(n),
      threadBytes: new Int32Array(n),
      threadArgs: new Int32Array(n),
      everyThread: new Uint8Array(n),
      args: [] as number[][],
      callers: [] as ((() => void) | undefined)[],
    };
    steps.forEach((step, s) => {
      if ('caller' in step) {
        if (typeof step.caller !== 'function') throw new TypeError(`PoolProgram: step ${s}'s caller is not a function`);
        plan.ops[s] = CALLER_STEP;
        plan.args.push([]);
        plan.callers.push(step.caller);
        return;
      }
      const { op, args, rows, weightBytes } = step;
      // (an op the dispatch lacks would trap in the walker, on whichever thread claimed it)
      if (!isJobOp(op)) throw new RangeError(`PoolProgram: step ${s}'s op ${String(op)} is not a pool op (PoolOp: a JobOp)`);
      if (args.length > MAX_STEP_ARGS)
        throw new RangeError(`PoolProgram: step ${s} takes at most ${MAX_STEP_ARGS} arguments besides its row range, got ${args.length}`);
      if (!(Number.isInteger(rows) && rows >= 0 && rows < 2 ** 31))
        throw new RangeError(`PoolProgram: step ${s}'s rows must be a non-negative integer, got ${rows}`);
      if (!(weightBytes >= 0)) throw new RangeError(`PoolProgram: step ${s}'s weightBytes must be non-negative, got ${weightBytes}`);
      if (step.perThread !== undefined) {
        const { args: which, bytes } = step.perThread;
        if (!(Number.isInteger(bytes) && bytes >= 0 && bytes * (pool.threads - 1) < 2 ** 31))
          throw new RangeError(`PoolProgram: step ${s}'s perThread.bytes must be a non-negative integer (threads x bytes within 2^31), got ${bytes}`);
        for (const i of which) {
          if (!(Number.isInteger(i) && i >= 0 && i < args.length))
            throw new RangeError(`PoolProgram: step ${s}'s perThread.args must be indices of its ${args.length} arguments, got ${i}`);
          plan.threadArgs[s]! |= 1 << i;
        }
        plan.threadBytes[s] = bytes;
      }
      if (step.everyThread === true) {
        const next = steps[s + 1];
        if (next === undefined || 'caller' in next || next.everyThread === true)
          throw new RangeError(`PoolProgram: step ${s} runs on every thread: the step after it must be an op step that does not`);
        if (step.perThread === undefined || step.perThread.args.length === 0)
          throw new RangeError(`PoolProgram: step ${s} runs on every thread: it needs perThread arguments (each thread's own output)`);
        plan.everyThread[s] = 1;
      }
      const unitRows = pool.unitRowsOf(op, rows, weightBytes, unitBytes) || Math.max(1, rows); // 0: one unit, as run() runs it alone
      plan.ops[s] = op;
      plan.unitRows[s] = unitRows;
      plan.rows[s] = rows;
      plan.units[s] = Math.ceil(rows / unitRows);
      plan.weightBytes[s] = weightBytes;
      const copy = new Array<number>(MAX_STEP_ARGS).fill(0);
      args.forEach((v, i) => (copy[i] = v | 0));
      plan.args.push(copy);
      plan.callers.push(undefined);
    });
    this.pool = pool;
    this.length = n;
    this.plan = plan;
  }

  /** Units step `step` is cut into (0 for a caller step, and for an every-thread step, which is not cut): for tests and benchmarks. */
  unitsOf(step: number): number {
    return this.plan.everyThread[step] ? 0 : this.plan.units[step]!;
  }

  /**
   * Set argument `index` of op step `step` to `value` (an int32, as run()'s
   * arguments) for the runs from now on. Call it between runs, or from a
   * caller step for a step after it (no thread reaches that step before the
   * caller step is done).
   */
  setArg(step: number, index: number, value: number): void {
    if (this.disposed) throw new WorkerPoolError('PoolProgram: used after dispose()');
    if (!(Number.isInteger(step) && step >= 0 && step < this.length) || this.plan.ops[step] === CALLER_STEP) {
      throw new RangeError(`PoolProgram.setArg: step ${step} is not an op step of this program of ${this.length}`);
    }
    if (!(Number.isInteger(index) && index >= 0 && index < MAX_STEP_ARGS))
      throw new RangeError(`PoolProgram.setArg: argument index ${index} outside 0..${MAX_STEP_ARGS - 1}`);
    this.pool.setProgramArg(this.plan, step, index, value | 0);
  }

  /** Argument `index` of op step `step` as the runs will see it. */
  arg(step: number, index: number): number {
    return this.plan.args[step]![index]!;
  }

  /**
   * Run every step, in order, as one pool job: the same bits as running the
   * op steps one by one with pool.run and calling the caller steps between
   * them. Throws (after the run has closed, the pool usable) the calling
   * thread's error, else 'a worker failed'; no step after a failing one runs.
   */
  run(): void {
    if (this.disposed) throw new WorkerPoolError('PoolProgram: used after dispose()');
    this.pool.runProgram(this.plan);
  }

  /** Drop the program (the pool forgets its steps); run and setArg throw from now on. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.unloadProgram(this.plan);
  }
}
