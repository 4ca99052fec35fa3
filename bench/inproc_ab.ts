// Two builds of streamllm in ONE process, decoding in turns: resolves a
// 1-2% change in decode speed where fresh processes (bench/builds_ab.ts,
// bench/decode.ts) spread 6-23% on a shared 2-core machine (run-queue
// waits, each process's own cold start and memory layout).
//
// How: each stream imports its build from its dist/ folder by absolute path,
// as a module graph of its own (INSTANCE_HOOK), loads the same random
// llama2.c checkpoint and places it in a worker pool of its own: two or three
// pools in one process, one busy at a time (the waiting pools' threads sleep;
// their CPU is reported). @tensorflow/tfjs is one instance for all (checked:
// every build resolves it to the same files), so tfjs's kernel registry is
// shared: each build's own kernels are swapped in with its turn (activate).
// Each stream runs greedy generate() from BOS on a dense cache, as
// bench/decode.ts's child does; the streams take turns, a block of --block
// tokens each, round robin (no stream twice in a row: a block right after its
// own would find its weights and code warm), the lead passed on with each
// generation. Every stream restarts after the same number of blocks, before
// its context fills (its prompt's step untimed), so the blocks of one turn
// decode the same positions, and the turn's ratio B/A is one measurement; the
// table gives their median, quartiles and a 95% interval of the median, over
// all turns and over the quiet ones (no other process took a core from this
// one). --aa adds a third stream, build A again (its own modules, model and
// pool): A'/A, the spread of no change in the same run.
//
// What it cannot see: what only a fresh process shows (page faults of first
// touches, V8 compiling a process's first few hundred tokens:
// bench/cold_start.ts; how the heap and the pool's memory land in pages),
// and a change that only acts across turns or at start-up. Each block's first
// tokens find the CPU's caches holding another stream's weights and code,
// alike for every stream: a fixed cost of the turn that dilutes a ratio a
// little (about 1/--block of that cost).
//
//   node dist/bench/inproc_ab.js [--a DIST] [--b DIST] [--aa] [--shape 15M] [--weights f32] [--threads N]
//       [--block 16] [--tokens 960] [--rounds 5] [--record]
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { KernelConfig } from '@tensorflow/tfjs';
import { benchArgs, cpuMark, markdownTable, median, othersCores, recordResult, runBench, shapeFlag } from './common.js';

const HELP = `bench/inproc_ab.ts: two builds' greedy decode in one process, in turns of --block tokens: µs/token of each
and the ratio B/A of block pairs at the same positions (a 1-2% change resolves; fresh processes spread 6-23% here).

  node dist/bench/inproc_ab.js [--a DIST] [--b DIST] [--aa] [--shape 15M] [--weights f32] [--threads N] [--block 16] [--tokens 960] [--rounds 5] [--record]

  --a DIST       build A's dist/ folder (default: this build's)
  --b DIST       build B's dist/ folder (default: A's, a second model of it: an A/A)
  --aa           also a second model of build A, a third stream in the same turns: A'/A, the spread of no change
  --shape S      the random llama2.c checkpoint's shape (default 15M)
  --weights F    f32 or q8 in the worker pool (default f32), or tfjs: no pool, tfjs's wasm backend on one thread
  --threads N    the pool's threads (default: every core, ${availableParallelism()} here)
  --block N      tokens a turn (default 16)
  --tokens N     tokens timed per stream and round (default 960; rounded up to whole blocks)
  --rounds N     rounds (default 5): a table row each
  --record       append the table to bench/RESULTS.md
  --help         this text

Both builds must resolve @tensorflow/tfjs to the same files (a worktree: node_modules a link to the main checkout's).`;

const cli = benchArgs(HELP);
const own = fileURLToPath(new URL('..', import.meta.url)); // this build's dist/
const distA = resolve(cli.value('a', own));
const distB = resolve(cli.value('b', distA));
for (const [flag, dir] of [
  ['a', distA],
  ['b', distB],
] as const) {
  if (!existsSync(join(dir, 'src', 'generate.js'))) cli.fail(`--${flag}: ${dir} is not a build's dist/ folder (no src/generate.js in it)`);
}
const aa = cli.has('aa');
const shape = shapeFlag(cli, 'shape', '15M');
const weights = cli.choice('weights', 'f32', ['f32', 'q8', 'tfjs']);
const threads = cli.count('threads', availableParallelism(), 1, 256);
const block = cli.count('block', 16, 1, 1024);
const tokens = cli.count('tokens', 960, 1, 1_000_000);
const rounds = cli.count('rounds', 5, 1, 1000);
/**
 * Turns in which every block's CPU share (the process's CPU time over its
 * threads' wall time) was at least this count as quiet: no other process
 * took a core from this one for long.
 */
