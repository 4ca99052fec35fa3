// Why a process's first few hundred greedy decode tokens run slower than the
// later ones, by thread. V8 runs a function as bytecode (then baseline code)
// until it has run a while, then compiles it to optimised code with
// TurboFan on a background thread; a decode step's JavaScript functions get
// there during the first few hundred tokens. The compiling takes a core,
// and with the worker pool's threads holding both (the caller and a
// spinning worker), it takes it from one of them. So per phase of the
// decode (the tokens of one generate call each), this bench reports the CPU
// time of the calling thread, of the pool's workers and of the process's
// other threads (V8's compiler and GC helpers), and how long each group
// waited for a core while it could run (Linux: /proc/self/task/*/schedstat);
// and which functions TurboFan compiled during the decode, with the time
// each compile took on its background thread (--trace-opt: wall time there,
// so it too grows with the machine's load). The background threads' CPU
// time is the cold start's cost in a number that moves less with the load
// than tokens/s (on a quiet machine it barely moved; at a load of 4 to 8,
// 15M f32 2t, 8..264: 22-53 ms): a change that makes the step's functions
// cheaper to compile shows there, given rounds. Per phase also the calling
// thread's time a token outside the pool's jobs and programs: the decode's
// own JavaScript (bytecode and baseline code until TurboFan's arrives, so
// more in the first phases).
//
// Each round is a fresh process (a random checkpoint, as bench/decode.ts
// uses); medians over the rounds.
//
//   node dist/bench/cold_start.js [--shapes 15M] [--weights q8] [--threads N] [--rounds 3] [--phases 8,256,256,256] [--record]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defaultThreads } from '../kernels/threads.js';
import { initBackend } from '../src/backend.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { benchArgs, markdownTable, median, recordResult, runBench, shapesFlag, timePoolJobs } from './common.js';

const HELP = `bench/cold_start.ts: why a process's first few hundred decode tokens run slower than later ones: per
phase of a greedy decode (by default 8, then 3 x 256 tokens), tokens/s, the calling thread's time a token outside the
pool's jobs, and the CPU time of the calling thread, the pool's workers and V8's background threads (its
optimising compiler), and their waits for a core; the functions
TurboFan compiled during the decode. Linux (/proc); a fresh process per round.

  node dist/bench/cold_start.js [--shapes 15M] [--weights f32|q8] [--threads N] [--rounds 3] [--phases 8,256,256,256] [--record]

  --shapes LIST   llama2.c shapes (${Object.keys(NAMED_SHAPES).join(', ')}); default 15M
  --weights F     f32 or q8 (default q8)
  --threads N     the pool's threads (default: every core, ${defaultThreads()} here)
  --rounds N      processes, one after another (default 3)
  --phases LIST   the tokens of each generate call, in order (default 8,256,256,256; 8,128: bench/decode's
                  untimed and timed tokens)
  --record        append the tables to bench/RESULTS.md
  --help          this text`;

/** The decode's phases by default: the tokens of each generate call, in order (the first as bench/decode's untimed ones). */
const PHASES = [8, 256, 256, 256];

const TASKS = '/proc/self/task';

// Every flag read and checked here, before tfjs or a model loads: --help and a bad value answer at once.
const cli = benchArgs(HELP, ['child FILE']);
const threads = cli.count('threads', defaultThreads(), 1, 256);
const weights = cli.choice('weights', 'q8', ['f32', 'q8'] as const);
const phaseTokens = phasesFlag();
const childModel = cli.has('child') ? cli.value('child', '') : undefined;
const shapes = shapesFlag(cli, 'shapes', '15M');
const rounds = cli.count('rounds', 3, 1, 100);
if (!existsSync(TASKS)) cli.fail(`needs Linux's ${TASKS} (per-thread CPU times)`);
const { generate } = await import('../src/generate.js');
const { disposeModel } = await import('../src/model/weights.js');
const { argmax } = await import('../src/sample/sampler.js');
const { loadOurs, randomCheckpoint } = await import('./models.js');

