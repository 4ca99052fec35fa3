// The program walker: how every thread of the worker pool (kernels/pool.ts)
// runs a program (kernels/pool_program.ts builds one) as one job, and why
// that gives the bits of running its steps one by one. The walk itself is
// simd/walker.wat; here, what it imports, its exports and its module.
//
// Programs (kernels/pool_program.ts): a sequence of steps run as one job,
// a barrier after each step, so that a decode step is one job and not ~30
// with JavaScript between them. The steps' words lie in the control array
// (kernels/pool_control.ts) after the job's, a cache line (STEP_WORDS) per step:
//
//   STEP_CLAIM  the step's claim word, as CLAIM: tag | front | back
//   descriptor  STEP_OP (CALLER_STEP: run by the caller alone), STEP_UNIT_ROWS,
//               STEP_ROWS, STEP_ARGS, STEP_UNITS (on the claim word's line: a claim
//               brings them)
//   STEP_LEFT   tag | units of the step not yet finished: in the NEXT
//               step's line (the last step's in a line after it). The
//               threads at step s's barrier spin on a line that nobody
//               claims from while they do (no one claims step s + 1 before
//               the barrier), and the load that sees step s done brings
//               step s + 1's claim word and descriptor with it.
//   PROGRAM_RUN (one word) tag | steps of the open run; tag | 0 once closed
//
// (A step's line also holds STEP_THREAD_BYTES and STEP_FLAGS: see
// "Every-thread steps" below.)
//
// The caller writes the descriptors (only when another program ran last,
// and setArg's words), then per step (walker.wat arm) STEP_LEFT = (tag, units; a caller step
// 1) and STEP_CLAIM = (tag, 0, units; a caller step 0), then opens the run
// with an atomic store, PROGRAM_RUN = (tag, steps), bumps GENERATION and
// notifies sleepers, as for a job. (The step words' stores are plain ones,
// two per step fewer full barriers: a thread that loaded the open
// PROGRAM_RUN sees them, as it sees a job's descriptor; a stale walker
// that reads one while it is stored reads the old or the new word, never a
// mix, int32 accesses being tear-free, and either is handled below.)
// Every thread then walks the steps in
// order: at step s it claims units from STEP_CLAIM (the caller from the
// front, workers from the back, a compareExchange on the whole word as for
// a job), runs them, subtracts them from STEP_LEFT; when none is left to
// claim, it waits (the barrier) until STEP_LEFT is (tag, 0), then goes on
// to step s + 1. A caller step the caller runs, then subtracts its 1. After
// the last step's barrier the caller closes the run (PROGRAM_RUN = (tag,
// 0)) and returns: it never waits for a worker that has claimed nothing,
// and a worker that comes late or wakes late finds every step claimed, or
// words of a later run, and goes back to waiting. Why this holds, in the
// terms of the job's argument (kernels/pool_control.ts):
//
// - A worker learns of a run only from PROGRAM_RUN's word (tag and steps in
//   one atomic load), after GENERATION moved; it reads no descriptor until
//   a claim of a step succeeds. A claim of step s is valid for the run of
//   its tag: its compareExchange matched (tag, front, back) exactly, and the
//   caller stores a step's claim word only before it opens a run.
// - A walker whose run is over (it loaded PROGRAM_RUN before the close, or
//   was preempted in the walk) meets either its tag with nothing left (that
//   run's words: every unit claimed and finished) and walks on to the end,
//   or another tag (a later run's words, stored before that run opened) in
//   a STEP_CLAIM or STEP_LEFT, and returns: its claims fail and its barrier
//   wait ends. So it never claims, runs or counts a unit of a run it did not
//   see open, except a claim of a run whose tag equals its stale one (mod
//   1024, tags being 10 bits): the claim word matched, so the units are the
//   run's and unclaimed, as for a job; but the walker may have stalled
//   (between loading a step's claim word and its compareExchange, or
//   anywhere in its walk) and come back at step s while the run is at an
//   earlier step. A job has no order inside; a program has, so such a claim
//   waits for the steps before s (below) before it runs anything.
// - The descriptor a walker reads after its claim is the run's: the caller
//   writes descriptors only before it opens a run, or, through setArg, from
//   a caller step for a later step (which no thread reaches before the
//   caller step's STEP_LEFT is 0), or between runs (when every claim of the
//   last run has been counted: the caller closed it only after every
//   step's STEP_LEFT reached 0, and a thread subtracts after it has run).
// - A unit of step s runs only once every step before s is finished. A
//   thread that walked to s passed every barrier before it; and every
//   claim of step s > 0, stale or not, before it reads FAILED or the
//   descriptor, waits (walker.wat afterSteps) until the LEFT word of the
//   last step before s that starts a run with units left (a caller step,
//   or an op step of units: one of none starts done and proves nothing)
//   reads (tag, 0). That step's units each ran only after the steps before
//   it were done (the same rule, by induction on s; a caller step runs on
//   the caller after its barriers), so all steps before s are done. The
//   wait ends, and cannot deadlock: the claim succeeded, so it holds
//   unfinished units of the open run of its tag (a claim word with units
//   unclaimed exists only while its run is open, since a run closes only
//   once every step's units are claimed and counted); that run therefore
//   stays open until they are counted, and its caller, which never stalls
//   on that claim before step s, walks every step before s to done. (A
//   walker that passed the barriers finds that word done at the first
//   atomic load: one load a claim, on the line before the step's, which
//   it has just read; and no next run re-arms it first, since its own
//   claim holds this one open.) So each step reads what the steps before
//   it wrote (the wasm stores of a unit come before its atomic
//   subtraction, which the barrier's or the wait's atomic load sees), a
//   descriptor patched by setArg from a caller step is read after that
//   step, and a step's units are claimed exactly once, so each output row
//   is computed by one claim: the bits of running the steps one by one
//   with run().
// - The caller waits at a barrier only for units that some thread claimed
//   and is running: a worker that never comes leaves all of them to the
//   caller. (A worker preempted mid-unit holds the caller as it would in a
//   job.)
// - A sleep at a barrier cannot miss the last subtraction: the sleeper adds
//   to AT_BARRIER, loads STEP_LEFT, and sleeps on that value; the thread
//   whose subtraction leaves (tag, 0) then loads AT_BARRIER and notifies.
//   Either the load sees the last subtraction or the finisher sees the
//   sleeper (as CALLER_WAITS). A sleeper is only ever at a step of the open
//   run, which the last finish completes, so none is left asleep after a
//   run. (The workers' sleeps there also end after 50 ms, as a guard.)
// - Errors: a thread whose unit throws sets FAILED; from then on every
//   thread claims and counts the program's units without running them, and
//   the caller skips the caller steps, so the run still closes; the caller
//   throws after it (its own error, else 'a worker failed'). No step after
//   the failing one computes anything from its garbage. (In the walker a
//   unit that traps unwinds the walk: the thread's JavaScript reads the
//   claim's step and units from the walker, one instance per thread,
//   counts them as the walk would have, sets FAILED and walks on from that
//   step. A caller step's error is caught in JavaScript, FAILED set there.
//   A fault of the walk outside a claim, the stack running out in one of
//   its calls, say, holds nothing: FAILED set, a worker leaves the run to
//   the others, the caller walks on from its step all the same and gives
//   up after MAX_WALK_FAULTS of them in a run, breaking the pool:
//   kernels/pool_keeper.ts.)
// - Spins are bounded as for jobs: a worker at a barrier spins for its
//   SPIN_MICROS_AT (0 while the cores are busy), the caller for
//   spinMicros, then they sleep. Before the workers have started, the
//   caller runs the program alone, step by step; while the cores are busy
//   (kernels/pool_busy.ts), step by step as run() jobs (those of
//   CALM_SPLIT_MIN_BYTES or more still split, the rest on the caller: as
//   before programs). A job run() posts from a caller step runs on the
//   caller alone (the workers are at the barrier).
//
// Every-thread steps (pool_program.ts everyThread, perThread): a step too
// small to split (a norm of one token's residual: well under a µs) costs
// the threads a barrier, and the thread that does not run it waits for the
// one that does. Where only the next step reads its output, every thread
// can instead run it whole into its own copy, and go on without a barrier.
// A step's per-thread arguments (STEP_FLAGS bits 0..7) are, on thread t,
// the argument + t * STEP_THREAD_BYTES (walker.wat $argsOf: a copy of the
// arguments in the thread's own line at ownArgsAt); the program lays out
// threads copies. An every-thread step E before op step s (STEP_FLAGS'
// EVERY_THREAD) has no units in the run's words: its LEFT and claim words
// start done, no thread claims or waits on it. A thread runs E, all its
// rows, at its first claim of s in its walk, after that claim's wait for
// the steps before s (afterSteps, which passes over E: a step of no units),
// and then the claim's own units. In the terms of the argument above:
// - E reads only what the steps before it wrote, which are done (the wait),
//   and its words are the run's (read after a valid claim, as a
//   descriptor); it writes only the thread's own copy, which no other
//   thread writes, and which only this thread's units of s read (E's
//   output read only by s, through the same per-thread arguments: the
//   program's contract), after it in the thread's order. A stale walker
//   (it is the same thread, so the same copy) runs E after its wait too.
// - The bits: each thread runs the same loop on the same inputs, and a row
//   of E's is the same whether computed whole or in units; the units of s
//   read a copy with those bits.
// - A thread that claims nothing of s runs nothing of E: nothing reads its
//   copy. A unit of E that traps is counted as the claim of s it came with
//   (walker.wat's $take is set before E runs), as any unit's.
// - Where the steps run one by one (alone, or as run() jobs while the
//   cores are busy) every step's arguments are as given, thread 0's: E
//   writes copy 0 and s reads it, in order.
// So a decode layer has six barriers instead of nine (float32) or ten (q8):
// src/model/decode_program.ts.
//
// The walk (a thread's claims, barriers and the dispatch of its units) is
// simd/walker.wat, called once per run by runProgram and by the worker: the
// words, claims and waits above as wasm atomics on the shared memory
// (memory.atomic.wait32 / notify for Atomics.wait / notify), the loops
// called from it directly (wasm to wasm), the caller steps and the clock
// (process.uptime, every 64 spins) imported from JavaScript. In
// JavaScript, V8 compiled the walk on a background thread through a
// process's first ~260 tokens, taking a core from the threads
// (bench/cold_start.ts). A worker's spin for the next job is there too
// (watch), so its script's loop does not run hot in JavaScript either.
import { type ProductLoops, type SharedLoops } from './pool_ops.js';
import { WASM_BASE64 as WALKER_WASM_BASE64 } from './simd/walker.wasm.js';