const QUIET_SHARE = 0.9;

/** One package's file as `dir` resolves it, links followed: two builds share tfjs only where these agree. */
function packageFile(dir: string, pkg: string): string {
  try {
    return realpathSync(createRequire(join(dir, 'x.js')).resolve(pkg));
  } catch {
    return `(${pkg} not found from ${dir})`;
  }
}
for (const pkg of ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm']) {
  const mine = packageFile(dirname(fileURLToPath(import.meta.url)), pkg);
  for (const dir of new Set([distA, distB])) {
    const theirs = packageFile(join(dir, 'src'), pkg);
    if (theirs !== mine)
      cli.fail(
        `${dir}: resolves ${pkg} to ${theirs}, this script to ${mine}: two copies in one process would not share one engine (link its node_modules to the same)`,
      );
  }
}

// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const tf = await import('@tensorflow/tfjs');
const { randomCheckpoint } = await import('./models.js');

/** What this benchmark uses of a build, imported from its dist/ folder. */
interface Build {
  dist: string;
  /** Its git commit, where dist/.. is a checkout (a + when its tracked files differ from the commit). */
  commit: string;
  loadModel: typeof import('../src/model/load.js').loadModel;
  placeWeights: typeof import('../src/model/pooled.js').placeWeights;
  disposeModel: typeof import('../src/model/weights.js').disposeModel;
  generate: typeof import('../src/generate.js').generate;
  argmax: typeof import('../src/sample/sampler.js').argmax;
  /** The kernels it registered in tfjs (saved while another build runs). */
  kernels: KernelConfig[];
}

/**
 * Each stream imports its build as a module graph of its own, even where
 * two streams share a dist/ folder (an A/A, --aa): every module URL carries
 * `?inproc=KEY` (a resolve hook passes a module's own key on to what it
 * imports, packages aside). Two streams of one graph would share compiled
 * code, warm in the CPU's caches for whichever runs after the other: measured
 * here, a second model of A's own graph read A'/A 0.99 beside a separate copy
 * of A's files at 1.05 in the same run.
 */
const INSTANCE_HOOK = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const key = context.parentURL?.startsWith('file:') ? new URL(context.parentURL).searchParams.get('inproc') : null;
  if (key === null || !r.url.startsWith('file:') || r.url.includes('/node_modules/')) return r;
  const url = new URL(r.url);
  url.searchParams.set('inproc', key);
  return { ...r, url: url.href };
}`;
register(`data:text/javascript,${encodeURIComponent(INSTANCE_HOOK)}`);

async function importBuild(dist: string, key: string): Promise<Build> {
  const load = async <T>(path: string) => (await import(`${pathToFileURL(join(dist, path)).href}?inproc=${key}`)) as T;
  let commit = '?';
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', join(dist, '..'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--untracked-files=no') === '' ? '' : '+');
  } catch {
    // not a checkout
  }
  return {
    dist,
    commit,
    loadModel: (await load<typeof import('../src/model/load.js')>('src/model/load.js')).loadModel,
    placeWeights: (await load<typeof import('../src/model/pooled.js')>('src/model/pooled.js')).placeWeights,
    disposeModel: (await load<typeof import('../src/model/weights.js')>('src/model/weights.js')).disposeModel,
    generate: (await load<typeof import('../src/generate.js')>('src/generate.js')).generate,
    argmax: (await load<typeof import('../src/sample/sampler.js')>('src/sample/sampler.js')).argmax,
    kernels: [],
  };
}

// ---- tfjs's kernel registry, one build's at a time --------------------------

const BACKENDS = ['wasm', 'cpu'];
const registered = () => new Map(BACKENDS.flatMap((b) => tf.getKernelsForBackend(b)).map((k) => [`${k.backendName}_${k.kernelName}`, k]));
/** The registry with tfjs's own kernels only (taken once the backend runs, before a build registers any). */
let baseKernels = new Map<string, KernelConfig>();
let activeBuild: Build | undefined;

/** Make `build`'s kernels the registered ones: the outgoing build's saved and taken out, tfjs's own put back. */
function activate(build: Build): void {
  if (activeBuild === build) return;
  const custom = [...registered()].filter(([key, k]) => baseKernels.get(key) !== k);
  if (activeBuild !== undefined) activeBuild.kernels = custom.map(([, k]) => k);
  for (const [key, k] of custom) {
    tf.unregisterKernel(k.kernelName, k.backendName);
    const base = baseKernels.get(key);
    if (base !== undefined) tf.registerKernel(base);
  }
  for (const k of build.kernels) {
    if (tf.getKernel(k.kernelName, k.backendName) !== undefined) tf.unregisterKernel(k.kernelName, k.backendName);
    tf.registerKernel(k);
  }
  activeBuild = build;
}

// ---- per-thread CPU (/proc/self/task): what an idle pool's threads take ----

const threadIds = (): number[] => (existsSync('/proc/self/task') ? readdirSync('/proc/self/task').map(Number) : []);
/** ms of CPU the threads have used (clock ticks of 10 ms, summed: coarse per block, fine over a round). */
function threadsCpuMs(ids: readonly number[]): number {
  let ticks = 0;
  for (const id of ids) {
    try {
      const stat = readFileSync(`/proc/self/task/${id}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime: fields 14 and 15 of proc(5)
    } catch {
      // the thread has ended
    }
  }
  return ticks * 10;
}

