// A persistent pool of worker threads that run the SIMD product loops
// (simd/products.wat), and the attention rows, row sums and SwiGLU of simd/loops.wat,
// on one shared WebAssembly memory.
//
// tfjs's wasm backend runs one thread in Node, and its threaded build works
// only through internals it does not support. So the pool owns its memory
// (a SharedArrayBuffer-backed WebAssembly.Memory): the weights it multiplies
// live there, every worker instantiates the loops on it, and a product is
// split by output rows, the calling thread taking the first share.
//
// Synchronisation: the caller writes a job, bumps the generation and wakes
// the workers, does its own share, then waits until the pending count
// reaches zero. Both waits spin first, for a bounded time, then sleep in
// Atomics.wait:
//
//   worker  after a job, watches the generation for up to spinMicros
//           (default SPIN_MICROS, 200 µs) before it sleeps: the products of
//           a decode step come a few tens of µs apart, so during a step the
//           workers never sleep, and a step's last product (or a lone job)
//           leaves them spinning for at most the bound.
//   caller  after its own share, watches the pending count for at most
//           spinMicros and at most what its own share took, plus 20 µs
//           (the workers' shares are as large and start within a µs or
//           two), and only while no worker is asleep (one that is needs a
//           wake-up anyway), then sleeps.
//
// A wake-up from Atomics.wait costs 20-50 µs on this kind of machine (two of
// them per split product), a spin about 1 µs: without the spin a 15M
// model's products (10-30 µs each on one thread) lose when split. The spin
// costs a core while it lasts, which on busy cores is taken from whatever
// else runs (other processes, the other engines of a benchmark), and a
// spinning thread may even hold the core the thread it waits for needs. So
// it is bounded, and, since on busy cores a split product can cost more than
// the product alone, larger products are split only while splitting is
// measured to pay (SplitChoices): when it stops paying, the workers get no
// jobs, spin out their bound once and sleep. spinMicros 0 is the plain
// Atomics.wait pool (no spin at all). Calls too small to repay even a spin
// stay on the calling thread (splitMinBytes).
//
// Measured so far only on a busy machine (2 cores, load 3-13 from other
// processes): a hot loop of tiny split products took 1.7 µs each spinning
// against 9.4 sleeping; a 15M classifier product (580 µs alone) split in
// 290 µs when the worker caught it spinning, but often the worker started
// hundreds of µs late (a spinning thread is preempted at the end of its time
// slice; a sleeping one waits as long to be woken), and in decode the second
// thread did not pay with or without the spin. On the quiet machine
// (`bench/decode.ts --spin-ab`, bench/RESULTS.md, issue 10's third session)
// the same: spin / no spin 0.94-1.15 in decode, the second thread adding
// nothing there, while a block's chunked jobs ran 1.85x on two threads.
// Splitting every product of 1 MiB or more regardless of SplitChoices gave
// 110M q8 decode 1.24x, 15M 0.94x: splitting pays when the worker is
// already awake, which one call at a time cannot see.
//
// Started workers are unref'd, so they never keep the process alive, and
// dispose() stops them; a pool that is not disposed is torn down with the
// process (Ctrl-C included: the calling thread is never left waiting on a
// worker that cannot answer, since the workers only ever run the loops).
import { Worker } from 'node:worker_threads';
import { WASM_BASE64 as SHARED_LOOPS_WASM_BASE64 } from './simd/loops.shared.wasm.js';
import { WASM_BASE64 } from './simd/products.wasm.js';

