// A persistent pool of worker threads that run the SIMD product loops
// (simd/products.wat) on one shared WebAssembly memory.
//
// tfjs's wasm backend runs one thread in Node, and its threaded build works
// only through internals it does not support. So the pool owns its memory
// (a SharedArrayBuffer-backed WebAssembly.Memory): the weights it multiplies
// live there, every worker instantiates the loops on it, and a product is
// split by output rows, the calling thread taking the first share.
//
// Synchronisation is Atomics.wait/notify on a small control array: the
// caller writes a job, bumps the generation and wakes the workers, does its
// own share, then sleeps until the pending count reaches zero. A wake-up
// costs about 20 µs; a spin would cost about 1 µs but steals a core from
// whatever else runs (training, the other engines of a benchmark). Calls too
// small to repay a wake-up stay on the calling thread (splitMinBytes), and
// larger ones are split only while splitting is measured to pay: on busy
// cores a woken worker can wait a whole time slice (SplitChoices).
//
// Started workers are unref'd, so they never keep the process alive, and
// dispose() stops them; a pool that is not disposed is torn down with the
// process (Ctrl-C included: the calling thread is never left waiting on a
// worker that cannot answer, since the workers only ever run the loops).
import { Worker } from 'node:worker_threads';
import { WASM_BASE64 } from './simd/products.wasm.js';

