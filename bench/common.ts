// Shared pieces of the benchmarks: the command line (--help, --record), the
// machine line, median, RSS, where large inputs go, and the results file
// every benchmark appends to when asked. Nothing here loads tfjs or a model
// (bench/models.ts does): a benchmark reads its flags through this file and
// imports the rest after, so that --help and a bad flag answer at once.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerPool } from '../kernels/pool.js';
import { WorkerPoolError } from '../kernels/pool_error.js';
import { StreamllmError } from '../src/errors.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { medianInterval } from '../src/stats.js';

export const RESULTS = fileURLToPath(new URL('../../bench/RESULTS.md', import.meta.url));
/**
 * Where benchmarks keep their large generated inputs (random checkpoints of
 * hundreds of MiB), reused between runs: the system's temporary folder, not
 * the repository.
 */
export const BENCH_CACHE = join(tmpdir(), 'streamllm-bench');

/** A benchmark's command line. */
export interface BenchArgs {
  /** The value after `--name`, or the fallback when the flag is absent (given without a value: an error). */
  value(name: string, fallback: string): string;
  /** Whether `--name` was given. */
  has(name: string): boolean;
  /** A whole number `--name N` in [min, max], or the fallback. */
  count(name: string, fallback: number, min?: number, max?: number): number;
  /** `--name X` with X one of `choices`, or the fallback. */
  choice<C extends string>(name: string, fallback: C, choices: readonly C[]): C;
  /** Say what was wrong in one line on stderr (`bench NAME: message`) and exit with status 2. */
  fail(message: string): never;
}

/**
 * Read a benchmark's flags; with `--help`, print `usage` and exit before any
 * work (every benchmark answers --help without running). The usage text
 * declares the flags: each `--name` that a line of it starts with (its
 * table of flags) or that its command line (`node dist/bench/NAME.js ...`)
 * shows is one, taking a value where the text shows it followed by one
 * space and a value (`--tokens N`, `[--shape 15M]`), a switch elsewhere
 * (`--record`). `internal` adds the flags a
 * benchmark passes to its own child processes, written the same way
 * (`'child FILE'`, `'spin-off'`). A flag the usage does not declare, a
 * flag given twice, a value flag without its value, an argument that is no flag's value (unless
 * `positional`: the benchmark reads those itself), and a bad value (count,
 * choice) are errors: one line on stderr and status 2, before any work
 * (`streamllm bench` passes the status on).
 */