/** The exports of products.wat; pointers are byte offsets into the pool's memory. */
export interface ProductLoops {
  productF32(w: number, x: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
  quantizeQ8(x: number, n: number, q: number, d: number): void;
  quantizeX16(x: number, n: number, q: number, d: number): void;
  productQ8(w: number, xq: number, xd: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
}

/** The exports of simd/loops.wat (assembled for a shared memory) that the pool runs: attention rows (kernels/pooled_attention.ts), token NLLs' sums (kernels/token_nll.ts), SwiGLU (kernels/pooled_swiglu.ts). */
export interface SharedLoops {
  attendRows(records: number, item0: number, item1: number, frames: number, valuesFromKeys: number, dim: number, scaleBits: number, s: number): void;
  sumsOfExps(x: number, row0: number, row1: number, n: number, out: number): void;
  swigluRange(x: number, row0: number, row1: number, hidden: number, out: number): void;
}

/** Which loop a pool job runs: a weight product, or another loop over rows (attention, row sums, SwiGLU). */
export const enum PoolOp {
  F32 = 0,
  Q8 = 1,
  Stop = 2,
  /** attendRows over items; its last two arguments are the scores' base and bytes per thread. */
  Attend = 3,
  /** sumsOfExps over rows. */
  SumsOfExps = 4,
  /** swigluRange over rows. */
  Swiglu = 5,
}

/** The jobs run() takes. */
export type JobOp = PoolOp.F32 | PoolOp.Q8 | PoolOp.Attend | PoolOp.SumsOfExps | PoolOp.Swiglu;

// The control array (Int32Array on its own SharedArrayBuffer).
const GENERATION = 0; // bumped once per job; the workers wait on it
const PENDING = 1; // workers still running the current job; the caller waits on it
const OP = 2;
const FAILED = 3; // set by a worker whose loop threw (or could not be instantiated)
const READY = 4; // workers that have started and wait for jobs
const SPIN_MICROS_AT = 5; // how long to spin before sleeping, µs (0: never spin)
const SLEEPING = 6; // workers asleep in Atomics.wait (or on their way there)
// A chunked job: its rows in CHUNKS runs of CHUNK_ROWS (the last shorter),
// each thread taking the next unclaimed one (NEXT) until none is left.
const CHUNKS = 7; // 0: the job is split in fixed ranges (RANGES)
const CHUNK_ROWS = 8;
const ROWS = 9;
const NEXT = 10;
const ARGS = 11; // the job's arguments except the row range (at most 8)
const MAX_ARGS = 8;
const RANGES = ARGS + MAX_ARGS; // per thread: row0, row1

const PAGE = 65536;
/** wasm32's limit: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;
/** The most the pool's shared memory can hold: 4 GiB. */
export const POOL_MAX_BYTES = MAX_PAGES * PAGE;

/**
 * Products smaller than this many bytes of weights run on the calling thread
 * alone. A hot loop of one product splits well from about 64 KB with the
 * spin, but in a decode step the 15M shape's layer products (100-500 KB
 * as q8) lost split, every one of them (measured at load 1-1.5: 2.24 ms a
 * token on 2 threads, against 1.86 on one), while the 110M shape's (0.7-3.5
 * MB) won (7.5 ms always split, against 10.0 on one thread).
 */
export const SPLIT_MIN_BYTES = 1024 * 1024;

/**
 * Rows a job's ranges are whole multiples of: the float32 product's packed
 * groups of 16 rows (split_products.ts; a range that cut a group would
 * compute the whole group), else 4 (q8's groups; the other jobs' rows).
 */
function splitRows(op: JobOp): number {
  return op === PoolOp.F32 ? 16 : 4;
}

/** Runs per thread a chunked job is cut into (see run). */
const CHUNKS_PER_THREAD = 8;

/** How long a worker (after a job) and the caller (after its share) spin before they sleep, by default. */
export const SPIN_MICROS = 200;

// The worker's whole program (plain JavaScript, run with eval: no loader or
// build step involved). It never returns to its event loop: it sleeps in
// Atomics.wait until the next job.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { memory, module, sharedLoopsModule, control: sab, index, generation: started } = workerData;
const control = new Int32Array(sab);
let loops, shared, failure = 0;
try {
  loops = new WebAssembly.Instance(module, { env: { memory } }).exports;
  shared = new WebAssembly.Instance(sharedLoopsModule, { env: { memory } }).exports;
} catch {
  failure = 1;
}
// Jobs posted before this thread started are not missed: it starts from the
// generation the pool had when it made the worker.
let seen = started;
Atomics.add(control, ${READY}, 1);
parentPort.postMessage('ready');
// After a job, spin for the next one, up to the bound: the products of a
// decode step come tens of µs apart. (Spinning only when the last job had
// come within the bound was tried: on busy cores a wake-up alone can take
// longer than the bound, and a worker that had slept once never spun
// again, paying a wake-up of hundreds of µs on every job. Doubling the
// bound after such wake-ups measured no better on busy cores.)
const spinMs = Atomics.load(control, ${SPIN_MICROS_AT}) / 1000;
for (;;) {
  let generation = Atomics.load(control, ${GENERATION});
  if (generation === seen && spinMs > 0) {
    // (performance.now every 64 loads: it costs more than a load)
    const until = performance.now() + spinMs;
    for (let i = 1; generation === seen; i++) {
      if ((i & 63) === 0 && performance.now() > until) break;
      generation = Atomics.load(control, ${GENERATION});
    }
  }
  if (generation === seen) {
    Atomics.add(control, ${SLEEPING}, 1);
    Atomics.wait(control, ${GENERATION}, seen);
    Atomics.sub(control, ${SLEEPING}, 1);
    continue;
  }
  seen = generation;
  const op = control[${OP}];
  if (op === ${PoolOp.Stop}) break;
  const a = control.subarray(${ARGS}, ${ARGS + MAX_ARGS});
  const run = (row0, row1) => {
    if (op === ${PoolOp.F32}) loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
    else if (op === ${PoolOp.Q8}) loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
    else if (op === ${PoolOp.Attend}) shared.attendRows(a[0], row0, row1, a[1], a[2], a[3], a[4], a[5] + index * a[6]);
    else if (op === ${PoolOp.SumsOfExps}) shared.sumsOfExps(a[0], row0, row1, a[1], a[2]);
    else shared.swigluRange(a[0], row0, row1, a[1], a[2]);
  };
  const row0 = control[${RANGES} + 2 * index], row1 = control[${RANGES} + 2 * index + 1];
  try {
    if (failure) throw new Error();
    if (row1 > row0) run(row0, row1);
    const chunks = control[${CHUNKS}], size = control[${CHUNK_ROWS}], rows = control[${ROWS}];
    for (let k = chunks > 0 ? Atomics.add(control, ${NEXT}, 1) : 0; k < chunks; k = Atomics.add(control, ${NEXT}, 1)) run(k * size, Math.min(rows, (k + 1) * size));
  } catch {
    Atomics.store(control, ${FAILED}, 1);
  }
  // answered even when it failed, so the caller never waits forever
  if (Atomics.sub(control, ${PENDING}, 1) === 1) Atomics.notify(control, ${PENDING});
}
`;

let compiled: WebAssembly.Module | undefined;
function productsModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  return compiled;
}

let compiledShared: WebAssembly.Module | undefined;
function sharedLoopsModule(): WebAssembly.Module {
  compiledShared ??= new WebAssembly.Module(Buffer.from(SHARED_LOOPS_WASM_BASE64, 'base64'));
  return compiledShared;
}

/**
 * Split unless alone has been clearly faster: a split's time includes, now
 * and then, a worker woken late (and splitting keeps the workers awake for
 * the next product, which no single call's time shows), so it is favoured
 * by SPLIT_BIAS.
 */
const SPLIT_BIAS = 1.25;
function splitWins(s: { split: number; alone: number }): boolean {
  return s.split <= SPLIT_BIAS * s.alone;
}

/**
 * Whether to split a product, learnt while running: per size class (a power
 * of two of weight bytes), a moving average of the milliseconds a call took
 * split and unsplit; the cheaper is used (split favoured by SPLIT_BIAS), the other tried now and then
 * so that a change of load is noticed: after EXPLORE_MIN calls, and, each
 * time a try confirms the choice, after twice as many (up to EXPLORE_MAX),
 * back to EXPLORE_MIN when the choice changes. On idle cores splitting wins;
 * when other processes hold the cores, a woken worker may wait a time slice
 * for one, and the calling thread alone is faster: there a try can cost ten
 * times the product, hence the backing off.
 */
class SplitChoices {
  private static readonly EXPLORE_MIN = 16;
  private static readonly EXPLORE_MAX = 512;
  /** Split calls in a row not recorded because a worker was asleep, before one is recorded anyway (busy cores). */
  private static readonly COLD_MAX = 4;
  private readonly bySize = new Map<number, { split: number; alone: number; untilTry: number; tryEvery: number; cold: number }>();

  /**
   * Per job kind and size class: an attention job and a product of the same
   * size take different times. `record` takes whether a worker was asleep
   * when the split job was posted: such a split paid a wake-up that a split
   * among others does not (the workers spin between jobs), and while every
   * size stays unsplit the workers are always asleep when one is tried, so
   * counting those would keep every product on one thread for good (measured:
   * the 110M shape's products 2.2 ms a token slower on 2 threads than
   * always split). It is not counted, and the next call splits again,
   * with the workers awake, up to COLD_MAX times in a row; after that, a
   * size whose splits always find the workers asleep (the 15M shape's
   * classifier, its only product of 1 MiB or more, once a token) has its
   * cold splits counted, until a warm one comes.
   */
  choose(op: JobOp, bytes: number): { split: boolean; record(ms: number, cold: boolean): void } {
    const size = 64 * op + Math.round(Math.log2(bytes));
    let s = this.bySize.get(size);
    if (s === undefined)
      this.bySize.set(size, (s = { split: NaN, alone: NaN, untilTry: SplitChoices.EXPLORE_MIN, tryEvery: SplitChoices.EXPLORE_MIN, cold: 0 }));
    const stats = s;
    let split: boolean;
    let trying = false;
    if (Number.isNaN(stats.split) || (stats.cold > 0 && stats.cold < SplitChoices.COLD_MAX)) split = true;
    else if (Number.isNaN(stats.alone)) split = false;
    else {
      split = splitWins(stats);
      if (--stats.untilTry <= 0) {
        split = !split;
        trying = true;
      }
    }
    return {
      split,
      record(ms: number, cold: boolean) {
        if (split && cold && stats.cold < SplitChoices.COLD_MAX) {
          stats.cold++;
          return;
        }
        if (split && !cold) stats.cold = 0; // (after COLD_MAX cold ones in a row, cold is this size's normal: counted from then on)
        const key = split ? 'split' : 'alone';
        const before = splitWins(stats);
        stats[key] = Number.isNaN(stats[key]) ? ms : 0.8 * stats[key] + 0.2 * ms;
        if (trying) {
          const confirmed = before === splitWins(stats);
          stats.tryEvery = confirmed ? Math.min(2 * stats.tryEvery, SplitChoices.EXPLORE_MAX) : SplitChoices.EXPLORE_MIN;
          stats.untilTry = stats.tryEvery;
        }
      },
    };
  }
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
  private readonly workers: Worker[] = [];
  private readonly control: Int32Array;
  private top = 0;
  private readonly started: Promise<void>;
  private readonly choices = new SplitChoices();
  private disposed = false;

  /**
   * Products with fewer bytes of weights run on the calling thread alone;
   * larger ones are split when that has lately been faster (0: split every
   * product, always; for tests).
   */
  readonly splitMinBytes: number;

  /** How long the caller and the workers spin before they sleep (0: never spin). */
  readonly spinMicros: number;

  /** threads: 1 runs every product on the calling thread (no workers). */
  constructor(threads: number, options: { splitMinBytes?: number; spinMicros?: number } = {}) {
    this.splitMinBytes = options.splitMinBytes ?? SPLIT_MIN_BYTES;
    this.spinMicros = options.spinMicros ?? SPIN_MICROS;
    if (!(this.spinMicros >= 0 && this.spinMicros <= 1e6)) throw new RangeError(`WorkerPool: spinMicros must be in 0..1e6, got ${this.spinMicros}`);
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerPool: threads must be a positive integer, got ${threads}`);
    this.threads = threads;
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const module = productsModule();
    this.loops = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as ProductLoops;
    this.shared = new WebAssembly.Instance(sharedLoopsModule(), { env: { memory: this.memory } }).exports as unknown as SharedLoops;
    this.control = new Int32Array(new SharedArrayBuffer(4 * (RANGES + 2 * threads)));
    this.control[SPIN_MICROS_AT] = Math.round(this.spinMicros);
    for (let index = 1; index < threads; index++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        execArgv: [], // not the parent's: --input-type=module would make this script a module, without require
        workerData: { memory: this.memory, module, sharedLoopsModule: sharedLoopsModule(), control: this.control.buffer, index, generation: 0 },
      });
      this.workers.push(worker);
    }
    // A worker keeps the process alive only until it has started (so that
    // ready() can resolve); from then on it never does. One that dies on
    // start-up counts as started: run then reports it.
    const start = (w: Worker) =>
      new Promise<void>((resolve) => {
        w.once('message', () => {
          w.unref();
          resolve();
        }).once('exit', () => resolve());
      });
    this.started = Promise.all(this.workers.map(start)).then(() => undefined);
    this.top = 64; // keep 0 free: no operand ever sits at the null pointer
  }

  /**
   * Resolves once every worker has started. Products before then run on the
   * calling thread alone, so awaiting this is needed only to be sure that
   * they are split (tests, benchmarks).
   */
  ready(): Promise<void> {
    return this.started;
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
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return offset;
  }

  /** A view of the shared memory; take a fresh one after any alloc (the buffer object changes when it grows). */
  bytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  /**
   * Run a product over `rows` output rows: `args` are the loop's arguments
   * without row0/row1 (see ProductLoops; for Attend, SumsOfExps and Swiglu, those of
   * SharedLoops without the range, Attend's scores as a base and bytes per
   * thread). Split over the
   * threads when the bytes it reads (`weightBytes`: a product's weights
   * times its tokens) are enough, else on this thread alone. `chunked`
   * (a block's jobs: many milliseconds each) splits it into CHUNKS_PER_THREAD
   * runs per thread that each thread takes in turn while any are left, so a
   * thread that starts late or runs slower (a busy core) takes fewer, where
   * equal shares would wait for it; the results are the same either way.
   */
  run(op: JobOp, args: readonly number[], rows: number, weightBytes: number, chunked = false): void {
    if (this.disposed) throw new Error('WorkerPool: used after dispose()');
    // Until every worker has started, the calling thread works alone: it must
    // not sleep on a worker whose start-up may need this thread's event loop
    // (module hooks such as a test runner's are served from there).
    const large = weightBytes >= this.splitMinBytes && Atomics.load(this.control, READY) === this.workers.length;
    const parts = large ? Math.min(this.threads, Math.ceil(rows / splitRows(op))) : 1;
    if (parts === 1) {
      this.runRange(op, args, 0, rows);
      return;
    }
    // A chunked job is split always: a worker that comes late takes fewer
    // chunks, so it costs the caller at most the wait for its answer, where
    // trying the job unsplit (SplitChoices) would cost a block's whole job.
    if (this.splitMinBytes === 0 || chunked) {
      this.runSplit(op, args, rows, parts, chunked);
      return;
    }
    // Split or not, by what each has cost lately for products of this size
    // (their results are the same either way).
    const choice = this.choices.choose(op, weightBytes);
    const cold = choice.split && Atomics.load(this.control, SLEEPING) > 0;
    const started = performance.now();
    if (choice.split) this.runSplit(op, args, rows, parts, chunked);
    else this.runRange(op, args, 0, rows);
    choice.record(performance.now() - started, cold);
  }

  private runSplit(op: JobOp, args: readonly number[], rows: number, parts: number, chunked: boolean): void {
    const c = this.control;
    c[OP] = op;
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i]!;
    const unit = splitRows(op);
    const groups = Math.ceil(rows / unit);
    // chunked: runs of whole groups of rows, taken in turn; else equal shares, thread 0 (this one) first
    const chunkRows = chunked ? unit * Math.ceil(groups / Math.min(groups, CHUNKS_PER_THREAD * parts)) : 0;
    c[CHUNKS] = chunked ? Math.ceil(rows / chunkRows) : 0;
    c[CHUNK_ROWS] = chunkRows;
    c[ROWS] = rows;
    c[NEXT] = 0;
    for (let i = 0; i < this.threads; i++) {
      const g0 = Math.floor((groups * i) / parts);
      const g1 = Math.floor((groups * (i + 1)) / parts);
      c[RANGES + 2 * i] = !chunked && i < parts ? Math.min(rows, unit * g0) : 0;
      c[RANGES + 2 * i + 1] = !chunked && i < parts ? Math.min(rows, unit * g1) : 0;
    }
    Atomics.store(c, PENDING, this.workers.length);
    Atomics.add(c, GENERATION, 1);
    Atomics.notify(c, GENERATION);
    const started = performance.now();
    this.runRange(op, args, c[RANGES]!, c[RANGES + 1]!);
    const total = c[CHUNKS];
    for (let k = total > 0 ? Atomics.add(c, NEXT, 1) : 0; k < total; k = Atomics.add(c, NEXT, 1)) {
      this.runRange(op, args, k * chunkRows, Math.min(rows, (k + 1) * chunkRows));
    }
    let pending = Atomics.load(c, PENDING);
    // Spin only for workers that are awake (a sleeping one takes a wake-up,
    // and on busy cores a spinning caller may hold the core it needs), and
    // for at most what this thread's own share took, plus 20 µs: awake
    // workers start within a µs or two and their shares are as large, so
    // one that takes twice as long has likely lost its core. (A quarter of
    // it plus 10 µs measured worse: a worker a little slower than that
    // costs a wake-up of this thread.)
    if (pending !== 0 && this.spinMicros > 0 && Atomics.load(c, SLEEPING) === 0) {
      const now = performance.now();
      const until = now + Math.min(this.spinMicros / 1000, now - started + 0.02);
      for (let i = 1; pending !== 0; i++) {
        if ((i & 63) === 0 && performance.now() > until) break;
        pending = Atomics.load(c, PENDING);
      }
    }
    for (; pending !== 0; pending = Atomics.load(c, PENDING)) Atomics.wait(c, PENDING, pending);
    if (Atomics.exchange(c, FAILED, 0) !== 0) throw new Error('WorkerPool: a worker failed to run its share of a product');
  }

  /** This thread's share: thread 0's (its scores at the base). */
  private runRange(op: JobOp, a: readonly number[], row0: number, row1: number): void {
    if (row1 <= row0) return;
    if (op === PoolOp.F32) this.loops.productF32(a[0]!, a[1]!, a[2]!, row0, row1, a[3]!, a[4]!, a[5]!);
    else if (op === PoolOp.Q8) this.loops.productQ8(a[0]!, a[1]!, a[2]!, a[3]!, row0, row1, a[4]!, a[5]!, a[6]!);
    else if (op === PoolOp.Attend) this.shared.attendRows(a[0]!, row0, row1, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
    else if (op === PoolOp.SumsOfExps) this.shared.sumsOfExps(a[0]!, row0, row1, a[1]!, a[2]!);
    else this.shared.swigluRange(a[0]!, row0, row1, a[1]!, a[2]!);
  }

  /**
   * Stop the workers, at once (none is ever mid-job between calls); the
   * promise resolves when every one has exited.
   */
  dispose(): Promise<void> {
    if (this.disposed) return Promise.resolve();
    this.disposed = true;
    const exited = this.workers.map((w) => {
      w.ref(); // held until it has exited, so that whoever awaits this sees it
      return new Promise<void>((resolve) => w.once('exit', () => resolve()));
    });
    Atomics.store(this.control, OP, PoolOp.Stop);
    Atomics.add(this.control, GENERATION, 1);
    Atomics.notify(this.control, GENERATION);
    return Promise.all(exited).then(() => undefined);
  }
}