/** --phases: a list of token counts. */
function phasesFlag(): number[] {
  const text = cli.value('phases', PHASES.join(','));
  const phases = text.split(',').map(Number);
  if (phases.length === 0 || phases.length > 64 || !phases.every((n) => Number.isInteger(n) && n >= 1 && n <= 100_000))
    cli.fail(`--phases: expected a comma-separated list of 1 to 64 token counts from 1 to 100000, got '${text}'`);
  return phases;
}

/** A thread group's time in a phase, ms: on a core, and runnable but waiting for one. */
interface Times {
  run: number;
  waited: number;
}

interface Phase {
  tokens: string;
  tokensPerSecond: number;
  /** The calling thread's µs a token outside the pool's jobs (WorkerPool.run, runProgram). */
  outsideMicros: number;
  caller: Times;
  workers: Times;
  background: Times;
}

/** What a child reports: its phases and the TurboFan compiles during the decode (function name -> ms). */
interface ChildReport {
  phases: Phase[];
  compiles: Record<string, number>;
}

/** Each thread's schedstat (ms on a core, ms waiting), by thread id. */
function threadTimes(): Map<string, Times> {
  const times = new Map<string, Times>();
  for (const tid of readdirSync(TASKS)) {
    try {
      const [run, waited] = readFileSync(`${TASKS}/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      times.set(tid, { run: run! / 1e6, waited: waited! / 1e6 });
    } catch {
      // the thread has exited since the listing
    }
  }
  return times;
}

/** Marks the decode's start in the child's output: --trace-opt lines after it are the decode's compiles. */
const DECODE_STARTS = '=== cold_start: decode starts';
const REPORT = '=== cold_start: report ';

/** Child: load, decode the phases; print the marker, then the report. */
async function child(model: string, threads: number, weights: 'f32' | 'q8', phaseTokens: readonly number[]): Promise<void> {
  await initBackend('wasm');
  const before = new Set(readdirSync(TASKS));
  // as the CLI loads it: straight into the pool
  const m = loadOurs('bench cold_start', model, threads, weights);
  await m.pool?.ready();
  // the threads the load started: the pool's workers (and the keeper that made them: idle in its event loop)
  const workers = new Set(readdirSync(TASKS).filter((tid) => !before.has(tid)));
  const caller = String(process.pid);
  const groupOf = (tid: string): 'caller' | 'workers' | 'background' => (tid === caller ? 'caller' : workers.has(tid) ? 'workers' : 'background');
  const inPool = timePoolJobs(m.pool);
  console.log(DECODE_STARTS);
  const phases: Phase[] = [];
  let last = threadTimes();
  let first = 0;
  for (const steps of phaseTokens) {
    const started = performance.now();
    const pooledBefore = inPool.ms();
    for await (const _ of generate(m, { kind: 'dense' }, [1], argmax, { steps }));
    const ms = performance.now() - started;
    const now = threadTimes();
    const phase: Phase = {
      tokens: `${first}..${first + steps}`,
      tokensPerSecond: steps / (ms / 1000),
      outsideMicros: (1000 * (ms - (inPool.ms() - pooledBefore))) / steps,
      caller: { run: 0, waited: 0 },
      workers: { run: 0, waited: 0 },
      background: { run: 0, waited: 0 },
    };
    for (const [tid, t] of now) {
      const was = last.get(tid) ?? { run: 0, waited: 0 };
      const group = phase[groupOf(tid)];
      group.run += t.run - was.run;
      group.waited += t.waited - was.waited;
    }
    phases.push(phase);
    last = now;
    first += steps;
  }
  await disposeModel(m);
  console.log(REPORT + JSON.stringify({ phases }));
}

/**
 * --trace-opt's completed compiles after the marker, ms by function (the
 * middle of the three times it prints: the part on the background thread).
 */
function compilesAfterMarker(output: string): Record<string, number> {
  const compiles: Record<string, number> = {};
  const start = output.indexOf(DECODE_STARTS);
  if (start < 0) return compiles;
  const pattern = /\[completed compiling 0x[0-9a-f]+ <JSFunction ([^ >]*)[^\]]*?took [0-9.]+, ([0-9.]+), [0-9.]+ ms\]/g;
  for (const match of output.slice(start).matchAll(pattern)) {
    const name = match[1]!.startsWith('(') || match[1] === '' ? '(anonymous)' : match[1]!; // an anonymous function prints as "(sfi = ...)"
    compiles[name] = (compiles[name] ?? 0) + Number(match[2]);
  }
  return compiles;
}

/** One round: a child process under --trace-opt. */
function round(model: string, threads: number, weights: 'f32' | 'q8', phaseTokens: readonly number[]): ChildReport {
  const script = fileURLToPath(import.meta.url);
  const args = ['--trace-opt', script, '--child', model, '--threads', String(threads), '--weights', weights, '--phases', phaseTokens.join(',')];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  const line = r.stdout.split('\n').find((l) => l.startsWith(REPORT));
  if (r.status !== 0 || line === undefined) throw new Error(`cold_start child failed (status ${r.status}): ${r.stderr.slice(-2000)}`);
  const { phases } = JSON.parse(line.slice(REPORT.length)) as { phases: Phase[] };
  return { phases, compiles: compilesAfterMarker(r.stdout) };
}

const ms = (x: number) => x.toFixed(0);

async function main(): Promise<void> {
  if (childModel !== undefined) {
    await child(childModel, threads, weights, phaseTokens);
    return;
  }
  const sections: string[] = [];
  for (const shape of shapes) {
    const model = randomCheckpoint(shape);
    const reports = Array.from({ length: rounds }, () => round(model, threads, weights, phaseTokens));
    const phaseRows = reports[0]!.phases.map((p, i) => {
      const of = (pick: (q: Phase) => number) => median(reports.map((r) => pick(r.phases[i]!)));
      const times = (group: 'caller' | 'workers' | 'background') => `${ms(of((q) => q[group].run))} / ${ms(of((q) => q[group].waited))}`;
      return [p.tokens, ms(of((q) => q.tokensPerSecond)), of((q) => q.outsideMicros).toFixed(1), times('caller'), times('workers'), times('background')];
    });
    const names = new Set(reports.flatMap((r) => Object.keys(r.compiles)));
    const compiled = [...names].map((name) => ({ name, ms: median(reports.map((r) => r.compiles[name] ?? 0)) })).sort((a, b) => b.ms - a.ms);
    const total = median(reports.map((r) => Object.values(r.compiles).reduce((a, b) => a + b, 0)));
    const shown = compiled.slice(0, 16);
    const compileRows = [...shown.map((c) => [c.name, c.ms.toFixed(1)]), ['(all, ' + names.size + ' functions)', total.toFixed(1)]];
    const section = [
      `${shape} ${weights}, ${threads} thread(s), ${rounds} process(es), medians (load ${loadavg()[0]!.toFixed(2)})`,
      '',
      markdownTable(
        ['tokens', 'tok/s', 'caller outside the pool, µs a token', 'caller CPU / waited ms', 'workers CPU / waited ms', 'V8 background CPU / waited ms'],
        phaseRows,
      ),
      '',
      'TurboFan compiles during the decode (ms on the background thread, by function):',
      '',
      markdownTable(['function', 'ms'], compileRows),
    ].join('\n');
    console.log(section + '\n');
    sections.push(section);
  }
  recordResult('Cold start (bench/cold_start.ts)', `node dist/bench/cold_start.js ${process.argv.slice(2).join(' ')}`.trim(), sections.join('\n\n'));
}

await runBench(main);
