// A persistent pool of worker threads that run the SIMD product loops
// (simd/products.wat), and the attention rows, row sums and SwiGLU of simd/loops.wat,
// and a decode step's other work (its input norms, head split and RoPE, and
// residual adds: PoolOp.NormOperand, QkvRope, F32Add, Q8Add, Quantize),
// on one shared WebAssembly memory.
//
// tfjs's wasm backend runs one thread in Node, and its threaded build works
// only through internals it does not support. So the pool owns its memory
// (a SharedArrayBuffer-backed WebAssembly.Memory): the weights it multiplies
// live there, every worker instantiates the loops on it, and a product is
// split by output rows, in runs that the threads claim in turn.
//
// The pool, one concept a file:
//   kernels/pool.ts          WorkerPool: its memory, run() (a job), runProgram() (a program), dispose()
//   kernels/pool_ops.ts      what a job runs: the ops (PoolOp), their loops, the one dispatch (runRows)
//   kernels/pool_control.ts  the control words, and how a job is posted, claimed and waited for
//   kernels/pool_program.ts  a program: steps run as one job, a barrier after each (a decode step)
//   kernels/pool_walker.ts   how every thread walks a program (simd/walker.wat), and why the bits hold
//   kernels/pool_worker.ts   a worker's whole program (source text, evaluated in the worker)
//   kernels/pool_keeper.ts   the keeper thread that makes and watches the workers; what breaks the pool
//   kernels/pool_busy.ts     busy cores: the workers stop spinning while other processes want the cores
//   kernels/pool_error.ts    WorkerPoolError
//   kernels/pool_scratch.ts, kernels/pool_regions.ts   operand space and freed regions in the pool's memory
//
// The memory: nothing is allocated in its low NULL_GUARD_BYTES (a pointer
// left 0 writes there), then the control words (on whole cache lines, where
// the walker reaches them), then whatever alloc() is asked for, never freed (weights,
// operands: they live as long as the model). It grows in whole 2 MB blocks
// where it was advised to use 2 MB pages (kernels/huge_pages.ts).
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { adviseHugePages, hugePageEnd, NOT_ASKED, type PageAdvice } from './huge_pages.js';
import { BusyCores, CALM_SPLIT_MIN_BYTES } from './pool_busy.js';
import {
  ARGS,
  AT_BARRIER,
  CALLER_SLICE_MS,
  CALLER_STEP,
  CALLER_WAITS,
  CLAIM,
  claimUnits,
  DONE,
  EVERY_THREAD,
  FAILED,
  FRONT_ONE,
  GENERATION,
  INDEX_BITS,
  INDEX_MASK,
  LATE_AT,
  MAX_ARGS,
  MAX_PROGRAM_STEPS,
  MAX_UNITS,
  NEVER,
  OP,
  PROGRAM_RUN,
  READY,
  ROWS,
  SLEEPING,
  SPIN_MICROS,
  SPIN_MICROS_AT,
  SPLIT_MIN_BYTES,
  STEP_ARGS,
  STEP_FLAGS,
  STEP_LEFT,
  STEP_OP,
  STEP_ROWS,
  STEP_THREAD_BYTES,
  STEP_UNIT_ROWS,
  STEP_UNITS,
  STEP_WORDS,
  STOP,
  STOP_BROKEN,
  STOP_DISPOSED,
  TAG_MASK,
  TAG_SHIFT,
  UNIT_BYTES,
  UNIT_ROWS,
} from './pool_control.js';
import { WorkerPoolError } from './pool_error.js';
import { brokenLine, firstLine, KEEPER_ANSWER_MS, KEEPER_SOURCE, KEEPER_WAITERS, MAX_WALK_FAULTS, wakeAll } from './pool_keeper.js';
import { type JobOp, type ProductLoops, productsModule, runRows, type SharedLoops, sharedLoopsModule, splitRows } from './pool_ops.js';
import { type ProgramWalker, walkerImports, walkerModule } from './pool_walker.js';
import { WORKER_SOURCE } from './pool_worker.js';

const PAGE = 65536;
/**
 * The low bytes of the pool's memory that nothing is allocated in: a job or
 * step whose pointer was left 0 writes there (up to this many bytes from
 * it), not over the control words (which lie after it), so a stray write
 * through a null pointer cannot break the protocol (before, the control
 * words at byte 64 took it: a worker failed, and the next job hung).
 */
const NULL_GUARD_BYTES = PAGE;
/** The int32 at byte 0 (in the guard): a NaN pattern no loop stores, so a write of a job's first row through a null pointer changes it (run() then throws). */
const NULL_CANARY = 0x7fbad0ff;

/** CALLER_SLICE_MS in ns, as the walker takes it (a BigInt made once, not every run). */
const CALLER_SLICE_NS = BigInt(CALLER_SLICE_MS * 1e6);
/** wasm32's limit: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;
/** The most the pool's shared memory can hold: 4 GiB. */
export const POOL_MAX_BYTES = MAX_PAGES * PAGE;

/**
 * A program as the pool runs it (kernels/pool_program.ts makes it from its
 * steps): per step its op (CALLER_STEP, -1, for a caller step), the rows
 * of each unit, its rows and units as run() cuts them, its arguments
 * (MAX_ARGS each), and a caller step's function.
 */
