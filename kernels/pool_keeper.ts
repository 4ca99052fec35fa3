// How the worker pool (kernels/pool.ts) survives a thread gone: the
// keeper, a thread that makes the workers and watches them, and what
// breaks the pool.
//
// The keeper (see "Failures" below) is unref'd once every worker has started,
// so neither it nor the workers it holds keep the process alive, and
// dispose() stops them; a pool that is not disposed is torn down with the
// process (Ctrl-C included: the calling thread is never left waiting on a
// worker that cannot answer, since it waits only for units a worker has
// claimed and is running, and the workers only ever run the loops).
//
// Failures: a worker gone while it holds a claim (its thread exited, threw
// out of its script, was terminated or ran out of memory) never counts that
// claim's units, and the caller, waiting for them, would wait forever. The
// caller cannot see the worker go: its event loop does not turn while it
// waits (nor does a worker's). So the workers are made by a keeper
// (KEEPER_SOURCE), a thread whose event loop is free: it sees a worker's
// 'exit' before dispose() and breaks the pool: it posts a line naming the
// worker and how it ended, sets FAILED, then STOP = STOP_BROKEN, wakes every
// thread that may wait (wakeAll) and terminates the other workers; it exits
// once they all have. Every wait ends on STOP: the caller's sleeps (for a
// job's DONE, at a program's barrier) are slices of CALLER_SLICE_MS
// (pool_control.ts), after each of which it looks at STOP, and the walker's
// sleeps look at it each round (a worker's, 50 ms at most), so the call that
// waits throws a WorkerPoolError with the keeper's line
// (receiveMessageOnPort: at once, no event needed) within a slice of the
// keeper's notice, and every call after it throws the same line (one that
// starts before an event has brought the line finds FAILED with STOP: the
// same). The pool breaks for good rather than making new workers: a worker
// gone is a bug or a machine out of resources, and a new one would start on
// a memory whose last job's rows are half written. The caller breaks the
// pool the same way (breakPool) when its own walk faults again and again. (A
// job of a loop that traps is not a failure of the pool: see
// pool_control.ts, a loop that throws, and pool_walker.ts, Errors.)
//
// The keeper itself gone: an uncaught error there runs its process 'exit'
// handler, which breaks the pool as above, naming the error. A keeper
// terminated or out of memory runs no handler, and its workers end with it,
// one perhaps holding a claim. So after each slice of its waits that runs
// out, the caller probes the keeper (probeKeeper: the keeper keeps async
// waiters on a control word, which only the end of its thread removes, so
// a notify that wakes no one says it is gone) and breaks the pool itself
// (breakPool): the call throws within a slice or two of the keeper's end.
// (The keeper's 'error' event has a listener on the calling thread, where
// an 'error' without one would throw.)
//
// A worker that cannot instantiate its WebAssembly throws as it starts, so
// it breaks the pool as above, before the keeper says ready: ready()
// resolves on a pool whose every call throws, naming it. (Calls before that
// run on the calling thread alone, as before any worker has started.)
//
// dispose() stores FAILED before STOP, as a break does: called during a run
// (from a caller step, the only way a run can meet it), it ends the run
// the same way: every claim from then on is counted, not run, the caller
// steps after it are skipped, and the run throws 'used after dispose()'.
// STOP alone would end a stale walker's wait after its claim (walker.wat
// afterSteps) and let that claim run before the steps it reads were done.
import { DONE, FAILED, GENERATION, MAX_PROGRAM_STEPS, STEP_LEFT, STEP_WORDS, STOP, STOP_BROKEN } from './pool_control.js';

/**
 * The async waiters the keeper keeps for the caller's probes (probeKeeper),
 * each wake answered by a new one: a keeper gone is seen at once unless this
 * many probes (one a slice: 12.8 s) came while it could not answer (busy,
 * or starved of CPU time). A few bytes each.
 */
export const KEEPER_WAITERS = 256;
/** Then, the longest the keeper may leave the last wake unanswered before the caller takes it for gone. */
export const KEEPER_ANSWER_MS = 5000;
/** Faults of the caller's walk outside its units (nothing held: it walks on) before a run gives up and breaks the pool. */
export const MAX_WALK_FAULTS = 3;