// ---- the streams -------------------------------------------------------------

type Model = import('../src/model/weights.js').Model;
type Step = import('../src/generate.js').GenerateStep;

interface Stream {
  name: string;
  build: Build;
  model: Model;
  /** The threads its pool started (its keeper and workers). */
  threadIds: number[];
  generation?: AsyncGenerator<Step>;
  /** Blocks decoded in the current generation. */
  blocks: number;
}

await runBench(async () => {
  const checkpoint = randomCheckpoint(shape);
  const { initBackend } = (await import(`${pathToFileURL(join(distA, 'src', 'backend.js')).href}?inproc=A`)) as typeof import('../src/backend.js');
  await initBackend('wasm');
  baseKernels = registered();

  /** A model of `build`, in a pool of its own; its first stream decoded whole, untimed (a warm engine, every kernel registered). */
  const streams: Stream[] = [];
  const open = async (name: string, build: Build) => {
    activate(build);
    const before = new Set(threadIds());
    const loaded = build.loadModel(checkpoint);
    const model = weights === 'tfjs' ? loaded : build.placeWeights(loaded, { weights, threads });
    await model.pool?.ready();
    const stream: Stream = { name, build, model, threadIds: threadIds().filter((id) => !before.has(id)), blocks: 0 };
    streams.push(stream);
    return stream;
  };
  await open('A', await importBuild(distA, 'A'));
  await open('B', await importBuild(distB, 'B'));
  if (aa) await open("A'", await importBuild(distA, 'A2'));
  const seqLen = streams[0]!.model.config.maxSeqLen;
  /** Blocks in one generation: its prompt's step and these fit the context (dense cache, from BOS). */
  const blocksPerGeneration = Math.floor((seqLen - 1) / block);
  if (blocksPerGeneration < 1) cli.fail(`--block: ${block} tokens and the prompt's step do not fit the ${shape} model's ${seqLen} positions`);

  /** Decode one block of `s` (a new generation first where the last is used up: its prompt's step untimed); its ids and µs a token. */
  const decodeBlock = async (s: Stream): Promise<{ ids: number[]; usPerToken: number }> => {
    activate(s.build);
    if (s.generation === undefined || s.blocks === blocksPerGeneration) {
      await s.generation?.return(undefined);
      s.generation = s.build.generate(s.model, { kind: 'dense' }, [1], s.build.argmax, { steps: 1 + blocksPerGeneration * block });
      await s.generation.next();
      s.blocks = 0;
    }
    const ids: number[] = [];
    const started = performance.now();
    for (let i = 0; i < block; i++) {
      const r = await s.generation.next();
      if (r.done) throw new Error('the generation ended early');
      ids.push(r.value.id);
    }
    const usPerToken = ((performance.now() - started) * 1000) / block;
    s.blocks++;
    return { ids, usPerToken };
  };

  // warm-up: one whole generation of each, in turns, untimed
  for (let b = 0; b < blocksPerGeneration; b++) for (const s of streams) await decodeBlock(s);
  // every pool idle: what the process takes doing nothing (the pools' threads asleep, after their spin)
  const idleFrom = process.cpuUsage();
  await new Promise((r) => setTimeout(r, 500));
  const idle = process.cpuUsage(idleFrom);
  const idleCpuMsPerSecond = (idle.user + idle.system) / 1000 / 0.5;

  /** One turn: a block of each stream, at the same positions. */
  interface Turn {
    round: number;
    /** µs a token, by stream. */
    us: Record<string, number>;
    /** The least, over the turn's blocks, of the process's CPU time over its threads' wall time (1: every thread ran throughout; the pool's workers spin between jobs). */
    share: number;
    /** Cores other processes took during the turn (bench/common.ts othersCores; clock ticks: coarse). */
    others?: number;
  }
  const names = streams.map((s) => s.name);
  const groups = Math.ceil(tokens / block);
  /** Threads a block keeps busy: the pool's, or the calling thread alone. */
  const busyThreads = weights === 'tfjs' ? 1 : threads;
  const turns: Turn[] = [];
  let idleThreadsMs = 0;
  let blocksMs = 0;
  let sameIds = true;
  for (let r = 0; r < rounds; r++) {
    for (let g = 0; g < groups; g++) {
      // round robin, no stream twice in a row (a block right after its own
      // runs with its weights and code warm); who leads changes with each generation
      const lead = Math.floor(turns.length / blocksPerGeneration) % streams.length;
      const order = [...streams.slice(lead), ...streams.slice(0, lead)];
      const turn: Turn = { round: r, us: {}, share: Infinity };
      const ids: Record<string, string> = {};
      const from = cpuMark();
      for (const s of order) {
        const idleIds = streams.filter((o) => o !== s).flatMap((o) => o.threadIds);
        const idleBefore = threadsCpuMs(idleIds);
        const cpuFrom = process.cpuUsage();
        const wallFrom = performance.now();
        const d = await decodeBlock(s);
        const wallMs = performance.now() - wallFrom;
        const cpu = process.cpuUsage(cpuFrom);
        turn.share = Math.min(turn.share, (cpu.user + cpu.system) / 1000 / (wallMs * busyThreads));
        blocksMs += wallMs;
        idleThreadsMs += threadsCpuMs(idleIds) - idleBefore;
        turn.us[s.name] = d.usPerToken;
        ids[s.name] = d.ids.join(',');
      }
      turn.others = othersCores(from, cpuMark());
      for (const n of names) if (ids[n] !== ids.A) sameIds = false;
      turns.push(turn);
    }
    const these = turns.filter((t) => t.round === r);
    const row = names.map((n) => `${n} ${median(these.map((t) => t.us[n]!)).toFixed(1)} µs`).join(', ');
    process.stderr.write(`round ${r + 1}: ${row}; B/A ${median(these.map((t) => t.us.B! / t.us.A!)).toFixed(4)}\n`);
  }
  for (const s of streams) await s.generation?.return(undefined);
  activeBuild!.kernels = [...registered()].filter(([key, k]) => baseKernels.get(key) !== k).map(([, k]) => k);

  // ---- the tables -----------------------------------------------------------
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  /** The q-quantile of xs, between order statistics. */
  const quantile = (xs: number[], q: number) => {
    const s = sorted(xs);
    const at = q * (s.length - 1);
    const lo = Math.floor(at);
    return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
  };
  /**
   * A 95% interval of the median: the order statistics n/2 ± 0.98 sqrt(n)
   * (the binomial's normal approximation). It takes the turns as
   * independent; a load that comes and goes over seconds makes them less so.
   */
  const medianInterval = (xs: number[]): string => {
    const s = sorted(xs);
    const half = 0.98 * Math.sqrt(s.length);
    const at = (rank: number) => s[Math.min(s.length, Math.max(1, Math.round(rank))) - 1]!;
    return `${at(s.length / 2 - half).toFixed(4)}..${at(s.length / 2 + 1 + half).toFixed(4)}`;
  };
  const compared = names.filter((n) => n !== 'A');
  const ratios = (ts: Turn[], n: string) => ts.map((t) => t.us[n]! / t.us.A!);
  const differences = (ts: Turn[], n: string) => ts.map((t) => t.us[n]! - t.us.A!);
  const others = (ts: Turn[]) => {
    const xs = ts.flatMap((t) => (t.others === undefined ? [] : [t.others]));
    return xs.length === 0 ? '?' : median(xs).toFixed(2);
  };
  const roundRow = (ts: Turn[], label: string) => [
    label,
    ...names.map((n) => median(ts.map((t) => t.us[n]!)).toFixed(1)),
    ...compared.flatMap((n) => {
      const xs = ratios(ts, n);
      return [median(xs).toFixed(4), `${quantile(xs, 0.25).toFixed(3)}..${quantile(xs, 0.75).toFixed(3)}`];
    }),
    median(ts.map((t) => t.share)).toFixed(2),
    others(ts),
  ];
  const roundTable = markdownTable(
    ['round', ...names.map((n) => `${n} µs/token`), ...compared.flatMap((n) => [`${n}/A`, `${n}/A quartiles`]), 'CPU share', "others' CPU, cores"],
    Array.from({ length: rounds }, (_, r) =>
      roundRow(
        turns.filter((t) => t.round === r),
        String(r + 1),
      ),
    ),
  );
  const quiet = turns.filter((t) => t.share >= QUIET_SHARE);
  const summaryRow = (ts: Turn[], label: string) =>
    ts.length === 0
      ? [label, '0', ...names.map(() => ''), ...compared.flatMap(() => ['', '', '']), '']
      : [
          label,
          String(ts.length),
          ...names.map((n) => median(ts.map((t) => t.us[n]!)).toFixed(1)),
          ...compared.flatMap((n) => [median(ratios(ts, n)).toFixed(4), medianInterval(ratios(ts, n)), median(differences(ts, n)).toFixed(1)]),
          others(ts),
        ];
  const summaryTable = markdownTable(
    [
      'turns',
      'n',
      ...names.map((n) => `${n} µs/token`),
      ...compared.flatMap((n) => [`${n}/A`, `${n}/A 95% of median`, `${n}-A µs/token`]),
      "others' CPU, cores",
    ],
    [summaryRow(turns, 'all'), summaryRow(quiet, `quiet (CPU share >= ${QUIET_SHARE})`)],
  );
  const pages = (s: Stream) => {
    if (s.model.pool === undefined) return 'none';
    const advice = (s.model.pool as { pageAdvice?: { hugePages: boolean } }).pageAdvice;
    return advice === undefined ? '?' : advice.hugePages ? '2 MB pages' : '4 KB pages';
  };
  const buildLine = (s: Stream) =>
    `${s.name}: ${s.build.dist} (${s.build.commit}; ${s.build.kernels.length} tfjs kernels of its own; pool ${pages(s)}, ${s.threadIds.length} threads)`;
  const idleShare = (100 * idleThreadsMs) / blocksMs;
  const body =
    `Random llama2.c ${shape}-shaped model, ${weights === 'tfjs' ? "f32 on tfjs's wasm backend, one thread" : `${weights}, ${threads} threads`}; greedy generate() from BOS, dense cache, in one process: ` +
    `the streams take turns in blocks of ${block} tokens (round robin, the lead passed on with each generation), each restarting after ${blocksPerGeneration} blocks ` +
    `(its prompt's step untimed), so that a turn's blocks decode the same positions; one generation each untimed first; ${rounds} rounds of ${groups} turns. ` +
    `µs/token: median over the turns; X/A: median of the turns' ratios (quartiles; a 95% interval of the median); X-A: median of the turns' differences. ` +
    `CPU share: the process's CPU time over its ${busyThreads} thread(s)' wall time, the least over a turn's blocks (median): under 1 where ` +
    `other processes took a core from it; quiet turns: those at ${QUIET_SHARE} or more. Others' CPU: what other processes took during a turn (median). ` +
    `The waiting streams' pool threads took ${idleShare.toFixed(2)}% of a core while another stream decoded; with every pool idle the process ` +
    `took ${idleCpuMsPerSecond.toFixed(1)} ms of CPU a second. ` +
    `Tokens: ${sameIds ? 'every stream decoded the same ids' : 'the streams decoded different ids (B computes other numbers)'}.\n` +
    `${streams.map(buildLine).join('\n')}\n\n${roundTable}\n\n${summaryTable}`;
  process.stdout.write(body + '\n');
  for (const s of streams) s.build.disposeModel(s.model);
  const given = (flag: string) => (process.argv.includes(`--${flag}`) ? [`--${flag} ${cli.value(flag, '')}`] : []);
  recordResult(
    'Builds A/B in one process: decode (bench/inproc_ab.ts)',
    [
      'node dist/bench/inproc_ab.js',
      ...given('a'),
      ...given('b'),
      ...(aa ? ['--aa'] : []),
      `--shape ${shape} --weights ${weights}${weights === 'tfjs' ? '' : ` --threads ${threads}`} --block ${block} --tokens ${tokens} --rounds ${rounds} --record`,
    ].join(' '),
    body,
  );
});