export interface ProgramPlan {
  readonly ops: Int32Array;
  readonly unitRows: Int32Array;
  readonly rows: Int32Array;
  readonly units: Int32Array;
  /** The bytes each op step reads (run()'s weightBytes). */
  readonly weightBytes: Float64Array;
  /** Per step: bytes from one thread's copy of its per-thread arguments to the next's, and which arguments those are (bit i: argument i). */
  readonly threadBytes: Int32Array;
  readonly threadArgs: Int32Array;
  /** Per step: 1 for an every-thread step (kernels/pool_walker.ts, "Every-thread steps"). */
  readonly everyThread: Uint8Array;
  readonly args: readonly number[][];
  readonly callers: readonly ((() => void) | undefined)[];
}

/** How a WorkerPool splits, spins and pages; and, for tests, how its threads misbehave. */
export interface WorkerPoolOptions {
  /** Jobs that read fewer bytes run on the calling thread alone (default SPLIT_MIN_BYTES; 0: every job split). */
  splitMinBytes?: number;
  /** How long the caller and the workers spin before they sleep, µs (default SPIN_MICROS; 0: never spin). */
  spinMicros?: number;
  /** false leaves the shared memory on the system's default pages (for A/B runs; default: ask for 2 MB pages, kernels/huge_pages.ts). */
  hugePages?: boolean;
  /** The least bytes a unit reads (default UNIT_BYTES, 1 with splitMinBytes 0). */
  unitBytes?: number;
  /** (tests) Thread i (0: the caller) waits lateMicros[i] µs after each job is posted before it claims, as a thread preempted or woken late would. */
  lateMicros?: readonly number[];
  /**
   * (tests) A worker whose unit fails dies holding its claim instead of
   * counting it: its thread exits (process.exit), throws an uncaught error,
   * or is terminated (by the keeper, while it waits); or it holds its claim
   * and the keeper dies instead: an uncaught error there ('keeper throws'),
   * or its heap (16 MB for this) filled until Node ends it ('keeper out of
   * memory').
   */
  diesOnFailure?: 'exit' | 'throw' | 'terminate' | 'keeper throws' | 'keeper out of memory';
  /**
   * (tests) The workers are given the walker's module in place of the
   * products loops', which does not link against the loops' imports: each
   * fails to instantiate its WebAssembly as it starts.
   */
  unlinkableWorkers?: boolean;
}

export class WorkerPool {
  /** The shared memory the weights and the products' operands live in. */
  readonly memory: WebAssembly.Memory;
  /** Threads a large product is split over, the calling thread included. */
  readonly threads: number;
  /** The loops on the calling thread. */
  readonly loops: ProductLoops;
  /** loops.wat's pool jobs on the calling thread. */
  readonly shared: SharedLoops;
  /** The keeper (see KEEPER_SOURCE), which makes and watches the workers; none on one thread. */
  private readonly keeper: Worker | undefined;
  /** Where the keeper posts the line of a worker gone (read by an event, or at once by the call that finds STOP_BROKEN). */
  private readonly reports: MessagePort | undefined;
  /** Resolves once the keeper has exited (every worker with it). */
  private readonly exited: Promise<void>;
  /** The control words, in the shared memory at controlAt (bytes): kernels/pool_control.ts. */
  private readonly control: Int32Array;
  private readonly controlAt: number;
  /** The int32 at byte 0: NULL_CANARY unless a job wrote through a null pointer (see NULL_GUARD_BYTES). */
  private readonly nullGuard: Int32Array;
  /** Where the walker adds a run's per-step times for programTimes (two float64 a step). */
  private readonly timesAt: number;
  /** Each thread's line (64 bytes; the caller's first) where the walker copies a step's arguments with its per-thread ones moved to its copy (walker.wat $argsOf). */
  private readonly ownArgsAt: number;
  /** The program walker on this thread (simd/walker.wat). */
  private readonly walker: ProgramWalker;
  /** The plan whose caller steps the walker's callerStep runs, and the first error of the run. */
  private walkPlan: ProgramPlan | undefined;
  private walkFailed = false;
  private walkError: unknown;
  /** Where the program steps' words start in the control array (see STEP_WORDS). */
  private readonly programAt: number;
  /** The keeper's two words in the control array: the one its async waiter waits on, then its answers (see probeKeeper). */
  private readonly keeperAt: number;
  /** Probes that woke the keeper (probeKeeper), and when the last did. */
  private keeperWakes = 0;
  private keeperWokenAt = 0;
  /** The program whose steps the control array holds (the last one run). */
  private loadedPlan: ProgramPlan | undefined;
  /** True while a program runs (its caller steps' jobs then run on this thread alone). */
  private inProgram = false;

  /**
   * For benchmarks (bench/profile_decode.ts): when set, every program run
   * split over the threads counts itself, and adds per op step the calling
   * thread's ms in its own claims (from the step before's barrier on) and
   * at the step's barrier; caller steps are not timed. Costs two clock
   * readings a step. With `alone` set (a count, from 0), a program run on
   * this thread alone (one thread; or the workers not ready, or nested in
   * another's caller step) counts itself there instead of in runs, and adds
   * each step's whole time to own (barrier 0), caller steps included (op
   * -1; a program nested in another's caller step adds to the same step
   * indices): bench/step_phases.ts's one-thread table. Off, it costs one
   * branch a program run alone.
   */
  programTimes: { runs: number; own: number[]; barrier: number[]; ops: number[]; alone?: number } | undefined;
  private top = 0;
  private readonly started: Promise<void>;
  private disposed = false;
  /** Why the pool can no longer be used (disposed, or broken: kernels/pool_keeper.ts): what run and runProgram throw. */
  private unusable: string | undefined;
  /** The last job's tag (CLAIM's top bits). */
  private tag = 0;
  /** views()'s two views, of the buffer they were made over. */
  private memoryViews: { floats: Float32Array; ints: Int32Array } | undefined;
  /** The busy-cores watch (kernels/pool_busy.ts). */
  private readonly busy: BusyCores;

