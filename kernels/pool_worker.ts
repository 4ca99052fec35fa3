// A worker of the pool (kernels/pool.ts): its whole program, as source
// text that the keeper (kernels/pool_keeper.ts) starts each worker with.
// A worker spins a while after each job, then sleeps until the next; it
// claims units of a job from the back (kernels/pool_control.ts), and walks a
// program's steps in simd/walker.wat (kernels/pool_walker.ts). It never
// returns to its event loop.
import {
  ARGS,
  AT_BARRIER,
  CALLER_WAITS,
  CLAIM,
  COUNT_MASK,
  DONE,
  FAILED,
  GENERATION,
  GUIDE,
  INDEX_BITS,
  INDEX_MASK,
  LATE_AT,
  MAX_ARGS,
  NEVER,
  OP,
  PROGRAM_RUN,
  READY,
  ROWS,
  SLEEPING,
  SPIN_MICROS_AT,
  STEP_LEFT,
  STEP_WORDS,
  STOP,
  TAG_SHIFT,
  UNIT_ROWS,
} from './pool_control.js';
import { RUN_ROWS_SOURCE } from './pool_ops.js';
import { WALKER_IMPORTS_SOURCE } from './pool_walker.js';

// The worker's whole program (plain JavaScript, run with eval: no loader or
// build step involved). It never returns to its event loop: it sleeps in
// Atomics.wait until the next job.
export const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { memory, module, sharedLoopsModule, walkerModule, controlAt, controlWords, index, generation: started, threads, programAt, ownArgsAt, dies } = workerData;
const guide = ${GUIDE} * threads;
const control = new Int32Array(memory.buffer, controlAt, controlWords);
const walkerImports = ${WALKER_IMPORTS_SOURCE};
let loops, shared, walker;
try {
  loops = new WebAssembly.Instance(module, { env: { memory } }).exports;
  shared = new WebAssembly.Instance(sharedLoopsModule, { env: { memory } }).exports;
  walker = new WebAssembly.Instance(walkerModule, { env: walkerImports(memory, loops, shared, () => {}, () => {}) }).exports;
} catch (e) {
  // a worker that cannot make its loops breaks the pool as it starts: the
  // keeper sees it exit, with this line (kernels/pool_keeper.ts)
  throw new Error('could not instantiate its WebAssembly (' + String(e).split('\\n')[0] + ')');
}
// (tests: the pool's diesOnFailure) a worker whose unit failed dies holding
// its claim: its thread exits, throws, or is terminated by the keeper while
// it waits; or it holds the claim, and the keeper dies instead
const die = () => {
  if (dies === 'exit') process.exit(3);
  if (dies === 'throw') throw new Error("a unit failed (the test pool's diesOnFailure)");
  parentPort.postMessage(dies === 'terminate' ? 'terminate me' : dies);
  for (;;) Atomics.wait(control, ${NEVER}, 0);
};
// Jobs posted before this thread started are not missed: it starts from the
// generation the pool had when it made the worker.
let seen = started;
Atomics.add(control, ${READY}, 1);
parentPort.postMessage('ready');
const a = control.subarray(${ARGS}, ${ARGS + MAX_ARGS});
const runRows = ${RUN_ROWS_SOURCE};
// Units [u0, u1) of the open job (its descriptor read after the claim: kernels/pool_control.ts).
const run = (u0, u1) => {
  const op = control[${OP}], size = control[${UNIT_ROWS}];
  runRows(loops, shared, op, a, u0 * size, Math.min(control[${ROWS}], u1 * size), index);
};
// Counts n finished units of the step whose LEFT word is \`left\`, waking the
// threads asleep at its barrier when they were the last (walker.wat's finish:
// for a claim whose unit trapped).
const finish = (left, tag, n) => {
  if (Atomics.sub(control, left, n) === ((tag << ${TAG_SHIFT}) | n) && Atomics.load(control, ${AT_BARRIER}) !== 0) Atomics.notify(control, left);
};
// Walks a program run (tag) of \`steps\` steps in walker.wat: claims units of
// each from the back, runs them, counts them, waits at each step's barrier
// (sleeps of 50 ms at most: a guard). Returns once the last step is done, or
// when a step's words hold another tag. A unit that traps unwinds the walk:
// its claim is counted here, FAILED set, and the walk goes on from its step
// (every unit from then on counted, not run).
const walk = (tag, steps) => {
  const spinMs = Atomics.load(control, ${SPIN_MICROS_AT}) / 1000;
  for (let from = 0; ; ) {
    try {
      walker.walk(controlAt, controlAt + 4 * programAt, tag, steps, from, index, threads, spinMs, 50_000_000n, 0, ownArgsAt + 64 * index);
      return;
    } catch {
      Atomics.store(control, ${FAILED}, 1);
      from = walker.step();
      const take = walker.take();
      if (take === 0) return; // outside a claim: a fault of the walk itself, nothing held (the caller runs what is left)
      if (dies) die();
      finish(programAt + ${STEP_WORDS} * from + ${STEP_LEFT}, tag, take);
    }
  }
};
// After a job, spin for the next one, up to the bound: the products of a
// decode step come tens of µs apart. (Spinning only when the last job had
// come within the bound was tried: on busy cores a wake-up alone can take
// longer than the bound, and a worker that had slept once never spun
// again, paying a wake-up of hundreds of µs on every job. Doubling the
// bound after such wake-ups measured no better on busy cores.)
for (;;) {
  let generation = Atomics.load(control, ${GENERATION});
  const spinMs = Atomics.load(control, ${SPIN_MICROS_AT}) / 1000; // (0 while the cores are busy: kernels/pool_busy.ts)
  // (in walker.wat, the clock every 64 loads: in JavaScript this loop
  // made the worker's script a hot function for V8 to compile in the first tokens)
  if (generation === seen && spinMs > 0) generation = walker.watch(controlAt, seen, spinMs);
  if (generation === seen) {
    Atomics.add(control, ${SLEEPING}, 1);
    Atomics.wait(control, ${GENERATION}, seen);
    Atomics.sub(control, ${SLEEPING}, 1);
    continue;
  }
  seen = generation;
  if (Atomics.load(control, ${STOP}) !== 0) break;
  const late = control[${LATE_AT} + index];
  if (late > 0) Atomics.wait(control, ${NEVER}, 0, late / 1000);
  // claim from the back until no unit is left
  for (;;) {
    const word = Atomics.load(control, ${CLAIM});
    const back = word & ${INDEX_MASK};
    const left = back - ((word >>> ${INDEX_BITS}) & ${INDEX_MASK});
    if (left <= 0) break;
    const take = Math.ceil(left / guide); // (claimUnits)
    if (Atomics.compareExchange(control, ${CLAIM}, word, word - take) !== word) continue;
    try {
      run(back - take, back);
    } catch {
      if (dies) die();
      Atomics.store(control, ${FAILED}, 1);
    }
    // counted even when it failed, so the caller never waits forever
    Atomics.add(control, ${DONE}, take);
    if (Atomics.load(control, ${CALLER_WAITS}) !== 0) Atomics.notify(control, ${DONE});
  }
  // a program run open: walk it. (Then the worker idles while the caller's
  // JavaScript picks the token and places the next: ~40 µs a 15M decode step,
  // warm. Tried: reading layer 0's weights meanwhile, up to 4 MB, stopped
  // within 4 KB by the next run, so that its first claims find them in this
  // core's L2: the caller's own time on layer 0's q|k|v fell from 18 to
  // 13-16 µs and nothing else moved; tokens/s stayed within an in-process
  // A/A's 1-2% (15M, f32 and q8, 2 threads). Layer 0 comes from L3 already:
  // 2 MB of it read in ~48 µs.)
  const program = Atomics.load(control, ${PROGRAM_RUN});
  if ((program & ${COUNT_MASK}) !== 0) walk(program >>> ${TAG_SHIFT}, program & ${COUNT_MASK});
}
`;
