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
// Synchronisation: work stealing. A job (one product, or one of the other
// loops over rows) is cut into units of whole row groups (splitRows), and
// every thread, the caller included, claims runs of units until none is
// left: each output row is computed by exactly one claim, whoever runs it,
// so results are the same bits however the rows fall. A thread that starts
// late, or runs on a busy core, simply claims less; one that comes after the
// last unit is claimed finds none and goes back to waiting. The caller waits
// only for the units the workers claimed, never for a worker that has not
// started. A claim takes a share of the units left (claimUnits: a quarter on
// two threads, at least one), so a job is a few claims, large ones first.
//
// The control words (an Int32Array over the pool's shared memory, from a
// cache line at controlAt, allocated first after the null guard, so that the
// program walker in WebAssembly reaches them: see "Programs"; and not at
// the memory's low bytes, which a pointer left 0 writes: NULL_GUARD_BYTES):
//
//   CLAIM       the open job's claim word: tag (10 bits) | front (11) | back
//               (11). Units [front, back) are unclaimed; the caller claims
//               from the front (front += n), workers from the back (back -=
//               n), each with one compareExchange on the whole word, n
//               computed from that word alone. The tag changes every job.
//   DONE        units the workers have finished, of the open job
//   descriptor  OP, UNIT_ROWS, ROWS, ARGS: what a unit runs
//   GENERATION  bumped once a job is open; the workers wait on it
//
// The caller posts a job: it writes the descriptor, stores DONE = 0, then
// opens the job with an atomic store of CLAIM = (new tag, 0, units), then
// bumps GENERATION (and notifies, if a worker sleeps). It claims from the
// front until front meets back, counting its own units (`own`), then waits
// until DONE = units - own: every unit it did not claim itself was claimed
// by a worker, and is finished when DONE counts it.
//
// A worker, on seeing GENERATION move, loads CLAIM, and while front < back
// tries compareExchange(CLAIM, word, word - n). Only when that succeeds does
// it read the descriptor, run units [back - n, back), and add n to DONE.
// Why no interleaving breaks this (all these accesses are Atomics,
// sequentially consistent, so "before" is one total order):
//
// - A claim is valid for the job that is open when it succeeds: its
//   compareExchange matched the open job's word exactly (tag, front and
//   back), so the units existed and were unclaimed in that job. A worker
//   that loaded the word of an earlier job and was preempted fails, since
//   the tag (or the counts) differ; even if 1024 jobs later the same word
//   came back, the claim would be a valid one of the job open then, because
//   nothing of the job but that word is read before the claim.
// - The descriptor the worker reads is the claimed job's: it was written
//   before the atomic store that opened the job (which the successful
//   compareExchange follows in the word's order), and the caller writes the
//   next descriptor only after DONE has counted this claim, which the worker
//   adds after it has read the descriptor and run the loop.
// - DONE counts only the open job's units: it is reset before the job opens,
//   a worker adds to it only for units it claimed in the open job, and the
//   caller closes a job (returns) only when every worker-claimed unit is
//   counted, so no addition of an earlier job can arrive late.
// - Every unit is claimed exactly once (each claim moves front up or back
//   down, atomically, never past the other), so units - own is exactly what
//   the workers claimed, and the caller's wait ends once they finish.
// - The caller's sleep cannot miss the last addition: it stores
//   CALLER_WAITS = 1, loads DONE, and sleeps in Atomics.wait(DONE, that
//   value); a worker adds to DONE, then loads CALLER_WAITS and notifies if
//   set. Either the caller's load sees the worker's addition, or the
//   worker's load sees the flag (and Atomics.wait rechecks the value under
//   the waiters' lock, so a notify after that check wakes it).
// - A worker that sleeps cannot miss a job: it adds to SLEEPING, then waits
//   on GENERATION with the generation it has seen; the caller bumps
//   GENERATION, then loads SLEEPING and notifies if it is not 0. Either the
//   caller sees the sleeper, or the sleeper's Atomics.wait sees the new
//   generation and returns at once.
// - A loop that throws is caught where it runs: a worker sets FAILED and
//   still counts its units in DONE; the caller, after an error of its own,
//   goes on claiming (without running) until the job is closed and waits for
//   the workers' claims as always, so no worker is left running a job whose
//   memory the next job reuses. Then run() throws (the caller's error, else
//   'a worker failed').
//
// Programs (kernels/pool_program.ts): a sequence of steps run as one job,
// a barrier after each step, so that a decode step is one job and not ~30
// with JavaScript between them. The steps' words lie in the control array
// after the job's, a cache line (STEP_WORDS) per step:
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
// terms of the job's argument above:
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
//   up after MAX_WALK_FAULTS of them in a run, breaking the pool: see
//   "Failures".)
// - Spins are bounded as for jobs: a worker at a barrier spins for its
//   SPIN_MICROS_AT (0 while the cores are busy), the caller for
//   spinMicros, then they sleep. Before the workers have started, the
//   caller runs the program alone, step by step; while the cores are busy
//   (BUSY_WINDOW_MS), step by step as run() jobs (those of
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
// Waits spin first, for a bounded time, then sleep in Atomics.wait:
//
//   worker  after a job, watches GENERATION for up to spinMicros (default
//           SPIN_MICROS, 200 µs) before it sleeps: the products of a decode
//           step come a few tens of µs apart, so during a step the workers
//           never sleep, and a step's last product (or a lone job) leaves
//           them spinning for at most the bound.
//   caller  after its own claims, for the workers' (already running): at
//           most spinMicros, and at most twice what the units not yet done
//           would take it, plus 20 µs; a worker that takes longer has likely
//           lost its core, and a spinning caller could be holding the core
//           that worker needs.
//
// While the process gets too little CPU time for its threads (other
// processes want the cores), the workers do not spin at all: see
// BUSY_WINDOW_MS.
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
//
// A wake-up from Atomics.wait costs 20-50 µs on this kind of machine, a spin
// about 1 µs. A worker asleep when a job comes costs the caller only the
// notify: the job is done by the time the worker wakes, unless it is long
// enough for the worker to take part.
//
// History (the fixed-share pool this replaced: the caller posted per-thread
// row ranges and waited for every worker's answer): a worker that started
// late (asleep, or preempted on a busy core) cost the caller its whole
// share, so in decode the second thread did not pay (110M q8 2 threads no
// faster than 1, often slower), and a per-size choice to split or not
// (SplitChoices) was learnt from each call's time, which could not see that
// splitting keeps the workers awake. Splitting every product of 1 MiB or
// more gave 110M q8 decode 1.18-1.24x.
//
// The keeper (see "Failures") is unref'd once every worker has started,
// so neither it nor the workers it holds keep the process alive, and
// dispose() stops them; a pool that is not disposed is torn down with the
// process (Ctrl-C included: the calling thread is never left waiting on a
// worker that cannot answer, since it waits only for units a worker has
// claimed and is running, and the workers only ever run the loops).
//
// Failures: a worker gone while it holds a claim (its thread exited,
// threw out of its script, was terminated or ran out of memory) never
// counts that claim's units, and the caller, waiting for them, would wait
// forever. The caller cannot see the worker go: its event loop does not
// turn while it waits (nor does a worker's). So the workers are made by a
// keeper (KEEPER_SOURCE), a thread whose event loop is free: it sees a
// worker's 'exit' before dispose() and breaks the pool: it posts a line
// naming the worker and how it ended, sets FAILED, then STOP =
// STOP_BROKEN, wakes every thread that may wait (wakeAll) and terminates
// the other workers; it exits once they all have. Every wait ends on STOP:
// the caller's sleeps (for a job's DONE, at a program's barrier) are
// slices of CALLER_SLICE_MS, after each of which it looks at STOP, and the
// walker's sleeps look at it each round (a worker's, 50 ms at most), so
// the call that waits throws a WorkerPoolError with the keeper's line
// (receiveMessageOnPort: at once, no event needed) within a slice of the
// keeper's notice, and every call after it throws the same line (one that
// starts before an event has brought the line finds FAILED with STOP: the
// same). The pool breaks for good rather than making new workers: a worker
// gone is a bug or a machine out of resources, and a new one would start
// on a memory whose last job's rows are half written. The caller breaks
// the pool the same way (breakPool) when its own walk faults again and
// again. (A job of a loop that traps is not a failure of the pool: see
// Errors.)
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
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { adviseHugePages, hugePageEnd, NOT_ASKED, type PageAdvice } from './huge_pages.js';
import { WorkerPoolError } from './pool_error.js';
import { WASM_BASE64 as SHARED_LOOPS_WASM_BASE64 } from './simd/loops.shared.wasm.js';
import { WASM_BASE64 } from './simd/products.wasm.js';
import { WASM_BASE64 as WALKER_WASM_BASE64 } from './simd/walker.wasm.js';