  /** Jobs that read fewer bytes run on the calling thread alone; larger ones are split (0: every job, however small, busy cores or not; for tests). */
  readonly splitMinBytes: number;

  /** The least bytes (of weights, for a product) a unit reads (UNIT_BYTES by default, 1 with splitMinBytes 0; 1 makes every row group a unit, for tests). */
  readonly unitBytes: number;

  /** How long the caller and the workers spin before they sleep (0: never spin). */
  readonly spinMicros: number;

  /** Whether the shared memory asked for 2 MB pages, or why not (kernels/huge_pages.ts). */
  readonly pageAdvice: PageAdvice;

  /** threads: 1 runs every product on the calling thread (no workers); see WorkerPoolOptions. */
  constructor(threads: number, options: WorkerPoolOptions = {}) {
    this.splitMinBytes = options.splitMinBytes ?? SPLIT_MIN_BYTES;
    this.spinMicros = options.spinMicros ?? SPIN_MICROS;
    // splitMinBytes 0 splits every job (the tests' pools, on tiny shapes): units of a row group, not UNIT_BYTES
    this.unitBytes = options.unitBytes ?? (this.splitMinBytes === 0 ? 1 : UNIT_BYTES);
    if (!(this.spinMicros >= 0 && this.spinMicros <= 1e6)) throw new RangeError(`WorkerPool: spinMicros must be in 0..1e6, got ${this.spinMicros}`);
    if (!(this.unitBytes >= 1)) throw new RangeError(`WorkerPool: unitBytes must be at least 1, got ${this.unitBytes}`);
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerPool: threads must be a positive integer, got ${threads}`);
    this.threads = threads;
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    // before anything is written: a page's size is fixed when it is first touched
    this.pageAdvice = options.hugePages === false ? NOT_ASKED : adviseHugePages(this.memory.buffer, MAX_PAGES * PAGE);
    // and the first 2 MB block mapped whole before its first byte is written (the canary below), as alloc grows the others:
    // written while only the memory's first 64 KB were mapped, it stayed on 4 KB pages, and with it the first matrices placed
    const firstBlockEnd = hugePageEnd(this.pageAdvice, this.memory.buffer.byteLength, MAX_PAGES * PAGE);
    if (firstBlockEnd > this.memory.buffer.byteLength) this.memory.grow((firstBlockEnd - this.memory.buffer.byteLength) / PAGE);
    const module = productsModule();
    this.loops = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as ProductLoops;
    // V8 runs each function of these modules as baseline code (Liftoff) until it has run a while, then as optimised
    // code in every instance: attendRow over 128 entries 2.4 µs a call for its first ~1000 calls, 0.9 after; a 15M f32
    // decode's attention is 55 µs a token over a process's tokens 2..129 against 41 later, 43 with V8 compiling
    // everything up front (--no-wasm-dynamic-tiering; bench/RESULTS.md "run.c's step by phase"). Calling the loops
    // here until they tier up moves that baseline time to start-up more than it saves: V8 tiers a function up once its
    // own loops and returns have spent a budget (~1.8 MB of its code run), small inputs or large. 4000 calls each of
    // the attention, norm, qkvRope, pick and patch loops on 1 KB of scratch (2.9-3.9 ms at placement) took the cold
    // window's attention from 64 to 49 µs a token, 1.9 ms over its 128 tokens; tokens/s 1.02-1.05x against an A/A of
    // 1.02-1.04 (bench/RESULTS.md "Cold start: the WebAssembly loops tiered up at placement"): left out. On the
    // workers instead, while this thread loads the model (the TurboFan code serves this thread's instances too: its
    // first attendRow calls 0.8 µs, not 1.9-124): the cold window's attention + qkvRope fell 12-16 µs a token (2 ms
    // over 128 tokens), but the load read 125.4 ms against 117.3 / 122.0 (A/A) on 2 cores, the warm-up and V8's
    // compiles beside the loader, and tokens/s stayed within the A/A; a small model whose load ends before the workers
    // start had its first token 2.5 ms slower unless the warm-up stopped at placement's end (bench/RESULTS.md "Cold
    // start: the loops tiered up on the workers while the model loads", with how it was built): left out too.
    this.shared = new WebAssembly.Instance(sharedLoopsModule(), { env: { memory: this.memory } }).exports as unknown as SharedLoops;
    this.walker = new WebAssembly.Instance(walkerModule(), {
      env: walkerImports(
        this.memory,
        this.loops,
        this.shared,
        (step) => this.callerStep(step),
        () => this.probeKeeper(),
      ),
    }).exports as unknown as ProgramWalker;
    this.keeperAt = LATE_AT + threads;
    this.programAt = Math.ceil((this.keeperAt + 2) / STEP_WORDS) * STEP_WORDS;
    // The control words in the shared memory, where the walker reaches them,
    // on whole cache lines (a line past the last step's: its LEFT word). A
    // view of a shared memory's buffer stays valid when the memory grows.
    const controlWords = this.programAt + STEP_WORDS * (MAX_PROGRAM_STEPS + 1);
    // nothing at the null pointer's low bytes (NULL_GUARD_BYTES), the
    // control words after them, the canary at byte 0
    this.top = NULL_GUARD_BYTES;
    this.nullGuard = new Int32Array(this.memory.buffer, 0, 1);
    this.nullGuard[0] = NULL_CANARY;
    this.controlAt = Math.ceil(this.alloc(4 * controlWords + 64) / 64) * 64;
    this.control = new Int32Array(this.memory.buffer, this.controlAt, controlWords);
    this.busy = new BusyCores(this.control, this.spinMicros, threads);
    this.timesAt = this.alloc(16 * MAX_PROGRAM_STEPS);
    this.ownArgsAt = Math.ceil(this.alloc(64 * threads + 64) / 64) * 64; // (a line a thread)
    this.control[SPIN_MICROS_AT] = Math.round(this.spinMicros);
    const late = options.lateMicros ?? [];
    for (let i = 0; i < threads; i++) this.control[LATE_AT + i] = Math.max(0, Math.round(late[i] ?? 0));
    if (threads === 1) {
      this.started = this.exited = Promise.resolve();
      return;
    }
    const keeper = this.startKeeper(module, controlWords, options);
    this.keeper = keeper.thread;
    this.reports = keeper.reports;
    this.exited = keeper.exited;
    this.started = keeper.started;
  }

  /**
   * The keeper thread (kernels/pool_keeper.ts), which makes the workers
   * (each with its data: the memory, the modules, where the control words
   * lie, its index) and watches them; `exited` resolves once it has exited,
   * `started` once every worker has started (or the keeper ended first).
   */
  private startKeeper(
    module: WebAssembly.Module,
    controlWords: number,
    options: WorkerPoolOptions,
  ): { thread: Worker; reports: MessagePort; exited: Promise<void>; started: Promise<void> } {
    const threads = this.threads;
    const data = [];
    for (let index = 1; index < threads; index++) {
      data.push({
        memory: this.memory,
        module: options.unlinkableWorkers === true ? walkerModule() : module,
        sharedLoopsModule: sharedLoopsModule(),
        walkerModule: walkerModule(),
        controlAt: this.controlAt,
        controlWords,
        index,
        generation: 0,
        threads,
        programAt: this.programAt,
        ownArgsAt: this.ownArgsAt,
        dies: options.diesOnFailure,
      });
    }
    // the workers, made by the keeper
    const { port1: reports, port2 } = new MessageChannel();
    const keeper = new Worker(KEEPER_SOURCE, {
      eval: true,
      execArgv: [], // not the parent's: --input-type=module would make this script a module, without require
      workerData: {
        source: WORKER_SOURCE,
        data,
        reports: port2,
        memory: this.memory,
        controlAt: this.controlAt,
        controlWords,
        programAt: this.programAt,
        keeperAt: this.keeperAt,
        threads,
      },
      transferList: [port2],
      // (tests: a keeper that runs out of memory, at once)
      resourceLimits: options.diesOnFailure === 'keeper out of memory' ? { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } : undefined,
    });
    // a worker gone, learnt between calls (a call that finds STOP_BROKEN reads the line itself)
    reports.on('message', (line) => (this.unusable ??= brokenLine(String(line))));
    reports.unref();
    // The keeper's own error (uncaught there, or out of memory): heard here,
    // where an 'error' event with no listener would throw; its line if the
    // keeper posted none.
    let keeperError: unknown;
    keeper.on('error', (e) => (keeperError = e));
    const exited = new Promise<void>((resolve) =>
      keeper.once('exit', (code) => {
        // gone before dispose (terminated, or it broke the pool, whose line comes first)
        if (!this.disposed && this.unusable === undefined) {
          const report = receiveMessageOnPort(reports);
          const how = keeperError !== undefined ? `ended (${firstLine(keeperError)})` : `exited (exit code ${code})`;
          this.unusable = brokenLine(report === undefined ? `the keeper thread ${how}` : String(report.message));
        }
        resolve();
      }),
    );
    // The keeper keeps the process alive only until every worker has
    // started (so that ready() can resolve); from then on it never does. One
    // that dies on start-up (its WebAssembly not instantiated, say) breaks
    // the pool before the keeper says ready: every call from then on throws
    // (before, calls run on this thread alone, as before any worker starts).
    const started = new Promise<void>((resolve) => {
      keeper
        .once('message', () => {
          if (!this.disposed) keeper.unref(); // (disposed before: held until it exits, for whoever awaits dispose)
          if (Atomics.load(this.control, STOP) === STOP_BROKEN) this.noteBroken();
          resolve();
        })
        .once('exit', () => resolve());
    });
    return { thread: keeper, reports, exited, started };
  }

  /**
   * Resolves once every worker has started. Products before then run on the
   * calling thread alone, so awaiting this is needed only to be sure that
   * they are split (tests, benchmarks).
   */
  ready(): Promise<void> {
    return this.started;
  }

  /** Times the workers were told to stop spinning for a while because the process got too little CPU time (kernels/pool_busy.ts): for tests and benchmarks. */
  get calmPeriods(): number {
    return this.busy.periods;
  }

  /** Bytes allocated in the shared memory so far. */
  get allocatedBytes(): number {
    return this.top;
  }

  /** Reserve `bytes` (16-byte aligned) in the shared memory; returns its offset. Never freed: the pool lives as long as its model. */
  alloc(bytes: number): number {
    const offset = Math.ceil(this.top / 16) * 16;
    const end = offset + bytes;
    if (end > MAX_PAGES * PAGE) {
      throw new RangeError(`WorkerPool: ${(end / 2 ** 30).toFixed(2)} GiB asked of a shared memory that holds at most 4 GiB (wasm32)`);
    }
    const have = this.memory.buffer.byteLength;
    // in whole 2 MB blocks when advised: a block first written while only partly mapped stays on 4 KB pages
    if (end > have) this.memory.grow(Math.ceil((hugePageEnd(this.pageAdvice, end, MAX_PAGES * PAGE) - have) / PAGE));
    this.top = end;
    return offset;
  }

  /** A view of the shared memory; take a fresh one after any alloc (the buffer object changes when it grows). */
  bytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  /**
   * The whole shared memory as floats and as int32s: the same two views
   * until the memory grows (then new ones, over its new buffer). A decode
   * step's products and attention write their operands through them
   * instead of making views of their own, about a microsecond apiece.
   */
  views(): { floats: Float32Array; ints: Int32Array } {
    const buffer = this.memory.buffer;
    if (this.memoryViews?.floats.buffer !== buffer) this.memoryViews = { floats: new Float32Array(buffer), ints: new Int32Array(buffer) };
    return this.memoryViews;
  }

  /**
   * Run a product over `rows` output rows: `args` are the loop's arguments
   * without row0/row1 (see ProductLoops; for Attend, SumsOfExps and Swiglu, those of
   * SharedLoops without the range, Attend's scores as a base and bytes per
   * thread; for Q8Gated, see pool_ops.ts GATED_SCRATCH_FLOATS; for F32Pick and
   * Q8Pick, PICK_RECORD_BYTES). Split over the threads
   * when the bytes it reads (`weightBytes`: a product's weights times its
   * tokens) are at least splitMinBytes and
   * make at least two units of unitBytes, else on this thread alone. A
   * split job's units (whole row groups) are claimed by the threads in
   * turn (kernels/pool_control.ts); the results are the same bits however the
   * rows fall to the threads.
   */
  run(op: JobOp, args: readonly number[], rows: number, weightBytes: number): void {
    if (this.unusable !== undefined) throw new WorkerPoolError(this.unusable);
    // (more would overwrite the words after the job's arguments: see the control layout)
    if (args.length > MAX_ARGS) throw new RangeError(`WorkerPool: a job takes at most ${MAX_ARGS} arguments besides its row range, got ${args.length}`);
    const unitRows = this.unitRowsOf(op, rows, weightBytes);
    // Until every worker has started, the calling thread works alone: it must
    // not sleep on a worker whose start-up may need this thread's event loop
    // (module hooks such as a test runner's are served from there).
    if (!this.inProgram) this.nullGuard[0] = NULL_CANARY; // (changed by a job that failed: that one threw)
    const alone = unitRows === 0 || Atomics.load(this.control, READY) !== this.threads - 1 || this.threads === 1 || this.inProgram;
    // (one clock reading for the watch, the split and its spin bound: a
    // reading costs about 45 ns, and a decode step that runs without a
    // program, or a program's steps while the cores are busy, posts some 30)
    const started = alone ? 0 : performance.now();
    if (alone || (this.splitMinBytes > 0 && this.busy.coresBusy(started) && weightBytes < CALM_SPLIT_MIN_BYTES)) {
      this.runRange(op, args, 0, rows);
      this.checkNullGuard();
      return;
    }
    this.runSplit(op, args, rows, unitRows, started);
    this.busy.splitEnded(started);
    this.checkNullGuard();
  }

  /** After a job or program (not one inside a program's caller step: the program checks): throws if it wrote at byte 0 (a pointer left 0), the canary put back. */
  private checkNullGuard(): void {
    if (this.inProgram || this.nullGuard[0] === NULL_CANARY) return;
    this.nullGuard[0] = NULL_CANARY;
    throw new Error('WorkerPool: a job wrote at byte 0 of the pool memory: one of its pointers was left 0');
  }

  /**
   * Rows in each unit of a job as run() cuts it: whole row groups
   * (splitRows), reading at least unitBytes (the pool's, or as given), at
   * most MAX_UNITS units; 0 where the job runs as one (under splitMinBytes,
   * or under two units).
   */
  unitRowsOf(op: JobOp, rows: number, weightBytes: number, unitBytes = this.unitBytes): number {
    const groupRows = splitRows(op);
    const groups = Math.ceil(rows / groupRows);
    const unitGroups = Math.max(Math.ceil(groups / MAX_UNITS), Math.ceil((unitBytes * groups) / Math.max(1, weightBytes)));
    return groups < 2 * unitGroups || weightBytes < this.splitMinBytes ? 0 : groupRows * unitGroups;
  }

  /**
   * Run a program's steps in order as one job (kernels/pool_program.ts
   * builds the plan; kernels/pool_walker.ts runs it): every thread walks the
   * steps, claims units of each, and waits at its barrier; a caller step
   * runs on this thread while the workers wait. On this thread alone (every
   * step in order) with one thread, before the workers have started, and
   * inside another program's caller step; while the cores are busy
   * (kernels/pool_busy.ts), step by step as run() jobs. Throws after the run has closed, as run() does: this thread's
   * error, else 'a worker failed'; the steps after a failure are not run.
   */
  runProgram(plan: ProgramPlan): void {
    if (this.unusable !== undefined) throw new WorkerPoolError(this.unusable);
    const steps = plan.ops.length;
    // (more would run past the control array's step words)
    if (steps > MAX_PROGRAM_STEPS) throw new RangeError(`WorkerPool: a program has at most ${MAX_PROGRAM_STEPS} steps, got ${steps}`);
    // The rare paths are methods of their own: V8 runs this function as
    // bytecode through a process's first ~230 decode tokens, then compiles
    // it on a background thread that takes one of the pool's cores; what it
    // never calls it neither runs nor compiles there.
    // (One thread walks alone here in JavaScript: the walker, walking with
    // no workers, measured 0.97-0.98x this warm (15M q8, one process, A/A
    // 0.99) and cold no different within the spread of fresh processes, s25.)
    const alone = this.threads === 1 || this.inProgram || Atomics.load(this.control, READY) !== this.threads - 1;
    if (alone) return this.runProgramAlone(plan, steps);
    const started = performance.now();
    if (!this.inProgram) this.nullGuard[0] = NULL_CANARY; // (as run())
    if (this.splitMinBytes > 0 && this.busy.coresBusy(started)) return this.runProgramStepwise(plan, steps);
    const c = this.control;
    if (this.loadedPlan !== plan) this.loadPlan(plan, steps);
    // each step's LEFT and claim word (plain stores: kernels/pool_walker.ts), then the run opens (PROGRAM_RUN)
    const tag = (this.tag = (this.tag + 1) & TAG_MASK);
    const tagBits = tag << TAG_SHIFT;
    this.walker.arm(this.controlAt + 4 * this.programAt, tagBits, steps);
    Atomics.store(c, PROGRAM_RUN, tagBits | steps);
    Atomics.add(c, GENERATION, 1);
    if (Atomics.load(c, SLEEPING) !== 0) Atomics.notify(c, GENERATION);
    const late = c[LATE_AT]!;
    if (late > 0) Atomics.wait(c, NEVER, 0, late / 1000);
    // the walk (simd/walker.wat); a unit of this thread that traps unwinds
    // it: the claim is counted here, FAILED set, and the walk goes on from
    // that step (the units from then on counted, not run), so the run closes
    this.inProgram = true;
    this.walkPlan = plan;
    this.walkFailed = false;
    this.walkError = undefined;
    let walked: number; // 0: the walk left the run for STOP (the pool broke), or the pool was broken here
    const times = this.programTimes;
    if (times !== undefined) {
      times.runs++;
      new Float64Array(this.memory.buffer, this.timesAt, 2 * steps).fill(0);
    }
    try {
      for (let from = 0, faults = 0; ;) {
        try {
          walked = this.walker.walk(
            this.controlAt,
            this.controlAt + 4 * this.programAt,
            tag,
            steps,
            from,
            0,
            this.threads,
            this.spinMicros / 1000,
            CALLER_SLICE_NS, // (its sleeps in slices: STOP looked at after each)
            times === undefined ? 0 : this.timesAt,
            this.ownArgsAt,
          );
          break;
        } catch (e) {
          // (-1: the fault came before this walk set its step, at the call)
          const step = this.walker.step();
          if (step >= 0) from = step;
          if (!this.walkFaulted(e, from, tag) && ++faults === MAX_WALK_FAULTS) {
            // outside a claim (the walk's own code: nothing held, so it walked on from its step), and again: give up
            this.breakPool(
              `WorkerPool: the calling thread's walk of a program failed ${faults} times outside its units (${firstLine(e)}): the pool is unusable`,
            );
            walked = 0;
            break;
          }
        }
      }
    } finally {
      this.inProgram = false;
      this.walkPlan = undefined;
      Atomics.store(c, PROGRAM_RUN, tagBits); // closed: no steps
    }
    const failed = this.walkFailed;
    const error = this.walkError;
    this.walkError = undefined;
    if (walked === 0) throw this.brokenError();
    if (times !== undefined) this.addProgramTimes(plan, steps, times);
    this.busy.splitEnded(started);
    const workerFailed = Atomics.exchange(c, FAILED, 0) !== 0;
    if (workerFailed && Atomics.load(c, STOP) !== 0) throw this.brokenError(); // (as runSplit)
    if (failed) throw error;
    if (workerFailed) throw new Error('WorkerPool: a worker failed to run its share of a program');
    this.checkNullGuard();
  }

  /** runProgram on this thread alone: every step in order. */
  private runProgramAlone(plan: ProgramPlan, steps: number): void {
    if (!this.inProgram) this.nullGuard[0] = NULL_CANARY; // (as run())
    // (timed: a method of its own, so the untimed loop carries no clock readings)
    if (this.programTimes?.alone !== undefined) this.runStepsTimed(plan, steps, this.programTimes);
    else
      for (let s = 0; s < steps; s++) {
        const op = plan.ops[s]!;
        if (op === CALLER_STEP) plan.callers[s]!();
        else this.runRange(op, plan.args[s]!, 0, plan.rows[s]!);
      }
    this.checkNullGuard();
  }

  /** runProgramAlone's steps with programTimes.alone set: each step's whole time into own (see programTimes). */
  private runStepsTimed(plan: ProgramPlan, steps: number, times: NonNullable<WorkerPool['programTimes']>): void {
    times.alone!++;
    for (let s = 0; s < steps; s++) {
      const op = plan.ops[s]!;
      const started = performance.now();
      if (op === CALLER_STEP) plan.callers[s]!();
      else this.runRange(op, plan.args[s]!, 0, plan.rows[s]!);
      times.own[s] = (times.own[s] ?? 0) + performance.now() - started;
      times.barrier[s] = times.barrier[s] ?? 0;
      times.ops[s] = op;
    }
  }

  /**
   * runProgram while the cores are busy: the steps as run() jobs, as before
   * programs (those of CALM_SPLIT_MIN_BYTES or more still split, the
   * workers woken for them; the rest on this thread).
   */
  private runProgramStepwise(plan: ProgramPlan, steps: number): void {
    for (let s = 0; s < steps; s++) {
      const op = plan.ops[s]!;
      if (op === CALLER_STEP) plan.callers[s]!();
      else this.run(op, plan.args[s]!, plan.rows[s]!, plan.weightBytes[s]!);
    }
  }

  /** A plan's steps into the control words (runProgram, when the plan run last was another). */
  private loadPlan(plan: ProgramPlan, steps: number): void {
    const c = this.control;
    for (let s = 0, at = this.programAt; s < steps; s++, at += STEP_WORDS) {
      c[at + STEP_OP] = plan.ops[s]!;
      c[at + STEP_UNIT_ROWS] = plan.unitRows[s]!;
      c[at + STEP_ROWS] = plan.rows[s]!;
      c[at + STEP_UNITS] = plan.everyThread[s] ? 0 : plan.units[s]!;
      c[at + STEP_THREAD_BYTES] = plan.threadBytes[s]!;
      c[at + STEP_FLAGS] = plan.threadArgs[s]! | (plan.everyThread[s] ? EVERY_THREAD : 0);
      const args = plan.args[s]!;
      for (let i = 0; i < MAX_ARGS; i++) c[at + STEP_ARGS + i] = args[i] ?? 0;
    }
    this.loadedPlan = plan;
  }

  /**
   * The calling thread's walk of the run of `tag` threw at step `from`: the
   * error kept (the run's first) for runProgram to throw, FAILED set, and a
   * claim in flight counted; false where none was (a fault of the walk
   * itself).
   */
  private walkFaulted(e: unknown, from: number, tag: number): boolean {
    const take = this.walker.take();
    if (!this.walkFailed) {
      this.walkFailed = true;
      this.walkError = e;
    }
    Atomics.store(this.control, FAILED, 1);
    if (take === 0) return false;
    this.finishUnits(this.programAt + STEP_WORDS * from + STEP_LEFT, tag, take);
    return true;
  }

  /** A split run's times (programTimes: each step's own claims and barrier, from the walk), added up per step. */
  private addProgramTimes(plan: ProgramPlan, steps: number, times: NonNullable<WorkerPool['programTimes']>): void {
    const ms = new Float64Array(this.memory.buffer, this.timesAt, 2 * steps);
    for (let s = 0; s < steps; s++) {
      const op = plan.ops[s]!;
      if (op === CALLER_STEP || plan.everyThread[s]) continue; // (an every-thread step: in the claims of the step after)
      times.own[s] = (times.own[s] ?? 0) + ms[2 * s]!;
      times.barrier[s] = (times.barrier[s] ?? 0) + ms[2 * s + 1]!;
      times.ops[s] = op;
    }
  }

  /** Patch argument `index` of step `step` of a plan (between its runs; or, from a caller step, of a later step). */
  setProgramArg(plan: ProgramPlan, step: number, index: number, value: number): void {
    plan.args[step]![index] = value;
    if (this.loadedPlan === plan) this.control[this.programAt + STEP_WORDS * step + STEP_ARGS + index] = value;
  }

  /** Forget a plan (its program disposed): the next program run writes its own steps. */
  unloadProgram(plan: ProgramPlan): void {
    if (this.loadedPlan === plan) this.loadedPlan = undefined;
  }

  /** finish of the worker's source: counts n finished units of the step whose LEFT word is at `left`, waking the threads at its barrier when they were the last. */
  private finishUnits(left: number, tag: number, n: number): void {
    const c = this.control;
    if (Atomics.sub(c, left, n) === ((tag << TAG_SHIFT) | n) && Atomics.load(c, AT_BARRIER) !== 0) Atomics.notify(c, left);
  }

  /** The walker's caller step `step` of the running plan: its error (the first of the run) kept for runProgram to throw, FAILED set. */
  private callerStep(step: number): void {
    try {
      this.walkPlan!.callers[step]!();
    } catch (e) {
      if (!this.walkFailed) {
        this.walkFailed = true;
        this.walkError = e;
      }
      Atomics.store(this.control, FAILED, 1);
    }
  }

  /** Run `rows` rows in units of `unitRows`, claimed by every thread in turn; `started`: the clock when run() took the job. */
  private runSplit(op: JobOp, args: readonly number[], rows: number, unitRows: number, started: number): void {
    const c = this.control;
    const units = Math.ceil(rows / unitRows);
    // the descriptor, then DONE, then the claim word opens the job
    c[OP] = op;
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i]!;
    c[UNIT_ROWS] = unitRows;
    c[ROWS] = rows;
    Atomics.store(c, DONE, 0);
    this.tag = (this.tag + 1) & TAG_MASK;
    Atomics.store(c, CLAIM, (this.tag << TAG_SHIFT) | units);
    Atomics.add(c, GENERATION, 1);
    if (Atomics.load(c, SLEEPING) !== 0) Atomics.notify(c, GENERATION);
    const late = c[LATE_AT]!;
    if (late > 0) Atomics.wait(c, NEVER, 0, late / 1000);
    // Claim from the front until none is left. After an error, go on
    // claiming without running, so that the job closes and the workers' last
    // claims are waited for (the next job reuses their memory).
    let own = 0; // units
    let error: unknown;
    let failed = false;
    for (;;) {
      const word = Atomics.load(c, CLAIM);
      const front = (word >>> INDEX_BITS) & INDEX_MASK;
      const left = (word & INDEX_MASK) - front;
      if (left <= 0) break;
      const take = claimUnits(left, this.threads);
      if (Atomics.compareExchange(c, CLAIM, word, word + take * FRONT_ONE) !== word) continue;
      own += take;
      if (failed) continue;
      try {
        this.runRange(op, args, front * unitRows, Math.min(rows, (front + take) * unitRows));
      } catch (e) {
        error = e;
        failed = true;
      }
    }
    // Wait for the units the workers claimed (each claim already running):
    // spin for at most twice what this thread would take for the units not
    // yet done, plus 20 µs (a worker slower than that has likely lost its
    // core, which a spinning caller may be holding), then sleep.
    const claimed = units - own;
    let done = Atomics.load(c, DONE);
    if (done < claimed && this.spinMicros > 0) {
      const now = performance.now();
      const until = now + Math.min(this.spinMicros / 1000, (2 * (claimed - done) * (now - started)) / Math.max(1, own) + 0.02);
      for (let i = 1; done < claimed; i++) {
        if ((i & 63) === 0 && performance.now() > until) break;
        done = Atomics.load(c, DONE);
      }
    }
    if (done < claimed) {
      Atomics.store(c, CALLER_WAITS, 1);
      for (done = Atomics.load(c, DONE); done < claimed; done = Atomics.load(c, DONE)) {
        // (in slices: a worker gone never counts its units; nor, if the keeper went with it, does anyone say so: probeKeeper)
        if (Atomics.wait(c, DONE, done, CALLER_SLICE_MS) === 'timed-out') this.probeKeeper();
        if (Atomics.load(c, STOP) !== 0) {
          Atomics.store(c, CALLER_WAITS, 0);
          throw this.brokenError();
        }
      }
      Atomics.store(c, CALLER_WAITS, 0);
    }
    const workerFailed = Atomics.exchange(c, FAILED, 0) !== 0;
    // FAILED with STOP: the pool broke (the keeper stores both), perhaps
    // between calls, its line not yet brought by an event (unusable unset):
    // this call, and every one after it, throws that, not a worker's failure
    if (workerFailed && Atomics.load(c, STOP) !== 0) throw this.brokenError();
    if (failed) throw error;
    if (workerFailed) throw new Error('WorkerPool: a worker failed to run its share of a job');
  }

  /** Rows [row0, row1) on this thread (thread 0: its attention scores at the base). */
  private runRange(op: JobOp, a: ArrayLike<number>, row0: number, row1: number): void {
    runRows(this.loops, this.shared, op, a, row0, row1, 0);
  }

  /**
   * The pool broke during a call or before it (STOP_BROKEN, or STOP_DISPOSED
   * from a caller step): the error that call throws, its line the keeper's
   * report if no event has brought it yet (the keeper posts it before it
   * sets STOP).
   */
  private brokenError(): WorkerPoolError {
    return new WorkerPoolError(this.noteBroken());
  }

  /** The pool broke (see brokenError): its line, which every call throws from now on. */
  private noteBroken(): string {
    if (this.unusable === undefined) {
      const report = this.reports === undefined ? undefined : receiveMessageOnPort(this.reports);
      this.unusable = brokenLine(report === undefined ? 'a worker exited' : String(report.message));
    }
    return this.unusable;
  }

  /**
   * The caller's look at the keeper, after a sleep of a whole slice
   * (CALLER_SLICE_MS) while it waits for the workers' units (a job's DONE,
   * a program's barrier: the walker's `slept`). A keeper terminated or out
   * of memory runs no handler, and its workers end with it, one perhaps
   * holding a claim: nothing else would ever set STOP (kernels/pool_keeper.ts). The keeper keeps KEEPER_WAITERS async waiters on the word
   * at keeperAt, which only the end of its thread removes, and answers each
   * wake in the word after once a new waiter waits in its place. So while
   * it has answered all but fewer than KEEPER_WAITERS wakes, one waiter at
   * least waits: a notify that wakes no one says the keeper is gone, and
   * the pool breaks. Once it has left that many unanswered, the last for
   * KEEPER_ANSWER_MS, the pool breaks too.
   */
  private probeKeeper(): void {
    const c = this.control;
    if (this.keeper === undefined || Atomics.load(c, STOP) !== 0) return;
    const now = performance.now();
    if (this.keeperWakes - Atomics.load(c, this.keeperAt + 1) < KEEPER_WAITERS) {
      if (Atomics.notify(c, this.keeperAt, 1) === 1) {
        this.keeperWakes++;
        this.keeperWokenAt = now;
      } else if (Atomics.load(c, STOP) === 0) {
        // gone (unless STOP is set since: the keeper broke the pool, then ended; its line is the one)
        this.breakPool(brokenLine('the keeper thread ended (terminated, or out of memory)'));
      }
    } else if (now - this.keeperWokenAt > KEEPER_ANSWER_MS) {
      this.breakPool(brokenLine(`the keeper thread left ${KEEPER_WAITERS} probes unanswered, the last for ${KEEPER_ANSWER_MS / 1000} s`));
    }
  }

  /** Break the pool from this thread (kernels/pool_keeper.ts): `line` is what every call throws from now on. */
  private breakPool(line: string): void {
    this.unusable ??= line;
    const c = this.control;
    Atomics.store(c, FAILED, 1); // (before STOP, as the keeper does)
    if (Atomics.compareExchange(c, STOP, 0, STOP_BROKEN) === 0) wakeAll(c, this.programAt);
  }

  /**
   * Stop the workers, at once (none is ever mid-job between calls); the
   * promise resolves when every one has exited (at once if the pool broke
   * and they have already).
   */
  dispose(): Promise<void> {
    if (this.disposed) return this.exited;
    this.disposed = true;
    this.unusable ??= 'WorkerPool: used after dispose()';
    this.keeper?.ref(); // held until it has exited, so that whoever awaits this sees it
    // FAILED before STOP, as breakPool: a claim that leaves its wait for STOP
    // runs nothing (dispose from a caller step: kernels/pool_keeper.ts)
    Atomics.store(this.control, FAILED, 1);
    Atomics.compareExchange(this.control, STOP, 0, STOP_DISPOSED);
    Atomics.add(this.control, GENERATION, 1);
    Atomics.notify(this.control, GENERATION);
    return this.exited;
  }
}