/** The exports of products.wat; pointers are byte offsets into the pool's memory. */
export interface ProductLoops {
  productF32(w: number, x: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
  quantizeQ8(x: number, n: number, q: number, d: number): void;
  quantizeX16(x: number, n: number, q: number, d: number): void;
  productQ8(w: number, xq: number, xd: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
}

/** Which loop a job runs. */
export const enum ProductOp {
  F32 = 0,
  Q8 = 1,
  Stop = 2,
}

// The control array (Int32Array on its own SharedArrayBuffer).
const GENERATION = 0; // bumped once per job; the workers wait on it
const PENDING = 1; // workers still running the current job; the caller waits on it
const OP = 2;
const FAILED = 3; // set by a worker whose loop threw (or could not be instantiated)
const READY = 4; // workers that have started and wait for jobs
const ARGS = 5; // the job's arguments except the row range (at most 8)
const MAX_ARGS = 8;
const RANGES = ARGS + MAX_ARGS; // per thread: row0, row1

const PAGE = 65536;
/** wasm32's limit: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;
/** The most the pool's shared memory can hold: 4 GiB. */
export const POOL_MAX_BYTES = MAX_PAGES * PAGE;

/**
 * Products smaller than this many bytes of weights run on the calling thread
 * alone: at about 10 GB/s, a 20 µs wake-up costs as much as reading 200 KB,
 * so splitting a smaller matrix in two saves less than it costs.
 */
export const SPLIT_MIN_BYTES = 512 * 1024;

// The worker's whole program (plain JavaScript, run with eval: no loader or
// build step involved). It never returns to its event loop: it sleeps in
// Atomics.wait until the next job.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { memory, module, control: sab, index, generation: started } = workerData;
const control = new Int32Array(sab);
let loops, failure = 0;
try {
  loops = new WebAssembly.Instance(module, { env: { memory } }).exports;
} catch {
  failure = 1;
}
// Jobs posted before this thread started are not missed: it starts from the
// generation the pool had when it made the worker.
let seen = started;
Atomics.add(control, ${READY}, 1);
parentPort.postMessage('ready');
for (;;) {
  Atomics.wait(control, ${GENERATION}, seen);
  const generation = Atomics.load(control, ${GENERATION});
  if (generation === seen) continue;
  seen = generation;
  const op = control[${OP}];
  if (op === ${ProductOp.Stop}) break;
  const a = control.subarray(${ARGS}, ${ARGS + MAX_ARGS});
  const row0 = control[${RANGES} + 2 * index], row1 = control[${RANGES} + 2 * index + 1];
  try {
    if (failure) throw new Error();
    if (row1 > row0) {
      if (op === ${ProductOp.F32}) loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
      else loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
    }
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

/**
 * Whether to split a product, learnt while running: per size class (a power
 * of two of weight bytes), a moving average of the milliseconds a call took
 * split and unsplit; the cheaper is used, the other tried every
 * EXPLORE_EVERY calls so that a change of load is noticed. On idle cores
 * splitting wins; when other processes hold the cores, a woken worker may
 * wait a time slice for one, and the calling thread alone is faster.
 */
class SplitChoices {
  private static readonly EXPLORE_EVERY = 16;
  private readonly bySize = new Map<number, { split: number; alone: number; calls: number }>();

  choose(bytes: number): { split: boolean; record(ms: number): void } {
    const size = Math.round(Math.log2(bytes));
    let s = this.bySize.get(size);
    if (s === undefined) this.bySize.set(size, (s = { split: NaN, alone: NaN, calls: 0 }));
    const stats = s;
    stats.calls++;
    let split: boolean;
    if (Number.isNaN(stats.split)) split = true;
    else if (Number.isNaN(stats.alone)) split = false;
    else {
      split = stats.split <= stats.alone;
      if (stats.calls % SplitChoices.EXPLORE_EVERY === 0) split = !split;
    }
    return {
      split,
      record(ms: number) {
        const key = split ? 'split' : 'alone';
        stats[key] = Number.isNaN(stats[key]) ? ms : 0.8 * stats[key] + 0.2 * ms;
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

  /** threads: 1 runs every product on the calling thread (no workers). */
  constructor(threads: number, options: { splitMinBytes?: number } = {}) {
    this.splitMinBytes = options.splitMinBytes ?? SPLIT_MIN_BYTES;
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`WorkerPool: threads must be a positive integer, got ${threads}`);
    this.threads = threads;
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const module = productsModule();
    this.loops = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as ProductLoops;
    this.control = new Int32Array(new SharedArrayBuffer(4 * (RANGES + 2 * threads)));
    for (let index = 1; index < threads; index++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        execArgv: [], // not the parent's: --input-type=module would make this script a module, without require
        workerData: { memory: this.memory, module, control: this.control.buffer, index, generation: 0 },
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
   * without row0/row1 (see ProductLoops). Split over the threads when its
   * weights (`weightBytes`) are large enough, else on this thread alone.
   */
  run(op: ProductOp.F32 | ProductOp.Q8, args: readonly number[], rows: number, weightBytes: number): void {
    if (this.disposed) throw new Error('WorkerPool: used after dispose()');
    // Until every worker has started, the calling thread works alone: it must
    // not sleep on a worker whose start-up may need this thread's event loop
    // (module hooks such as a test runner's are served from there).
    const large = weightBytes >= this.splitMinBytes && Atomics.load(this.control, READY) === this.workers.length;
    const parts = large ? Math.min(this.threads, Math.ceil(rows / 4)) : 1;
    if (parts === 1) {
      this.runRange(op, args, 0, rows);
      return;
    }
    if (this.splitMinBytes === 0) {
      this.runSplit(op, args, rows, parts);
      return;
    }
    // Split or not, by what each has cost lately for products of this size
    // (their results are the same either way).
    const choice = this.choices.choose(weightBytes);
    const started = performance.now();
    if (choice.split) this.runSplit(op, args, rows, parts);
    else this.runRange(op, args, 0, rows);
    choice.record(performance.now() - started);
  }

  private runSplit(op: ProductOp.F32 | ProductOp.Q8, args: readonly number[], rows: number, parts: number): void {
    const c = this.control;
    c[OP] = op;
    for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i]!;
    // equal shares in whole groups of four rows; thread 0 (this one) first
    const groups = Math.ceil(rows / 4);
    for (let i = 0; i < this.threads; i++) {
      const g0 = Math.floor((groups * i) / parts);
      const g1 = Math.floor((groups * (i + 1)) / parts);
      c[RANGES + 2 * i] = i < parts ? Math.min(rows, 4 * g0) : 0;
      c[RANGES + 2 * i + 1] = i < parts ? Math.min(rows, 4 * g1) : 0;
    }
    Atomics.store(c, PENDING, this.workers.length);
    Atomics.add(c, GENERATION, 1);
    Atomics.notify(c, GENERATION);
    this.runRange(op, args, c[RANGES]!, c[RANGES + 1]!);
    for (let pending = Atomics.load(c, PENDING); pending !== 0; pending = Atomics.load(c, PENDING)) {
      Atomics.wait(c, PENDING, pending);
    }
    if (Atomics.exchange(c, FAILED, 0) !== 0) throw new Error('WorkerPool: a worker failed to run its share of a product');
  }

  private runRange(op: ProductOp.F32 | ProductOp.Q8, a: readonly number[], row0: number, row1: number): void {
    if (row1 <= row0) return;
    if (op === ProductOp.F32) this.loops.productF32(a[0]!, a[1]!, a[2]!, row0, row1, a[3]!, a[4]!, a[5]!);
    else this.loops.productQ8(a[0]!, a[1]!, a[2]!, a[3]!, row0, row1, a[4]!, a[5]!, a[6]!);
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
    Atomics.store(this.control, OP, ProductOp.Stop);
    Atomics.add(this.control, GENERATION, 1);
    Atomics.notify(this.control, GENERATION);
    return Promise.all(exited).then(() => undefined);
  }
}