export function benchArgs(usage: string, internal: readonly string[] = [], positional = false): BenchArgs {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    console.log(usage);
    process.exit(0);
  }
  const script = `bench ${basename(process.argv[1] ?? 'bench', '.js')}`;
  const fail = (message: string): never => {
    process.stderr.write(`${script}: ${message}\n`);
    process.exit(2);
  };
  // (declared where a line of the usage starts with them, up to the description after two spaces, and on its
  // command lines; not where a description names another program's: big_q8's "streamllm init --dim 2560 ..."
  // declared --dim, accepted and ignored)
  const lines = usage.split('\n').flatMap((line) => (/^\s+--/.test(line) ? [line.trim().split(/\s{2,}/)[0]!] : line.includes('dist/bench/') ? [line] : []));
  const declared = [...lines, ...internal.map((f) => `--${f}`)].join('\n');
  const known = new Set([...declared.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
  const takesValue = new Set([...declared.matchAll(/--([a-z][a-z0-9-]*) [A-Za-z0-9/.$]/g)].map((m) => m[1]!));
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      if (seen.has(a)) fail(`${a} given twice`);
      seen.add(a);
      if (!known.has(a.slice(2))) {
        const listed = [...known].filter((f) => !internal.some((d) => d.split(' ')[0] === f));
        fail(`unknown flag ${a} (flags: ${listed.map((f) => `--${f}`).join(', ')})`);
      }
      if (takesValue.has(a.slice(2))) i++; // its value (checked when read)
    } else if (!positional) {
      fail(`unexpected argument '${a}': every argument is a flag or a flag's value (see --help)`);
    }
  }
  const value = (name: string, fallback: string): string => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = argv[i + 1];
    return v === undefined || v.startsWith('--') ? fail(`--${name}: expected a value after it`) : v;
  };
  return {
    value,
    has: (name) => argv.includes(`--${name}`),
    count(name, fallback, min = 1, max = Number.MAX_SAFE_INTEGER) {
      const given = value(name, String(fallback));
      const n = Number(given);
      return /^\d+$/.test(given) && n >= min && n <= max
        ? n
        : fail(`--${name}: expected a whole number ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`}, got '${given}'`);
    },
    choice(name, fallback, choices) {
      const given = value(name, fallback);
      return (choices as readonly string[]).includes(given)
        ? (given as typeof fallback)
        : fail(`--${name}: expected one of ${choices.join(', ')}, got '${given}'`);
    },
    fail,
  };
}

/**
 * A training benchmark's model and batch flags, checked (bench/train.ts,
 * bench/profile_train.ts): `--shape DIM,LAYERS,HEADS` (default 256,4,8),
 * `--vocab` (4096), `--batch` (8), `--seq-len` (256).
 */
export function trainModelFlags(cli: BenchArgs): { dim: number; layers: number; heads: number; vocab: number; batch: number; seqLen: number } {
  const shape = cli.value('shape', '256,4,8');
  if (!/^\d+,\d+,\d+$/.test(shape)) cli.fail(`--shape: expected DIM,LAYERS,HEADS (three whole numbers), got '${shape}'`);
  const [dim, layers, heads] = shape.split(',').map(Number) as [number, number, number];
  if (!(dim >= 1 && dim <= 8192 && layers >= 1 && layers <= 256 && heads >= 1 && dim % heads === 0))
    cli.fail(`--shape: expected DIM in 1..8192 divisible by HEADS and LAYERS in 1..256, got '${shape}'`);
  const vocab = cli.count('vocab', 4096, 2, 262_144);
  const batch = cli.count('batch', 8, 1, 1024);
  const seqLen = cli.count('seq-len', 256, 2, 16_384);
  return { dim, layers, heads, vocab, batch, seqLen };
}

/** `--name` as a comma-separated list of llama2.c shape names (NAMED_SHAPES), each checked. */
export function shapesFlag(cli: BenchArgs, name: string, fallback: string): string[] {
  const shapes = cli.value(name, fallback).split(',');
  for (const s of shapes) if (NAMED_SHAPES[s] === undefined) cli.fail(`--${name}: unknown shape '${s}' (known: ${Object.keys(NAMED_SHAPES).join(', ')})`);
  return shapes;
}

/** `--name` as one llama2.c shape name, checked. */
export function shapeFlag(cli: BenchArgs, name: string, fallback: string): string {
  const shape = cli.value(name, fallback);
  if (NAMED_SHAPES[shape] === undefined) cli.fail(`--${name}: unknown shape '${shape}' (known: ${Object.keys(NAMED_SHAPES).join(', ')})`);
  return shape;
}

/**
 * Run a benchmark's main. A user's error (a file, model or flag that is not
 * what was expected: StreamllmError; or a worker pool broken: WorkerPoolError) is one line on stderr and status 2;
 * anything else is a bug and keeps its stack trace.
 */
export async function runBench(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (!(e instanceof StreamllmError || e instanceof WorkerPoolError)) throw e;
    process.stderr.write(`bench ${basename(process.argv[1] ?? 'bench', '.js')}: ${e.message}\n`);
    process.exit(2);
  }
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'} x${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

export { median } from '../src/stats.js';

/** "median (low..high)" of xs with src/stats.ts's 95% interval of the median, `digits` decimals; the median alone below 6 values (no interval). */
export function medianWithInterval(xs: number[], digits: number): string {
  const { median, low, high } = medianInterval(xs);
  return low === undefined || high === undefined ? median.toFixed(digits) : `${median.toFixed(digits)} (${low.toFixed(digits)}..${high.toFixed(digits)})`;
}

/** A `Field: N kB` line of a /proc/self file, in MiB; undefined where the file or the field is absent (not Linux). */
function procMiB(file: string, field: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return line === undefined ? undefined : Number(line.split(/\s+/)[1]) / 1024;
}

/**
 * Peak resident set size of this process so far, in MiB: Linux's VmHWM
 * (getrusage's maxRSS would carry a large parent's peak into a child).
 */
export function peakRssMiB(): number {
  return procMiB('/proc/self/status', 'VmHWM') ?? process.resourceUsage().maxRSS / 1024;
}

/** MiB of this process's anonymous memory in transparent huge pages now (AnonHugePages; undefined off Linux). */
export function anonHugePagesMiB(): number | undefined {
  return procMiB('/proc/self/smaps_rollup', 'AnonHugePages');
}

/**
 * MiB resident, and of those in 2 MB pages, of the mappings that overlap
 * [address, address + bytes) (/proc/self/smaps); undefined off Linux.
 */
export function residentMiB(address: number, bytes: number): { rss: number; huge: number } | undefined {
  if (!existsSync('/proc/self/smaps')) return undefined;
  let rss = 0;
  let huge = 0;
  let inside = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range !== null) inside = parseInt(range[1]!, 16) < address + bytes && parseInt(range[2]!, 16) > address;
    else if (inside && line.startsWith('Rss:')) rss += Number(line.split(/\s+/)[1]) / 1024;
    else if (inside && line.startsWith('AnonHugePages:')) huge += Number(line.split(/\s+/)[1]) / 1024;
  }
  return { rss, huge };
}

/** The 2 MB-page addon of a build (native/huge_pages.c), where its own kernels/huge_pages.js looks for it. */
export interface PagesAddon {
  /** Its path: that module's HUGE_PAGES_ADDON; undefined where the build has no kernels/huge_pages.js (from before 2 MB pages). */
  path?: string;
  /** Whether the file is there (what the build checks before loading it). */
  present: boolean;
}

/**
 * Where the build in `dist` looks for its 2 MB-page addon, and whether it
 * is there: its own kernels/huge_pages.js's HUGE_PAGES_ADDON, imported, so
 * exactly as it looks (STREAMLLM_HUGE_PAGES_ADDON, else build/Release beside
 * its package.json, links followed). A dist/ copied, or built with tsc
 * alone, has none and runs on 4 KB pages: about 1.16x slower on two
 * threads, which an A/B of two builds would credit to their code.
 */
export async function pagesAddonOf(dist: string): Promise<PagesAddon> {
  const file = join(dist, 'kernels', 'huge_pages.js');
  if (!existsSync(file)) return { present: false };
  const path = ((await import(pathToFileURL(file).href)) as { HUGE_PAGES_ADDON?: string }).HUGE_PAGES_ADDON;
  return { path, present: path !== undefined && existsSync(path) };
}

/** A build's 2 MB-page addon in words: its path, or what is missing (and so 4 KB pages). */
export function pagesAddonLine(addon: PagesAddon): string {
  if (addon.path === undefined) return 'no kernels/huge_pages.js (a build from before 2 MB pages: 4 KB pages)';
  return addon.present ? `2 MB-page addon ${addon.path}` : `no ${addon.path} (the 2 MB-page addon it loads: 4 KB pages)`;
}

/**
 * One line refusing to compare two builds of which one has its 2 MB-page
 * addon and the other not (the A/B would measure page sizes, not code), or
 * undefined where both have it or neither does. `builds`: flag and dist/.
 */
export async function pagesMismatch(builds: [flag: string, dist: string][], allowFlag: string): Promise<string | undefined> {
  const addons = await Promise.all(builds.map(async ([flag, dist]) => ({ flag, dist, addon: await pagesAddonOf(dist) })));
  const without = addons.find((b) => !b.addon.present);
  const withIt = addons.find((b) => b.addon.present);
  if (without === undefined || withIt === undefined) return undefined;
  const fix = without.addon.path === undefined ? '' : `build it (npm run install in ${join(without.dist, '..')}) or `;
  return (
    `--${without.flag} ${without.dist}: ${pagesAddonLine(without.addon)}, while --${withIt.flag} has one (${withIt.addon.path}): ` +
    `${fix}give --${allowFlag} to compare page sizes too`
  );
}

/** Where the machine's and this process's CPU time stood at a moment (othersCores takes two). */
export interface CpuMark {
  /** performance.now(). */
  at: number;
  /** ms every CPU spent busy so far (user, nice, system, irq, softirq: /proc/stat's first line). */
  machineMs: number;
  /** ms of CPU this process and its children waited for so far (process.cpuUsage; /proc/self/stat's cutime and cstime). */
  oursMs: number;
}

/** /proc/stat and /proc/self/stat count in clock ticks: USER_HZ, 100 on Linux's mainstream architectures. */
const TICK_MS = 10;

/** The machine's and this process's CPU time now; undefined off Linux (no /proc/stat). */
export function cpuMark(): CpuMark | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const at = performance.now();
  const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const self = readFileSync('/proc/self/stat', 'utf8');
  const fields = self.slice(self.lastIndexOf(')') + 2).split(' '); // (after the command's name, which may hold spaces)
  const children = Number(fields[13]) + Number(fields[14]); // cutime, cstime: fields 16 and 17 of proc(5)
  const own = process.cpuUsage();
  return {
    at,
    machineMs: (user! + nice! + system! + irq! + softirq!) * TICK_MS,
    oursMs: (own.user + own.system) / 1000 + children * TICK_MS,
  };
}

/**
 * The CPU other processes took between two marks, in cores (0.5: half of
 * one core, on average over the wall time between them): what a figure
 * measured between them competed with, sharper than the load average (a
 * minute's mean of runnable tasks). A child's CPU counts as ours once it has
 * been waited for. Whole clock ticks (10 ms a CPU): a coarse figure over a
 * window under a second.
 */
export function othersCores(from: CpuMark | undefined, to: CpuMark | undefined): number | undefined {
  if (from === undefined || to === undefined || !(to.at > from.at)) return undefined;
  return Math.max(0, to.machineMs - from.machineMs - (to.oursMs - from.oursMs)) / (to.at - from.at);
}

// The loop a worker runs for coreRoundTripNs: answer each odd value of word 0 with the next even one.
const ROUND_TRIP_WORKER = `
const { workerData } = require('node:worker_threads');
const word = new Int32Array(workerData.buffer);
for (let i = 1; i <= workerData.trips; i++) {
  while (Atomics.load(word, 0) !== 2 * i - 1);
  Atomics.store(word, 0, 2 * i);
}`;

/**
 * How far apart the machine put two threads' cores: the round trip of one
 * cache line between this thread and a worker spinning on another core, in
 * ns, the least of 8 batches of 10,000 after an untimed one (V8 compiles the
 * loops during it); about 40 ms. On this project's 2-vCPU VM it read 75-130
 * ns while the two vCPUs shared an L3 and 340-420 while they did not, the
 * hypervisor moving them within seconds, and each placement had its own
 * ratio of two-thread engines (bench/RESULTS.md, "Where the two vCPUs
 * are"). Undefined with one core (the two threads would take turns), and
 * where the probe did not finish within a second: a worker that failed, or
 * a machine so busy that the two threads seldom run at once (on one core,
 * each round trip waits for a time slice).
 */
export async function coreRoundTripNs(): Promise<number | undefined> {
  if (availableParallelism() < 2) return undefined;
  const batch = 10_000;
  const batches = 9;
  const word = new Int32Array(new SharedArrayBuffer(64));
  const worker = new Worker(ROUND_TRIP_WORKER, { eval: true, workerData: { buffer: word.buffer, trips: batch * batches } });
  // a worker that fails never answers, and the deadline below gives up the probe; unheard, its error would end the process
  worker.on('error', () => {});
  const deadline = performance.now() + 1000;
  const times: number[] = [];
  try {
    for (let b = 0, i = 0; b < batches; b++) {
      const started = performance.now();
      for (let k = 0; k < batch; k++) {
        i++;
        Atomics.store(word, 0, 2 * i - 1);
        for (let spins = 1; Atomics.load(word, 0) !== 2 * i; spins++) if (spins % 65536 === 0 && performance.now() > deadline) return undefined;
      }
      if (b > 0) times.push(((performance.now() - started) * 1e6) / batch);
    }
  } finally {
    await worker.terminate();
  }
  return Math.min(...times);
}

/**
 * The round trip (ns, coreRoundTripNs) that parts a run's near placements
 * from its far ones: the geometric middle of the widest gap between
 * neighbouring round trips in order, where that gap is a factor of 2 or
 * more (here 75-130 ns against 340-420); Infinity where there is none (one
 * placement, or none measured: all near).
 */
export function placementBoundary(roundTrips: number[]): number {
  const sorted = [...roundTrips].sort((a, b) => a - b);
  let boundary = Infinity;
  let widest = 2;
  for (let i = 1; i < sorted.length; i++) {
    const gap = sorted[i]! / sorted[i - 1]!;
    if (gap >= widest) {
      widest = gap;
      boundary = Math.sqrt(sorted[i]! * sorted[i - 1]!);
    }
  }
  return boundary;
}

/** A Markdown table. */
export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

/**
 * Append a section to bench/RESULTS.md (title, command, machine, date, body)
 * when the run was given --record; otherwise say how to.
 */
export function recordResult(title: string, command: string, body: string): void {
  if (!process.argv.includes('--record')) {
    console.log('(not recorded: --record appends this to bench/RESULTS.md)');
    return;
  }
  if (!existsSync(RESULTS))
    writeFileSync(
      RESULTS,
      '# Benchmark results\n\nEach section is appended by the benchmark named in it; the latest run of a benchmark is the last section with its title.\n',
    );
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  appendFileSync(RESULTS, `\n## ${title}\n\n- command: \`${command}\`\n- machine: ${machine()}\n- date: ${when}\n\n${body}\n`);
}

/**
 * Times every call of `pool`'s run and runProgram (jobs, and a decode step
 * as one program: kernels/pool_program.ts) from now on: ms() is their total
 * so far, stop() puts the pool's own methods back and returns it; the rest
 * of a stretch is the calling thread's own work. (A program runs its steps
 * as run() jobs while the cores are busy: timed once.)
 */
export function timePoolJobs(pool: WorkerPool | undefined): { ms(): number; stop(): number } {
  if (pool === undefined) return { ms: () => 0, stop: () => 0 };
  let ms = 0;
  let depth = 0;
  const timed =
    <A extends unknown[]>(f: (...args: A) => void) =>
    (...args: A) => {
      const started = performance.now();
      depth++;
      try {
        f(...args);
      } finally {
        if (--depth === 0) ms += performance.now() - started;
      }
    };
  pool.run = timed(pool.run.bind(pool));
  pool.runProgram = timed(pool.runProgram.bind(pool));
  return {
    ms: () => ms,
    stop: () => {
      // the prototype's again
      delete (pool as { run?: unknown }).run;
      delete (pool as { runProgram?: unknown }).runProgram;
      return ms;
    },
  };
}