/** The exports of products.wat; pointers are byte offsets into the pool's memory. */
export interface ProductLoops {
  productF32(w: number, x: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
  quantizeQ8(x: number, n: number, q: number, d: number): void;
  quantizeX16(x: number, n: number, q: number, d: number): void;
  productQ8(w: number, xq: number, xd: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
}

/** The exports of simd/loops.wat (assembled for a shared memory) that the pool runs: attention rows (kernels/pooled_attention.ts), token NLLs' sums (kernels/token_nll.ts), SwiGLU (kernels/pooled_swiglu.ts); and the logits' argmax (kernels/logits_argmax.ts). */
export interface SharedLoops {
  attendRows(records: number, item0: number, item1: number, frames: number, valuesFromKeys: number, dim: number, scaleBits: number, s: number): void;
  sumsOfExps(x: number, row0: number, row1: number, n: number, out: number): void;
  swigluRange(x: number, row0: number, row1: number, hidden: number, out: number): void;
  /** x[i] += y[i] for i < n, float32 (the calling thread only). */
  addInto(x: number, y: number, n: number): void;
  /** RMSNorm of rows of dim floats, stride apart, x into out (may be x): kernels/rmsnorm.ts rmsNormRows' bits (the calling thread only). */
  rmsNormRows(x: number, w: number, rows: number, dim: number, stride: number, eps: number, out: number): void;
  /** The first largest of n floats at x, or -1 if any is not finite (kernels/logits_argmax.ts; the calling thread only). */
  argmaxFinite(x: number, n: number): number;
  /** argmaxFinite of rows [row0, row1) of a one-token product's result x, as a record: see PICK_RECORD_BYTES. */
  pickRows(x: number, row0: number, row1: number, records: number, group: number): void;
  /** The first largest of the claims' picks (pickRows' records, followed from row 0) in x ([rows]); -1 when one found a NaN or an infinity; -2 when a record is not a claim's (the calling thread only). */
  pickOfClaims(x: number, rows: number, records: number, group: number): number;
  /** Rows [row0, row1) of x ([rows, dim]) normalised by w (rmsNormRows' bits, eps the float64 at epsAt) into out ([rows, stride]), the padding zeroed: see PoolOp.NormOperand. */
  normOperand(x: number, w: number, epsAt: number, dim: number, stride: number, out: number, row0: number, row1: number): void;
  /** One token's q|k|v split into rotated queries, rotated keys and values where its record says (kernels/qkv_rope.ts): see PoolOp.QkvRope. */
  qkvRope(record: number): void;
  /** A decode program's per-token words of its QkvRope and Attend records from the patch table's `layers` rows at `table` (kernels/decode_patch.ts; the calling thread only). */
  patchDecodeLayers(table: number, layers: number, heads: number, group: number, rowBytes: number): void;
}

/** Which loop a pool job runs: a weight product, another loop over rows (attention, row sums, SwiGLU), or a q8 product and its SwiGLU in one (Q8Gated). */
export const enum PoolOp {
  F32 = 0,
  Q8 = 1,
  /** attendRows over items; its last two arguments are the scores' base and bytes per thread. */
  Attend = 3,
  /** sumsOfExps over rows. */
  SumsOfExps = 4,
  /** swigluRange over rows. */
  Swiglu = 5,
  /** SwiGLU of a q8 product of one token (the gate|up projection): see GATED_SCRATCH_FLOATS. */
  Q8Gated = 6,
  /** A float32 product of one token that also picks: F32's args, then the records (see PICK_RECORD_BYTES). */
  F32Pick = 7,
  /** A q8 product of one token that also picks: Q8's args, then the records (see PICK_RECORD_BYTES). */
  Q8Pick = 8,
  /**
   * A decode step's input norm: rows (tokens) of the residual x into a
   * product's operand, normalised (normOperand), and for q8 quantised to
   * int16 blocks (quantizeX16, each row's stride on its own). args: x, w,
   * epsAt, dim, stride, out, xq, xd (xq 0: float32, no quantisation): the
   * operand pooledProduct writes (kernels/split_products.ts).
   */
  NormOperand = 9,
  /** q|k|v split and RoPE of one token a row (loops.wat qkvRope): args: the records (kernels/qkv_rope.ts), bytes from one to the next; row r's at records + r bytes. */
  QkvRope = 10,
  /**
   * A float32 product of one token that adds its rows into the residual:
   * F32's args, then the residual's offset; each claim of rows [r0, r1)
   * computes them, then residual[r] += out[r] for those rows (addInto's
   * float32 add: the bits of the product followed by the separate add).
   */
  F32Add = 11,
  /** Q8's args, then the residual's offset: as F32Add. */
  Q8Add = 12,
  /** A q8 product's x quantised to int16 blocks (quantizeX16), rows of n floats (a multiple of 32) apart: args x, n, q, d. */
  Quantize = 13,
}

/** The process's CPU time so far, every thread's, in ms. */
function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The jobs run() takes. */
export type JobOp =
  | PoolOp.F32
  | PoolOp.Q8
  | PoolOp.Attend
  | PoolOp.SumsOfExps
  | PoolOp.Swiglu
  | PoolOp.Q8Gated
  | PoolOp.F32Pick
  | PoolOp.Q8Pick
  | PoolOp.NormOperand
  | PoolOp.QkvRope
  | PoolOp.F32Add
  | PoolOp.Q8Add
  | PoolOp.Quantize;

/**
 * Every JobOp, with a name for tables (bench/profile_decode.ts), and for
 * checks of ops that come from outside the type system (a program's steps:
 * PoolProgram checks each op against it when it is built, since an op the
 * dispatch lacks is a trap in the walker). A JobOp missing here is a compile
 * error.
 */
export const JOB_OP_NAMES: Readonly<Record<JobOp, string>> = {
  [PoolOp.F32]: 'F32 product',
  [PoolOp.Q8]: 'Q8 product',
  [PoolOp.Attend]: 'Attend',
  [PoolOp.SumsOfExps]: 'SumsOfExps',
  [PoolOp.Swiglu]: 'Swiglu',
  [PoolOp.Q8Gated]: 'Q8Gated',
  [PoolOp.F32Pick]: 'F32Pick (classifier)',
  [PoolOp.Q8Pick]: 'Q8Pick (classifier)',
  [PoolOp.NormOperand]: 'NormOperand',
  [PoolOp.QkvRope]: 'QkvRope',
  [PoolOp.F32Add]: 'F32Add (product + residual)',
  [PoolOp.Q8Add]: 'Q8Add (product + residual)',
  [PoolOp.Quantize]: 'Quantize',
};

/** Whether `op` is one of the ops run() and a program's op steps take. */
export function isJobOp(op: unknown): op is JobOp {
  return typeof op === 'number' && Object.hasOwn(JOB_OP_NAMES, op);
}

/**
 * A product that picks (F32Pick, Q8Pick: greedy decoding's classifier, one
 * token): each claim of rows [row0, row1), once it has computed them, finds
 * the first largest of them where they lie, in its own core's cache
 * (loops.wat pickRows: argmaxFinite), and writes a record of two int32 at
 * records + PICK_RECORD_BYTES * (row0 / group), group the job's row group
 * (16 rows for f32, 4 for q8): row1, then the row it found, or -1 when any of
 * its rows is NaN or infinite. The caller then follows the records from row
 * 0 to the last row (kernels/split_products.ts), a few claims, instead of
 * reading the whole result, half of it from the other core's cache
 * (argmaxFinite over 32,000 logits: about 7 µs of a 15M q8 decode step).
 * The first largest of the claims' picks, in row order, is the row
 * argmaxFinite finds in the whole result, whichever rows the claims took.
 */
export const PICK_RECORD_BYTES = 8;

/**
 * The gated job (Q8Gated): one token's q8 product with a gate|up matrix
 * ([2 hidden, cols]: gate rows, then up rows), then SwiGLU, in one job: the
 * job's rows are the hidden features, and a claim of rows [r0, r1)
 * computes gate rows [r0, r1) and up rows [hidden + r0, hidden + r1) into
 * its own span of the scratch, [gate | up] (n = r1 - r0 each, at scratch +
 * 4 (hidden + 2 r0)), then swigluRange of that span as one row of n into
 * gated[r0, r1). Each output row's sum is the product loop's whatever range
 * computes it, and SwiGLU is elementwise, so the bits are those of the
 * product followed by the SwiGLU job. The scratch holds 3 hidden floats.
 *
 *   args: w, xq, xd, scratch, cols, gated, hidden
 *
 * The pointers for the product: gate row r lands at scratch + 4 (hidden +
 * 2 r0) + 4 (r - r0), so its out is scratch + 4 (hidden + r0); up row
 * hidden + r lands n floats further, so its out is scratch + 4 r1 (neither
 * below scratch: the span's offset of hidden floats sees to that).
 *
 * (Float32 has no gated job: the same fusion measured 3-4 µs a layer slower
 * than the product and the SwiGLU job in a 15M decode on 2 threads, its two
 * streams of rows per claim coming from memory, not the cache.)
 */
export const GATED_SCRATCH_FLOATS = 3;

// The control array (Int32Array on its own SharedArrayBuffer); see the header.
const GENERATION = 0; // bumped once per job (and by dispose); the workers wait on it
const CLAIM = 1; // the open job's claim word: tag | front | back
const DONE = 2; // units of the open job the workers have finished
const CALLER_WAITS = 3; // 1 while the caller sleeps on DONE
const FAILED = 4; // set by a thread whose loop threw, and before STOP by whoever breaks the pool or disposes it
const READY = 5; // workers that have started and wait for jobs
const SPIN_MICROS_AT = 6; // how long the workers spin before sleeping, µs (0: never spin; 0 while the cores are busy)
const SLEEPING = 7; // workers asleep in Atomics.wait (or on their way there)
const STOP = 8; // STOP_DISPOSED (dispose()) or STOP_BROKEN (see "Failures" in the header): every thread leaves
const NEVER = 9; // always 0: what a test's late thread waits on (lateMicros)
const PROGRAM_RUN = 10; // the open program run: tag | steps (steps 0: none open); see "Programs" in the header
const AT_BARRIER = 11; // threads asleep (or on their way) at a program's barrier
// the job's descriptor
const OP = 12;
const UNIT_ROWS = 13;
const ROWS = 14;
const ARGS = 15; // the job's arguments except the row range (at most 8)
const MAX_ARGS = 8;
const LATE_AT = ARGS + MAX_ARGS; // per thread: µs to wait after a job is posted before claiming (tests)
// Then, after LATE_AT's words, the keeper's two (keeperAt: the word its
// async waiter waits on, and its answers: see probeKeeper); then, from the
// first line (16 words) after those, a program's steps:
// STEP_WORDS each, a cache line (see "Programs" in the header): the claim
// word and the descriptor, and the step before's LEFT word (the step's own
// LEFT lies in the next step's line). Word 0 is the step's claim word
// (STEP_CLAIM: tag | front | back, as CLAIM), written and claimed only in
// simd/walker.wat.
const STEP_OP = 1; // the step's op (CALLER_STEP: a caller step)
const STEP_UNIT_ROWS = 2;
const STEP_ROWS = 3;
const STEP_ARGS = 4; // MAX_ARGS words
const STEP_UNITS = STEP_ARGS + MAX_ARGS; // the step's units (what its LEFT and claim words start from in each run; an every-thread step's 0)
const STEP_THREAD_BYTES = STEP_UNITS + 1; // bytes from one thread's copy of the step's per-thread arguments to the next's
const STEP_FLAGS = STEP_UNITS + 2; // bits 0..7: which arguments are per thread (see "Every-thread steps"); EVERY_THREAD
/** STEP_FLAGS' bit of an every-thread step. */
const EVERY_THREAD = 256;
const STEP_WORDS = 16;
const STEP_LEFT = STEP_WORDS + 15; // units of the step not yet finished: tag | left (the last word of the next step's line)
/** STOP's values: the pool disposed; the pool broken (a worker gone, or the caller's walk failing again and again). */
const STOP_DISPOSED = 1;
const STOP_BROKEN = 2;
/**
 * The longest the caller sleeps before it looks at STOP again, while it
 * waits for the workers' units (a job's DONE, a program's barrier): a
 * worker that is gone never counts its units, and the keeper's notify can
 * come just before the caller sleeps.
 */
const CALLER_SLICE_MS = 50;
/**
 * The async waiters the keeper keeps for the caller's probes (probeKeeper),
 * each wake answered by a new one: a keeper gone is seen at once unless this
 * many probes (one a slice: 12.8 s) came while it could not answer (busy,
 * or starved of CPU time). A few bytes each.
 */
const KEEPER_WAITERS = 256;
/** Then, the longest the keeper may leave the last wake unanswered before the caller takes it for gone. */
const KEEPER_ANSWER_MS = 5000;
/** Faults of the caller's walk outside its units (nothing held: it walks on) before a run gives up and breaks the pool. */
const MAX_WALK_FAULTS = 3;
/** A caller step's op word. */
const CALLER_STEP = -1;
/** The most steps a program holds (the control array keeps room for them: 128 KiB). */
export const MAX_PROGRAM_STEPS = 2048;

// CLAIM's fields: the tag in the top 10 bits, front and back 11 bits each
// (in units of UNIT_ROWS rows).
const INDEX_BITS = 11;
const INDEX_MASK = (1 << INDEX_BITS) - 1;
const FRONT_ONE = 1 << INDEX_BITS;
const TAG_SHIFT = 2 * INDEX_BITS;
const TAG_MASK = (1 << (32 - TAG_SHIFT)) - 1;
/** PROGRAM_RUN's step count, STEP_LEFT's units left: the bits below the tag. */
const COUNT_MASK = (1 << TAG_SHIFT) - 1;
/** The most units a job is cut into (what front and back can count). */
const MAX_UNITS = INDEX_MASK;

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
/** wasm32's limit: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;
/** The most the pool's shared memory can hold: 4 GiB. */
export const POOL_MAX_BYTES = MAX_PAGES * PAGE;

/**
 * Jobs that read fewer bytes than this run on the calling thread alone (see
 * run); every larger one is split (if it makes two units). With work
 * stealing a split costs the caller about a notify and a few claims: 64 KB
 * against 1 MiB measured 110M q8 decode on 2 threads 160 against 143 tok/s
 * (1 thread: 126), 15M 831 against 778 (1 thread: 769).
 */
export const SPLIT_MIN_BYTES = 64 * 1024;

/**
 * The least bytes (of weights, for a product) a claim takes: a job's unit,
 * unless it has too many rows for MAX_UNITS. (Claims of 64 KB in equal
 * chunks cost a 32000 x 768 q8 product 955 µs on 2 threads against 798 for
 * the fixed shares: a claim is a compareExchange on a line both cores write,
 * and each chunk a new stream for the prefetcher.)
 */
export const UNIT_BYTES = 32 * 1024;

/**
 * A claim takes 1 / (GUIDE * threads) of the units left, at least one
 * ("guided" scheduling): a job's first claims are large, so a product is a
 * few long streams and a few claims, and its last are a unit each, so a
 * thread that is late or slow costs the others at most about a unit's time.
 * The caller's claims are adjacent, front to back, one stream.
 */
const GUIDE = 2;

/** Units a thread claims when `left` are left (the workers compute the same). */
function claimUnits(left: number, threads: number): number {
  return Math.ceil(left / (GUIDE * threads));
}

/**
 * Rows a job's units are whole multiples of: the float32 product's packed
 * groups of 16 rows (split_products.ts; a range that cut a group would
 * compute the whole group), attention's single items (a decode step's are
 * its few heads: groups of 4 would split 6 heads 4 to 2), else 4 (q8's
 * groups; the other jobs' rows).
 */
export function splitRows(op: JobOp): number {
  return op === PoolOp.F32 || op === PoolOp.F32Pick || op === PoolOp.F32Add ? 16 : op === PoolOp.Attend || op === PoolOp.QkvRope ? 1 : 4;
}

/**
 * Busy cores. A spinning worker takes a core that, when other processes
 * want the cores, the caller may need: measured on 2 cores with one busy
 * loop beside it, a 110M q8 decode on 2 threads got 1.07 cores in all (on
 * idle cores 1.77), 87 tok/s against 112 on one thread, though each split
 * job was still faster than the caller's own pace; with the workers never
 * spinning, 100-106. (The same happens with other processes at nice 19
 * holding the cores: a worker that slept gets its core back only after
 * their slice.) So the caller watches the CPU time the process gets: over a
 * window of BUSY_WINDOW_MS of wall time (counted through the split jobs and
 * from each to the next, at most BUSY_GAP_MS: an idle caller says nothing),
 * the CPU time beyond the caller's own (CPU time minus that wall time)
 * should be at least BUSY_SHARE of what the workers would have had running
 * beside it through the split jobs. If not,
 * the workers stop spinning (they sleep after each job) and jobs smaller
 * than CALM_SPLIT_MIN_BYTES, too short to repay a wake-up, run alone, for
 * BUSY_CALM_MIN_MS, doubled while the cores stay busy up to
 * BUSY_CALM_MAX_MS; then the workers spin again and the caller measures.
 * (Running every job alone instead matched one thread in decode on busy
 * cores, but on cores held by niced processes it also lost the long jobs
 * of blocked evaluation, which pay split even then.) Measured with one busy
 * loop beside it (same run, tok/s): 110M q8 decode 2 threads 111.7, 1 thread
 * 112.8, the fixed-share pool 99.2; blocked eval 187, 164, 184; 15M q8
 * decode 632, 683, 635.
 */
const BUSY_WINDOW_MS = 25;
const BUSY_GAP_MS = 2;
const BUSY_SHARE = 0.35;
const BUSY_CALM_MIN_MS = 50;
const BUSY_CALM_MAX_MS = 1000;
const CALM_SPLIT_MIN_BYTES = 1024 * 1024;

/** How long a worker (after a job) and the caller (after its claims) spin before they sleep, by default. */
export const SPIN_MICROS = 200;

// The one dispatch of a job's op: rows [row0, row1) of op with arguments a
// (see run), on thread `thread` (0: the caller; it picks the thread's own
// attention scores). Plain JavaScript in a string: each worker evaluates it
// in its source, and the calling thread makes its runRows from the same
// text, so a new op is one case here (with its PoolOp, JobOp and splitRows),
// and one in the program walker's copy, simd/walker.wat's $runRows (the
// program tests run the ops as program steps and as jobs).
const RUN_ROWS_SOURCE = `(loops, shared, op, a, row0, row1, thread) => {
  if (row1 <= row0) return;
  if (op === ${PoolOp.F32}) loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
  else if (op === ${PoolOp.Q8}) loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
  else if (op === ${PoolOp.Attend}) shared.attendRows(a[0], row0, row1, a[1], a[2], a[3], a[4], a[5] + thread * a[6]);
  else if (op === ${PoolOp.SumsOfExps}) shared.sumsOfExps(a[0], row0, row1, a[1], a[2]);
  else if (op === ${PoolOp.Swiglu}) shared.swigluRange(a[0], row0, row1, a[1], a[2]);
  else if (op === ${PoolOp.F32Pick}) {
    loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
    shared.pickRows(a[2], row0, row1, a[6], ${splitRows(PoolOp.F32Pick)});
  } else if (op === ${PoolOp.Q8Pick}) {
    loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
    shared.pickRows(a[3], row0, row1, a[7], ${splitRows(PoolOp.Q8Pick)});
  } else if (op === ${PoolOp.Q8Gated}) {
    // see GATED_SCRATCH_FLOATS for the pointers (no arrays made here: garbage on every claim measured slower)
    const h = a[6];
    loops.productQ8(a[0], a[1], a[2], a[3] + 4 * (h + row0), row0, row1, a[4], 1, 2 * h);
    loops.productQ8(a[0], a[1], a[2], a[3] + 4 * row1, h + row0, h + row1, a[4], 1, 2 * h);
    shared.swigluRange(a[3] + 4 * (h + 2 * row0), 0, 1, row1 - row0, a[5] + 4 * row0);
  } else if (op === ${PoolOp.NormOperand}) {
    // (xd: a float scale per 32 of a row's stride floats)
    shared.normOperand(a[0], a[1], a[2], a[3], a[4], a[5], row0, row1);
    if (a[6] !== 0) loops.quantizeX16(a[5] + 4 * a[4] * row0, a[4] * (row1 - row0), a[6] + 2 * a[4] * row0, a[7] + (a[4] / 8) * row0);
  } else if (op === ${PoolOp.Quantize}) loops.quantizeX16(a[0] + 4 * a[1] * row0, a[1] * (row1 - row0), a[2] + 2 * a[1] * row0, a[3] + (a[1] / 8) * row0);
  else if (op === ${PoolOp.QkvRope}) {
    for (let r = row0; r < row1; r++) shared.qkvRope(a[0] + r * a[1]);
  } else if (op === ${PoolOp.F32Add}) {
    loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
    shared.addInto(a[6] + 4 * row0, a[2] + 4 * row0, row1 - row0);
  } else if (op === ${PoolOp.Q8Add}) {
    loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
    shared.addInto(a[7] + 4 * row0, a[3] + 4 * row0, row1 - row0);
  } else throw new Error('WorkerPool: no op ' + op);
}`;

/** The calling thread's copy of the dispatch (RUN_ROWS_SOURCE). */
type RunRows = (loops: ProductLoops, shared: SharedLoops, op: JobOp, a: ArrayLike<number>, row0: number, row1: number, thread: number) => void;
// (a string made into a function on purpose: the workers' copy is the same text)
const runRows = new Function(`return ${RUN_ROWS_SOURCE}`)() as RunRows;

// What the program walker (simd/walker.wat) imports: the memory, the loops
// of the other two modules (wasm-to-wasm calls), the caller steps' callback
// and the clock its spins are bounded by (process.uptime itself, a native
// function: no JavaScript for V8 to compile, as performance.now's wrapper
// was). The same text in the workers.
const WALKER_IMPORTS_SOURCE = `(memory, loops, shared, callerStep, slept) => ({
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
const walkerImports = new Function(`return ${WALKER_IMPORTS_SOURCE}`)() as (
  memory: WebAssembly.Memory,
  loops: ProductLoops,
  shared: SharedLoops,
  callerStep: (step: number) => void,
  slept: () => void,
) => WebAssembly.ModuleImports;

/** walker.wat's exports (see there). */
interface ProgramWalker {
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
  /** Each step's LEFT and claim word for the run of tagBits (from its op and units words), plain stores: see the header. */
  arm(program: number, tagBits: number, steps: number): void;
  /** The step this thread's walk was at (after a trap: the failed unit's). */
  step(): number;
  /** Units of the claim whose unit trapped (0: none in flight). */
  take(): number;
}

// The worker's whole program (plain JavaScript, run with eval: no loader or
// build step involved). It never returns to its event loop: it sleeps in
// Atomics.wait until the next job.
const WORKER_SOURCE = `
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
  // keeper sees it exit, with this line (see "Failures" in the header)
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
// Units [u0, u1) of the open job (its descriptor read after the claim: see the header).
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
  const spinMs = Atomics.load(control, ${SPIN_MICROS_AT}) / 1000; // (0 while the cores are busy: see BUSY_WINDOW_MS)
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
  // a program run open: walk it
  const program = Atomics.load(control, ${PROGRAM_RUN});
  if ((program & ${COUNT_MASK}) !== 0) walk(program >>> ${TAG_SHIFT}, program & ${COUNT_MASK});
}
`;

// Wakes every thread that may wait on a pool that is breaking (STOP set
// before): the workers waiting for a job (GENERATION, bumped), the caller
// waiting for a job's units (DONE), and every thread asleep at a program's
// barrier or after a claim (each step's LEFT word). The keeper's and the
// caller's copy, one text.
const WAKE_SOURCE = `(control, programAt) => {
  Atomics.add(control, ${GENERATION}, 1);
  Atomics.notify(control, ${GENERATION});
  Atomics.notify(control, ${DONE});
  for (let s = 0; s < ${MAX_PROGRAM_STEPS}; s++) Atomics.notify(control, programAt + ${STEP_WORDS} * s + ${STEP_LEFT});
}`;
const wakeAll = new Function(`return ${WAKE_SOURCE}`)() as (control: Int32Array, programAt: number) => void;

// The keeper: a thread of its own, whose event loop stays free (the
// caller's is blocked while it waits for the workers, and a worker's never
// turns), that makes the workers and watches them: see "Failures" in the
// header. A worker that exits before the pool is disposed breaks it: the
// keeper posts a line on the reports port, sets FAILED and STOP_BROKEN,
// wakes every waiting thread and terminates the other workers. It exits
// once they all have.
const KEEPER_SOURCE = `
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
function brokenLine(report: string): string {
  return `WorkerPool: ${report} while the pool was in use (a worker must run until dispose()): the pool is unusable; dispose it and make a new one`;
}

/** An error's first line (no stack). */
function firstLine(e: unknown): string {
  return String(e).split('\n')[0]!;
}

let compiled: WebAssembly.Module | undefined;
function productsModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  return compiled;
}