// Wakes every thread that may wait on a pool that is breaking (STOP set
// before): the workers waiting for a job (GENERATION, bumped), the caller
// waiting for a job's units (DONE), and every thread asleep at a program's
// barrier or after a claim (each step's LEFT word). The keeper's and the
// caller's copy, one text.
export const WAKE_SOURCE = `(control, programAt) => {
  Atomics.add(control, ${GENERATION}, 1);
  Atomics.notify(control, ${GENERATION});
  Atomics.notify(control, ${DONE});
  for (let s = 0; s < ${MAX_PROGRAM_STEPS}; s++) Atomics.notify(control, programAt + ${STEP_WORDS} * s + ${STEP_LEFT});
}`;
export const wakeAll = new Function(`return ${WAKE_SOURCE}`)() as (control: Int32Array, programAt: number) => void;

// The keeper: a thread of its own, whose event loop stays free (the caller's
// is blocked while it waits for the workers, and a worker's never turns),
// that makes the workers and watches them: see above. A worker that exits
// before the pool is disposed breaks it: the keeper posts a line on the
// reports port, sets FAILED and STOP_BROKEN, wakes every waiting thread and
// terminates the other workers. It exits once they all have.
export const KEEPER_SOURCE = `
const { Worker, parentPort, workerData } = require('node:worker_threads');
const { source, data, reports, memory, controlAt, controlWords, programAt, keeperAt, threads } = workerData;
const control = new Int32Array(memory.buffer, controlAt, controlWords);
const wakeAll = ${WAKE_SOURCE};
// The caller's probes (WorkerPool probeKeeper): async waiters on the word
// at keeperAt (always 0), which only the end of this thread removes; each
// wake answered in the word after, once a new waiter waits in its place.
// (First: before any worker starts, so before the caller can wait on one.)
const answer = () => {
  Atomics.waitAsync(control, keeperAt, 0).value.then(() => {
    answer();
    Atomics.add(control, keeperAt + 1, 1);
  });
};
for (let i = 0; i < ${KEEPER_WAITERS}; i++) answer();
const workers = [];
let started = 0;
const start = () => {
  if (++started === data.length) parentPort.postMessage('ready');
};
const broken = (index, how, who = 'worker ' + index + ' of ' + (threads - 1)) => {
  if (Atomics.load(control, ${STOP}) !== 0) return; // disposed, or broken already: the workers are leaving
  reports.postMessage(who + ' ' + how);
  Atomics.store(control, ${FAILED}, 1); // (before STOP: a claim that leaves its wait for STOP runs nothing)
  if (Atomics.compareExchange(control, ${STOP}, 0, ${STOP_BROKEN}) !== 0) return;
  wakeAll(control, programAt);
  for (const w of workers) w.terminate();
};
// the keeper itself ending before dispose (an uncaught error here, named:
// its workers go with it) breaks the pool the same way (terminated or out
// of memory, it runs no handler: the caller's probe finds it gone)
let keeperError;
process.on('uncaughtExceptionMonitor', (e) => (keeperError = e));
process.on('exit', (code) =>
  broken(0, keeperError !== undefined ? 'threw (' + String(keeperError).split('\\n')[0] + ')' : 'exited (exit code ' + code + ')', 'the keeper'),
);
data.forEach((d, i) => {
  const w = new Worker(source, { eval: true, execArgv: [], workerData: d });
  let isReady = false;
  let error;
  w.on('message', (m) => {
    if (m === 'ready') {
      isReady = true;
      start();
    } else if (m === 'terminate me') w.terminate();
    // (tests: diesOnFailure) the keeper dies, its worker holding a claim
    else if (m === 'keeper throws') throw new Error("the keeper failed (the test pool's diesOnFailure)");
    else if (m === 'keeper out of memory') for (const held = []; ; ) held.push(new Array(1 << 16).fill(0.5));
  });
  w.on('error', (e) => (error = e));
  w.once('exit', (code) => {
    // (the pool broken first: a worker that failed as it started has broken
    // it before 'ready' is posted, so ready() resolves on a broken pool)
    broken(i + 1, error !== undefined ? 'threw (' + String(error).split('\\n')[0] + ')' : 'exited (exit code ' + code + ')');
    if (!isReady) start();
  });
  workers.push(w);
});
`;

/** The line a pool broken by a worker gone throws: `report` is the keeper's ("worker 1 of 2 exited (exit code 3)"). */
export function brokenLine(report: string): string {
  return `WorkerPool: ${report} while the pool was in use (a worker must run until dispose()): the pool is unusable; dispose it and make a new one`;
}

/** An error's first line (no stack). */
export function firstLine(e: unknown): string {
  return String(e).split('\n')[0]!;
}
