// The worker pool's control words (kernels/pool.ts) and the protocol of a
// job over them: how a job is posted, cut into units, claimed by every
// thread and waited for, so that each output row is computed by exactly
// one claim. The program walker (kernels/pool_walker.ts) runs programs over
// the same words; the keeper (kernels/pool_keeper.ts) ends every wait when
// a thread is gone.
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
// program walker in WebAssembly reaches them: kernels/pool_walker.ts; and not at
// the memory's low bytes, which a pointer left 0 writes: pool.ts NULL_GUARD_BYTES):
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
// processes want the cores), the workers do not spin at all:
// kernels/pool_busy.ts.
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

// The control array (an Int32Array over the pool's shared memory, at controlAt); see above.
export const GENERATION = 0; // bumped once per job (and by dispose); the workers wait on it
export const CLAIM = 1; // the open job's claim word: tag | front | back
export const DONE = 2; // units of the open job the workers have finished
export const CALLER_WAITS = 3; // 1 while the caller sleeps on DONE
export const FAILED = 4; // set by a thread whose loop threw, and before STOP by whoever breaks the pool or disposes it
export const READY = 5; // workers that have started and wait for jobs
export const SPIN_MICROS_AT = 6; // how long the workers spin before sleeping, µs (0: never spin; 0 while the cores are busy)
export const SLEEPING = 7; // workers asleep in Atomics.wait (or on their way there)
export const STOP = 8; // STOP_DISPOSED (dispose()) or STOP_BROKEN (kernels/pool_keeper.ts): every thread leaves
export const NEVER = 9; // always 0: what a test's late thread waits on (lateMicros)
export const PROGRAM_RUN = 10; // the open program run: tag | steps (steps 0: none open); kernels/pool_walker.ts
export const AT_BARRIER = 11; // threads asleep (or on their way) at a program's barrier
// the job's descriptor
export const OP = 12;
export const UNIT_ROWS = 13;
export const ROWS = 14;
export const ARGS = 15; // the job's arguments except the row range (at most 8)
export const MAX_ARGS = 8;
export const LATE_AT = ARGS + MAX_ARGS; // per thread: µs to wait after a job is posted before claiming (tests)
// Then, after LATE_AT's words, the keeper's two (keeperAt: the word its
// async waiter waits on, and its answers: see WorkerPool.probeKeeper); then, from the
// first line (16 words) after those, a program's steps:
// STEP_WORDS each, a cache line (kernels/pool_walker.ts): the claim
// word and the descriptor, and the step before's LEFT word (the step's own
// LEFT lies in the next step's line). Word 0 is the step's claim word
// (STEP_CLAIM: tag | front | back, as CLAIM), written and claimed only in
// simd/walker.wat.
export const STEP_OP = 1; // the step's op (CALLER_STEP: a caller step)
export const STEP_UNIT_ROWS = 2;
export const STEP_ROWS = 3;
export const STEP_ARGS = 4; // MAX_ARGS words
export const STEP_UNITS = STEP_ARGS + MAX_ARGS; // the step's units (what its LEFT and claim words start from in each run; an every-thread step's 0)
export const STEP_THREAD_BYTES = STEP_UNITS + 1; // bytes from one thread's copy of the step's per-thread arguments to the next's
export const STEP_FLAGS = STEP_UNITS + 2; // bits 0..7: which arguments are per thread (kernels/pool_walker.ts, "Every-thread steps"); EVERY_THREAD
/** STEP_FLAGS' bit of an every-thread step. */
export const EVERY_THREAD = 256;
export const STEP_WORDS = 16;
export const STEP_LEFT = STEP_WORDS + 15; // units of the step not yet finished: tag | left (the last word of the next step's line)
/** STOP's values: the pool disposed; the pool broken (a worker gone, or the caller's walk failing again and again). */
export const STOP_DISPOSED = 1;
export const STOP_BROKEN = 2;
/**
 * The longest the caller sleeps before it looks at STOP again, while it
 * waits for the workers' units (a job's DONE, a program's barrier): a
 * worker that is gone never counts its units, and the keeper's notify can
 * come just before the caller sleeps.
 */
export const CALLER_SLICE_MS = 50;
/** A caller step's op word. */
export const CALLER_STEP = -1;
/** The most steps a program holds (the control array keeps room for them: 128 KiB). */
export const MAX_PROGRAM_STEPS = 2048;

// CLAIM's fields: the tag in the top 10 bits, front and back 11 bits each
// (in units of UNIT_ROWS rows).
export const INDEX_BITS = 11;
export const INDEX_MASK = (1 << INDEX_BITS) - 1;
export const FRONT_ONE = 1 << INDEX_BITS;
export const TAG_SHIFT = 2 * INDEX_BITS;
export const TAG_MASK = (1 << (32 - TAG_SHIFT)) - 1;
/** PROGRAM_RUN's step count, STEP_LEFT's units left: the bits below the tag. */
export const COUNT_MASK = (1 << TAG_SHIFT) - 1;
/** The most units a job is cut into (what front and back can count). */
export const MAX_UNITS = INDEX_MASK;

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
 * The caller's claims are adjacent, front to back, one stream. (Tried in
 * the program walker, session 26: each thread's first claim of a step its
 * static share, 7/8 of the units / threads, as run.c's static halves give
 * each thread one long stream, then guided claims: 15M f32 decode on 2 threads
 * in one process 0.986x and 1 / 1.008x the time against A/As of 1.003 and
 * 0.988, no change resolved; bench/RESULTS.md, 'Second thread'.)
 */
export const GUIDE = 2;

/** Units a thread claims when `left` are left (the workers compute the same). */
export function claimUnits(left: number, threads: number): number {
  return Math.ceil(left / (GUIDE * threads));
}

/** How long a worker (after a job) and the caller (after its claims) spin before they sleep, by default. */
export const SPIN_MICROS = 200;