let compiledWalker: WebAssembly.Module | undefined;
function walkerModule(): WebAssembly.Module {
  compiledWalker ??= new WebAssembly.Module(Buffer.from(WALKER_WASM_BASE64, 'base64'));
  return compiledWalker;
}

let compiledShared: WebAssembly.Module | undefined;
function sharedLoopsModule(): WebAssembly.Module {
  compiledShared ??= new WebAssembly.Module(Buffer.from(SHARED_LOOPS_WASM_BASE64, 'base64'));
  return compiledShared;
}

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
  /** Per step: 1 for an every-thread step (see "Every-thread steps" in the header). */
  readonly everyThread: Uint8Array;
  readonly args: readonly number[][];
  readonly callers: readonly ((() => void) | undefined)[];
}

/** A caller step's op in a ProgramPlan. */
export const PROGRAM_CALLER_STEP = CALLER_STEP;

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
  /** The control words, in the shared memory at controlAt (bytes): see the header. */
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
   * readings a step.
   */
  programTimes: { runs: number; own: number[]; barrier: number[]; ops: number[] } | undefined;
  private top = 0;
  private readonly started: Promise<void>;
  private disposed = false;
  /** Why the pool can no longer be used (disposed, or broken: see "Failures" in the header): what run and runProgram throw. */
  private unusable: string | undefined;
  /** The last job's tag (CLAIM's top bits). */
  private tag = 0;
  /** The busy-cores watch (see BUSY_WINDOW_MS): calm (workers not spinning) until calmUntil; the window's CPU time at its start (-1: none), its wall time so far (see there) and that of its split jobs; when the last split job ended. */
  /** views()'s two views, of the buffer they were made over. */
  private memoryViews: { floats: Float32Array; ints: Int32Array } | undefined;
  private readonly busy = { calm: false, calmUntil: 0, calmMs: BUSY_CALM_MIN_MS, periods: 0, windowCpu: -1, wallMs: 0, splitMs: 0, last: 0 };

  /** Jobs that read fewer bytes run on the calling thread alone; larger ones are split (0: every job, however small, busy cores or not; for tests). */
  readonly splitMinBytes: number;

  /** The least bytes (of weights, for a product) a unit reads (UNIT_BYTES by default, 1 with splitMinBytes 0; 1 makes every row group a unit, for tests). */
  readonly unitBytes: number;

  /** How long the caller and the workers spin before they sleep (0: never spin). */
  readonly spinMicros: number;

  /** Whether the shared memory asked for 2 MB pages, or why not (kernels/huge_pages.ts). */
  readonly pageAdvice: PageAdvice;

  /**
   * threads: 1 runs every product on the calling thread (no workers).
   * hugePages: false leaves the shared memory on the system's default pages
   * (for A/B runs; default: ask for 2 MB pages, kernels/huge_pages.ts).
   * lateMicros (tests): thread i (0: the caller) waits lateMicros[i] µs after
   * each job is posted before it claims, as a thread preempted or
   * woken late would. diesOnFailure (tests): a worker whose unit fails dies
   * holding its claim instead of counting it: its thread exits
   * (process.exit), throws an uncaught error, or is terminated (by the
   * keeper, while it waits); or it holds its claim and the keeper dies
   * instead: an uncaught error there ('keeper throws'), or its heap (16 MB
   * for this) filled until Node ends it ('keeper out of memory').
   * unlinkableWorkers (tests): the workers are given the walker's module in
   * place of the products loops', which does not link against the loops'
   * imports: each fails to instantiate its WebAssembly as it starts.
   */
  constructor(
    threads: number,
    options: {
      splitMinBytes?: number;
      spinMicros?: number;
      hugePages?: boolean;
      unitBytes?: number;
      lateMicros?: readonly number[];
      diesOnFailure?: 'exit' | 'throw' | 'terminate' | 'keeper throws' | 'keeper out of memory';
      unlinkableWorkers?: boolean;
    } = {},
  ) {
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
    const module = productsModule();
    this.loops = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as ProductLoops;
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
    this.timesAt = this.alloc(16 * MAX_PROGRAM_STEPS);
    this.ownArgsAt = Math.ceil(this.alloc(64 * threads + 64) / 64) * 64; // (a line a thread)
    this.control[SPIN_MICROS_AT] = Math.round(this.spinMicros);
    const late = options.lateMicros ?? [];
    for (let i = 0; i < threads; i++) this.control[LATE_AT + i] = Math.max(0, Math.round(late[i] ?? 0));
    if (threads === 1) {
      this.started = this.exited = Promise.resolve();
      return;
    }
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
    this.keeper = keeper;
    this.reports = reports;
    // The keeper's own error (uncaught there, or out of memory): heard here,
    // where an 'error' event with no listener would throw; its line if the
    // keeper posted none.
    let keeperError: unknown;
    keeper.on('error', (e) => (keeperError = e));
    this.exited = new Promise((resolve) =>
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
    this.started = new Promise((resolve) => {
      keeper
        .once('message', () => {
          if (!this.disposed) keeper.unref(); // (disposed before: held until it exits, for whoever awaits dispose)
          if (Atomics.load(this.control, STOP) === STOP_BROKEN) this.noteBroken();
          resolve();
        })
        .once('exit', () => resolve());
    });
  }

  /**
   * Resolves once every worker has started. Products before then run on the
   * calling thread alone, so awaiting this is needed only to be sure that
   * they are split (tests, benchmarks).
   */
  ready(): Promise<void> {
    return this.started;
  }

  /** Times the workers were told to stop spinning for a while because the process got too little CPU time (see BUSY_WINDOW_MS): for tests and benchmarks. */
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
   * thread; for Q8Gated, see GATED_SCRATCH_FLOATS; for F32Pick and Q8Pick,
   * PICK_RECORD_BYTES). Split over the threads
   * when the bytes it reads (`weightBytes`: a product's weights times its
   * tokens) are at least splitMinBytes and
   * make at least two units of unitBytes, else on this thread alone. A
   * split job's units (whole row groups) are claimed by the threads in
   * turn, as the header says; the results are the same bits however the
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
    if (alone || (this.splitMinBytes > 0 && this.coresBusy(started) && weightBytes < CALM_SPLIT_MIN_BYTES)) {
      this.runRange(op, args, 0, rows);
      this.checkNullGuard();
      return;
    }
    const b = this.busy;
    this.runSplit(op, args, rows, unitRows, started);
    b.last = performance.now();
    b.splitMs += b.last - started;
    b.wallMs += b.last - started;
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
   * builds the plan; see "Programs" in the header): every thread walks the
   * steps, claims units of each, and waits at its barrier; a caller step
   * runs on this thread while the workers wait. On this thread alone (every
   * step in order) with one thread, before the workers have started, and
   * inside another program's caller step; while the cores are busy
   * (BUSY_WINDOW_MS), step by step as run() jobs. Throws after the run has closed, as run() does: this thread's
   * error, else 'a worker failed'; the steps after a failure are not run.
   */
  runProgram(plan: ProgramPlan): void {
    if (this.unusable !== undefined) throw new WorkerPoolError(this.unusable);
    const steps = plan.ops.length;
    // (more would run past the control array's step words)
    if (steps > MAX_PROGRAM_STEPS) throw new RangeError(`WorkerPool: a program has at most ${MAX_PROGRAM_STEPS} steps, got ${steps}`);
    const alone = this.threads === 1 || this.inProgram || Atomics.load(this.control, READY) !== this.threads - 1;
    const started = alone ? 0 : performance.now();
    if (!this.inProgram) this.nullGuard[0] = NULL_CANARY; // (as run())
    if (alone) {
      for (let s = 0; s < steps; s++) {
        const op = plan.ops[s]!;
        if (op === CALLER_STEP) plan.callers[s]!();
        else this.runRange(op, plan.args[s]!, 0, plan.rows[s]!);
      }
      this.checkNullGuard();
      return;
    }
    if (this.splitMinBytes > 0 && this.coresBusy(started)) {
      // busy cores: the steps as run() jobs, as before programs (those of
      // CALM_SPLIT_MIN_BYTES or more still split, the workers woken for
      // them; the rest on this thread)
      for (let s = 0; s < steps; s++) {
        const op = plan.ops[s]!;
        if (op === CALLER_STEP) plan.callers[s]!();
        else this.run(op, plan.args[s]!, plan.rows[s]!, plan.weightBytes[s]!);
      }
      return;
    }
    const c = this.control;
    if (this.loadedPlan !== plan) {
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
    // each step's LEFT and claim word (plain stores: see the header), then the run opens (PROGRAM_RUN)
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
            BigInt(CALLER_SLICE_MS * 1e6), // (its sleeps in slices: STOP looked at after each)
            times === undefined ? 0 : this.timesAt,
            this.ownArgsAt,
          );
          break;
        } catch (e) {
          // (-1: the fault came before this walk set its step, at the call)
          const step = this.walker.step();
          if (step >= 0) from = step;
          const take = this.walker.take();
          if (!this.walkFailed) {
            this.walkFailed = true;
            this.walkError = e;
          }
          Atomics.store(c, FAILED, 1);
          if (take !== 0) this.finishUnits(this.programAt + STEP_WORDS * from + STEP_LEFT, tag, take);
          else if (++faults === MAX_WALK_FAULTS) {
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
    if (times !== undefined) {
      const ms = new Float64Array(this.memory.buffer, this.timesAt, 2 * steps);
      for (let s = 0; s < steps; s++) {
        const op = plan.ops[s]!;
        if (op === CALLER_STEP || plan.everyThread[s]) continue; // (an every-thread step: in the claims of the step after)
        times.own[s] = (times.own[s] ?? 0) + ms[2 * s]!;
        times.barrier[s] = (times.barrier[s] ?? 0) + ms[2 * s + 1]!;
        times.ops[s] = op;
      }
    }
    const b = this.busy;
    b.last = performance.now();
    b.splitMs += b.last - started;
    b.wallMs += b.last - started;
    const workerFailed = Atomics.exchange(c, FAILED, 0) !== 0;
    if (workerFailed && Atomics.load(c, STOP) !== 0) throw this.brokenError(); // (as runSplit)
    if (failed) throw error;
    if (workerFailed) throw new Error('WorkerPool: a worker failed to run its share of a program');
    this.checkNullGuard();
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

  /** Whether the cores are busy (see BUSY_WINDOW_MS), the workers told not to spin; called, at `now`, before each job that would be split. */
  private coresBusy(now: number): boolean {
    // Most calls end here; the window's turns (about one in a thousand
    // calls) are another function, which V8 then does not inline into run:
    // run compiles smaller in a process's first tokens.
    const b = this.busy;
    if (b.calm) {
      if (now < b.calmUntil) return true;
    } else if (b.windowCpu >= 0) {
      b.wallMs += Math.min(now - b.last, BUSY_GAP_MS);
      if (b.wallMs < BUSY_WINDOW_MS) return false;
    }
    return this.busyWindowTurns(now);
  }

  /** coresBusy when a calm period is over, no window is open, or the window is full (its wall time counted): ends the one, opens the next. */
  private busyWindowTurns(now: number): boolean {
    const b = this.busy;
    if (b.calm) {
      b.calm = false;
      b.windowCpu = -1;
      Atomics.store(this.control, SPIN_MICROS_AT, Math.round(this.spinMicros));
    }
    if (b.windowCpu < 0) {
      b.windowCpu = processCpuMs();
      b.wallMs = 0;
      b.splitMs = 0;
      return false;
    }
    const cpu = processCpuMs();
    const beside = cpu - b.windowCpu - b.wallMs;
    const busy = beside < BUSY_SHARE * (this.threads - 1) * b.splitMs;
    b.windowCpu = cpu;
    b.wallMs = 0;
    b.splitMs = 0;
    if (!busy) {
      b.calmMs = BUSY_CALM_MIN_MS;
      return false;
    }
    b.calm = true;
    b.calmUntil = now + b.calmMs;
    b.calmMs = Math.min(2 * b.calmMs, BUSY_CALM_MAX_MS);
    b.periods++;
    Atomics.store(this.control, SPIN_MICROS_AT, 0);
    return true;
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
   * holding a claim: nothing else would ever set STOP (see "Failures" in
   * the header). The keeper keeps KEEPER_WAITERS async waiters on the word
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

  /** Break the pool from this thread (see "Failures" in the header): `line` is what every call throws from now on. */
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
    // runs nothing (dispose from a caller step: see "Failures" in the header)
    Atomics.store(this.control, FAILED, 1);
    Atomics.compareExchange(this.control, STOP, 0, STOP_DISPOSED);
    Atomics.add(this.control, GENERATION, 1);
    Atomics.notify(this.control, GENERATION);
    return this.exited;
  }
}
