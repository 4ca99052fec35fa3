// Busy cores: while other processes want the cores, the worker pool's
// workers (kernels/pool.ts) stop spinning and small jobs run on the calling
// thread alone, for a while.
//
// A spinning worker takes a core that, when other processes
// want the cores, the caller may need: measured on 2 cores with one busy
// loop beside it, a 110M q8 decode on 2 threads got 1.07 cores in all (on
// idle cores 1.77), 87 tok/s against 112 on one thread, though each split
// job was still faster than the caller's own pace; with the workers never
// spinning, 100-106. (The same happens with other processes at nice 19
// holding the cores: a worker that slept gets its core back only after
// their slice.) So the caller watches the CPU time the process gets: over a
// window of BUSY_WINDOW_MS of wall time (counted through the split jobs and
// from each to the next, at most BUSY_GAP_MS: an idle caller says nothing),
// the CPU time beyond the caller's own (CPU time minus that wall time)
// should be at least BUSY_SHARE of what the workers would have had running
// beside it through the split jobs. If not,
// the workers stop spinning (they sleep after each job) and jobs smaller
// than CALM_SPLIT_MIN_BYTES, too short to repay a wake-up, run alone, for
// BUSY_CALM_MIN_MS, doubled while the cores stay busy up to
// BUSY_CALM_MAX_MS; then the workers spin again and the caller measures.
// (Running every job alone instead matched one thread in decode on busy
// cores, but on cores held by niced processes it also lost the long jobs
// of blocked evaluation, which pay split even then.) Measured with one busy
// loop beside it (same run, tok/s): 110M q8 decode 2 threads 111.7, 1 thread
// 112.8, the fixed-share pool 99.2; blocked eval 187, 164, 184; 15M q8
// decode 632, 683, 635.
import { SPIN_MICROS_AT } from './pool_control.js';

const BUSY_WINDOW_MS = 25;
const BUSY_GAP_MS = 2;
const BUSY_SHARE = 0.35;
const BUSY_CALM_MIN_MS = 50;
const BUSY_CALM_MAX_MS = 1000;
export const CALM_SPLIT_MIN_BYTES = 1024 * 1024;

/** The process's CPU time so far, every thread's, in ms. */
function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The busy-cores watch of one pool (see above): calm (workers not spinning) until calmUntil; the window's CPU time at its start (-1: none), its wall time so far and that of its split jobs; when the last split job ended. */
export class BusyCores {
  /** Times the workers were told to stop spinning for a while (WorkerPool.calmPeriods). */
  periods = 0;
  private calm = false;
  private calmUntil = 0;
  private calmMs = BUSY_CALM_MIN_MS;
  private windowCpu = -1;
  private wallMs = 0;
  private splitMs = 0;
  private last = 0;

  constructor(
    /** The pool's control words: SPIN_MICROS_AT is set to 0 while the cores are busy, back to spinMicros after. */
    private readonly control: Int32Array,
    private readonly spinMicros: number,
    private readonly threads: number,
  ) {}

  /** Whether the cores are busy, the workers told not to spin; called, at `now`, before each job (or program run) that would be split. */
  coresBusy(now: number): boolean {
    // Most calls end here; the window's turns (about one in a thousand
    // calls) are another function, which V8 then does not inline into
    // WorkerPool.run: run compiles smaller in a process's first tokens.
    if (this.calm) {
      if (now < this.calmUntil) return true;
    } else if (this.windowCpu >= 0) {
      this.wallMs += Math.min(now - this.last, BUSY_GAP_MS);
      if (this.wallMs < BUSY_WINDOW_MS) return false;
    }
    return this.windowTurns(now);
  }

  /** coresBusy when a calm period is over, no window is open, or the window is full (its wall time counted): ends the one, opens the next. */
  private windowTurns(now: number): boolean {
    if (this.calm) {
      this.calm = false;
      this.windowCpu = -1;
      Atomics.store(this.control, SPIN_MICROS_AT, Math.round(this.spinMicros));
    }
    if (this.windowCpu < 0) {
      this.windowCpu = processCpuMs();
      this.wallMs = 0;
      this.splitMs = 0;
      return false;
    }
    const cpu = processCpuMs();
    const beside = cpu - this.windowCpu - this.wallMs;
    const busy = beside < BUSY_SHARE * (this.threads - 1) * this.splitMs;
    this.windowCpu = cpu;
    this.wallMs = 0;
    this.splitMs = 0;
    if (!busy) {
      this.calmMs = BUSY_CALM_MIN_MS;
      return false;
    }
    this.calm = true;
    this.calmUntil = now + this.calmMs;
    this.calmMs = Math.min(2 * this.calmMs, BUSY_CALM_MAX_MS);
    this.periods++;
    Atomics.store(this.control, SPIN_MICROS_AT, 0);
    return true;
  }

  /** A split job (or program run) taken at `started` has ended: its wall time counts in the window, as the CPU time the workers could have had. */
  splitEnded(started: number): void {
    this.last = performance.now();
    this.splitMs += this.last - started;
    this.wallMs += this.last - started;
  }
}