// What the program walker (simd/walker.wat) imports: the memory, the loops
// of the other two modules (wasm-to-wasm calls), the caller steps' callback
// and the clock its spins are bounded by (process.uptime itself, a native
// function: no JavaScript for V8 to compile, as performance.now's wrapper
// was). The same text in the workers.
export const WALKER_IMPORTS_SOURCE = `(memory, loops, shared, callerStep, slept) => ({
  memory,
  productF32: loops.productF32,
  productQ8: loops.productQ8,
  quantizeX16: loops.quantizeX16,
  attendRows: shared.attendRows,
  sumsOfExps: shared.sumsOfExps,
  swigluRange: shared.swigluRange,
  pickRows: shared.pickRows,
  normOperand: shared.normOperand,
  qkvRope: shared.qkvRope,
  addInto: shared.addInto,
  callerStep,
  uptime: process.uptime,
  slept,
})`;
export const walkerImports = new Function(`return ${WALKER_IMPORTS_SOURCE}`)() as (
  memory: WebAssembly.Memory,
  loops: ProductLoops,
  shared: SharedLoops,
  callerStep: (step: number) => void,
  slept: () => void,
) => WebAssembly.ModuleImports;

/** walker.wat's exports (see there). */
export interface ProgramWalker {
  walk(
    ctrl: number,
    program: number,
    tag: number,
    steps: number,
    from: number,
    thread: number,
    threads: number,
    spinMs: number,
    timeoutNs: bigint,
    times: number,
    own: number,
  ): number;
  /** Each step's LEFT and claim word for the run of tagBits (from its op and units words), plain stores: see above. */
  arm(program: number, tagBits: number, steps: number): void;
  /** The step this thread's walk was at (after a trap: the failed unit's). */
  step(): number;
  /** Units of the claim whose unit trapped (0: none in flight). */
  take(): number;
}

let compiledWalker: WebAssembly.Module | undefined;
export function walkerModule(): WebAssembly.Module {
  compiledWalker ??= new WebAssembly.Module(Buffer.from(WALKER_WASM_BASE64, 'base64'));
  return compiledWalker;
}
