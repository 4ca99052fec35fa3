// Two arms of decode in ONE process, in turns: resolves a 1-2% change in
// decode speed where fresh processes (bench/builds_ab.ts, bench/decode.ts)
// spread 6-23% on a shared 2-core machine (run-queue waits, each process's
// own cold start and memory layout). An arm is a build (a dist/ folder,
// default this one) and a way of running it: the worker pool, the pool with
// decode programs off, or the plain tfjs path; f32 or q8 weights; threads.
// So one tool compares two builds (--a OLD/dist --b NEW/dist) or two
// settings of one build (--a :tfjs --b :pool), or both at once.
//
// How: in each round, each stream imports its arm's build from its dist/
// folder by absolute path, as a module graph of its own (INSTANCE_HOOK),
// loads the same random llama2.c checkpoint and places it as its arm says,
// in a worker pool of its own: two or three pools in one process, one busy
// at a time (the waiting pools' threads sleep; their CPU is reported). Its
// own module graph also holds its own decode-program switch, so
// pool-no-program turns programs off for that stream alone.
// @tensorflow/tfjs is one instance for all (checked: every build resolves it
// to the same files), so tfjs's kernel registry is shared: each build's own
// kernels are swapped in with its turn (activate). Each stream runs greedy
// generate() from BOS on a dense cache, as bench/decode.ts's child does;
// after 240 untimed tokens each, the streams take turns, a block of --block
// tokens each, round robin (no stream twice in a row: a block right after
// its own would find its weights and code warm), the lead passed on with
// each generation. Every stream restarts after the same number of blocks,
// before its context fills (its prompt's step untimed), so the blocks of one
// turn decode the same positions: the turn's ratio B/A is one measurement, a
// round's figure the median of its turns. The rounds are the independent
// measurements: a stream's models, pools and compiled code are new each
// round, and where they land matters (a stream kept for a whole run read
// 1-5% off its twin's, steadily; now and then a round's stream runs 5-9%
// slow throughout: which is why bench/decode_ab.ts, whose arms kept one
// model for a whole run, was folded into this one). So the result is the
// median of the rounds' ratios, with a 95% interval of that median. --aa
// adds a third stream, arm A again (its own modules, model and pool): A'/A,
// the spread of no change, in the same run.
//
// What it cannot see: what only a fresh process shows (page faults of first
// touches, V8 compiling a process's first few hundred tokens:
// bench/cold_start.ts), and a change that acts only at start-up or across
// turns. Each block's first tokens find the CPU's caches holding another
// stream's weights and code, alike for every stream: a fixed cost of the
// turn that dilutes a ratio a little (about 1/--block of that cost). The
// tokens run warm here (no process start, one generation untimed): faster
// than bench/decode.ts's 128 after 8 from a fresh process.
//
//   node dist/bench/inproc_ab.js [--a ARM] [--b ARM] [--aa] [--shape 15M] [--weights f32] [--threads N]
//       [--block 16] [--tokens 480] [--rounds 20] [--pages-mismatch-ok] [--record]
//   ARM: [DIST][:SETTING,...], a setting one of tfjs | pool | pool-no-program, f32 | q8, threads=N
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { KernelConfig } from '@tensorflow/tfjs';
import {
  benchArgs,
  cpuMark,
  markdownTable,
  median,
  medianWithInterval,
  othersCores,
  pagesAddonLine,
  pagesAddonOf,
  pagesMismatch,
  recordResult,
  residentMiB,
  runBench,
  shapeFlag,
} from './common.js';

/** Tokens each stream decodes untimed at the start of a round (a 15M model's whole generation at --block 16). */
const WARMUP_TOKENS = 240;

/** Other processes' CPU, in cores, under which half a second counts as quiet (--wait-quiet). */
const QUIET_OTHERS = 0.15;

const HELP = `bench/inproc_ab.ts: two arms' greedy decode in one process, in turns of --block tokens: µs/token of each
and the ratio B/A of block pairs at the same positions (a 1-2% change resolves; fresh processes spread 6-23% here).
An arm is a build and a way of running it: two builds, two settings of one build, or both.

  node dist/bench/inproc_ab.js [--a ARM] [--b ARM] [--aa] [--shape 15M] [--weights f32] [--threads N] [--block 16] [--tokens 480] [--rounds 20] [--pages-mismatch-ok] [--record]

  --a ARM        arm A, the reference: [DIST][:SETTING,...] (default: this build's dist/, in the pool)
                   DIST             a build's dist/ folder (default: this build's)
                   pool             the worker pool (default), a one-token step as one program
                   pool-no-program  the pool with decode programs off: a step as one pool job at a time
                   tfjs             the plain tfjs path (no pool; float32, tfjs's wasm backend on one thread)
                   f32, q8          the pool's weights (default --weights)
                   threads=N        the pool's threads (default --threads)
                 e.g. --a OLD/dist --b NEW/dist (two builds), --a :tfjs --b :pool,threads=1 (two ways of this build)
  --b ARM        arm B, the same way (default: arm A again, a second model of it: an A/A)
  --aa           also a second model of arm A, a third stream in the same turns: A'/A, the spread of no change
  --shape S      the random llama2.c checkpoint's shape (default 15M)
  --weights F    f32 or q8: the pool's weights where an arm does not say (default f32)
  --threads N    the pool's threads where an arm does not say (default: every core, ${availableParallelism()} here)
  --block N      tokens a turn (default 16)
  --tokens N     tokens timed per stream and round (default 480; rounded up to whole blocks)
  --rounds N     rounds (default 20), each with every stream's modules, model and pool anew: a table row each
  --wait-quiet S before each round, wait up to S seconds (default 0) for half a second in which other processes
                 took under ${QUIET_OTHERS} of a core
  --pages-mismatch-ok  compare two pool arms' builds although one has its 2 MB-page addon (build/Release/huge_pages.node
                 beside its dist/, or STREAMLLM_HUGE_PAGES_ADDON: kernels/huge_pages.ts) and the other not: without it
                 such a pair is refused (it would compare page sizes, ~1.16x on two threads, not code)
  --record       append the table to bench/RESULTS.md
  --help         this text

Every build must resolve @tensorflow/tfjs to the same files (a worktree: node_modules a link to the main checkout's).`;

const cli = benchArgs(HELP);
const own = resolve(fileURLToPath(new URL('..', import.meta.url))); // this build's dist/
const WAYS = ['pool', 'pool-no-program', 'tfjs'] as const;
/** One arm: a build, and how its model runs. */
interface Arm {
  dist: string;
  way: (typeof WAYS)[number];
  weights: 'f32' | 'q8';
  /** The pool's threads (1 for the tfjs path: its calling thread). */
  threads: number;
}
if (cli.value('weights', 'f32') === 'tfjs') cli.fail('--weights: tfjs is a way of running, not weights: --a :tfjs (or --b :tfjs)');
const defaultWeights = cli.choice('weights', 'f32', ['f32', 'q8']);
const defaultThreads = cli.count('threads', availableParallelism(), 1, 256);
/** `--flag ARM`: [DIST][:SETTING,...] (DIST holds no colon), checked. */
function armFlag(flag: string, spec: string): Arm {
  const colon = spec.indexOf(':');
  const dir = colon < 0 ? spec : spec.slice(0, colon);
  const dist = dir === '' ? own : resolve(dir);
  if (!existsSync(join(dist, 'src', 'generate.js')))
    cli.fail(
      `--${flag}: ${dist} is not a build's dist/ folder (no src/generate.js in it)${colon < 0 && !dir.includes('/') ? `; settings follow a colon: :${dir}` : ''}`,
    );
  const arm: Arm = { dist, way: 'pool', weights: defaultWeights, threads: defaultThreads };
  const said = new Set<string>();
  for (const setting of colon < 0 ? [] : spec.slice(colon + 1).split(',')) {
    const kind = (WAYS as readonly string[]).includes(setting)
      ? 'way'
      : setting === 'f32' || setting === 'q8'
        ? 'weights'
        : /^threads=\d+$/.test(setting)
          ? 'threads'
          : '';
    if (kind === '') cli.fail(`--${flag}: unknown setting '${setting}' in '${spec}' (expected tfjs, pool, pool-no-program, f32, q8 or threads=N)`);
    if (said.has(kind)) cli.fail(`--${flag}: two ${kind === 'way' ? 'ways' : kind} in '${spec}'`);
    said.add(kind);
    if (kind === 'way') arm.way = setting as Arm['way'];
    else if (kind === 'weights') arm.weights = setting as Arm['weights'];
    else {
      arm.threads = Number(setting.slice('threads='.length));
      if (!(arm.threads >= 1 && arm.threads <= 256)) cli.fail(`--${flag}: threads=N expects N in 1..256, got '${setting}'`);
    }
  }
  if (arm.way === 'tfjs' && (said.has('weights') || said.has('threads')))
    cli.fail(`--${flag}: tfjs runs float32 on one thread (weights and threads=N are the pool's), got '${spec}'`);
  if (arm.way === 'tfjs') Object.assign(arm, { weights: 'f32', threads: 1 });
  return arm;
}
const specA = cli.value('a', '');
const armA = armFlag('a', specA);
const armB = armFlag('b', cli.value('b', specA));
const aa = cli.has('aa');
const shape = shapeFlag(cli, 'shape', '15M');
const block = cli.count('block', 16, 1, 1024);
const tokens = cli.count('tokens', 480, 1, 1_000_000);
const rounds = cli.count('rounds', 20, 1, 1000);
const waitQuiet = cli.count('wait-quiet', 0, 0, 3600);
// (before tfjs loads: a dist/ copy or a tsc-only build has no addon and runs on 4 KB pages; the tfjs path's heap is one for all arms)
if (armA.way !== 'tfjs' && armB.way !== 'tfjs' && !cli.has('pages-mismatch-ok')) {
  const mismatch = await pagesMismatch(
    [
      ['a', armA.dist],
      ['b', armB.dist],
    ],
    'pages-mismatch-ok',
  );
  if (mismatch !== undefined) cli.fail(mismatch);
}
/** Each build's 2 MB-page addon in words, by dist/. */
const addonLines = new Map<string, string>();
for (const arm of [armA, armB]) addonLines.set(arm.dist, pagesAddonLine(await pagesAddonOf(arm.dist)));
/**
 * Turns in which every block's CPU share (the process's CPU time over its
 * threads' wall time) was at least this count as quiet: no other process
 * took a core from this one for long.
 */
const QUIET_SHARE = 0.85;
/** Quiet turns a round needs for its quiet ratio to count. */
const MIN_QUIET_TURNS = 10;

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
  for (const dir of new Set([armA.dist, armB.dist])) {
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
  /** Its git commit, where dist/.. is a checkout (a + when its tracked files but bench/RESULTS.md differ from the commit). */
  commit: string;
  loadModel: typeof import('../src/model/load.js').loadModel;
  placeWeights: typeof import('../src/model/pooled.js').placeWeights;
  disposeModel: typeof import('../src/model/weights.js').disposeModel;
  generate: typeof import('../src/generate.js').generate;
  argmax: typeof import('../src/sample/sampler.js').argmax;
  /** Its decode program module (src/model/decode_program.js), where it has one: the switch, and a model's program. */
  programs?: typeof import('../src/model/decode_program.js');
  /** The kernels it registered in tfjs (saved while another build runs). */
  kernels: KernelConfig[];
}

/**
 * Each stream imports its build as a module graph of its own, even where
 * two streams share a dist/ folder (an A/A, --aa), and anew each round: every
 * module URL carries `?inproc=KEY` (a resolve hook passes a module's own key
 * on to what it imports, packages aside). Two streams of one graph would
 * share compiled code (warm for whichever runs second), and a graph kept for
 * the whole run would keep one layout of its code for the whole run.
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

const commits = new Map<string, string>();
/** The git commit of dist/.. (with a + where its tracked files but bench/RESULTS.md differ from it), or '?' where it is no checkout. */
function commitOf(dist: string): string {
  let commit = commits.get(dist);
  if (commit !== undefined) return commit;
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', join(dist, '..'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    // (bench/RESULTS.md aside: a run with --record appends to it, and the next run's build is the same)
    commit = git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/RESULTS.md') === '' ? '' : '+');
  } catch {
    commit = '?'; // not a checkout
  }
  commits.set(dist, commit);
  return commit;
}

async function importBuild(dist: string, key: string): Promise<Build> {
  const load = async <T>(path: string) => (await import(`${pathToFileURL(join(dist, path)).href}?inproc=${key}`)) as T;
  return {
    dist,
    commit: commitOf(dist),
    loadModel: (await load<typeof import('../src/model/load.js')>('src/model/load.js')).loadModel,
    placeWeights: (await load<typeof import('../src/model/pooled.js')>('src/model/pooled.js')).placeWeights,
    disposeModel: (await load<typeof import('../src/model/weights.js')>('src/model/weights.js')).disposeModel,
    generate: (await load<typeof import('../src/generate.js')>('src/generate.js')).generate,
    argmax: (await load<typeof import('../src/sample/sampler.js')>('src/sample/sampler.js')).argmax,
    programs: existsSync(join(dist, 'src', 'model', 'decode_program.js'))
      ? await load<typeof import('../src/model/decode_program.js')>('src/model/decode_program.js')
      : undefined,
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
  arm: Arm;
  build: Build;
  model: Model;
  /** The threads its pool started (its keeper and workers). */
  threadIds: number[];
  generation?: AsyncGenerator<Step>;
  /** Blocks decoded in the current generation. */
  blocks: number;
}

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

/** Wait, up to `seconds`, for half a second in which other processes took under QUIET_OTHERS of a core; the seconds waited, negative where it gave up. */
async function untilQuiet(seconds: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const from = cpuMark();
    await new Promise((done) => setTimeout(done, 500));
    const others = othersCores(from, cpuMark());
    const waited = (performance.now() - started) / 1000;
    if (others === undefined || others < QUIET_OTHERS) return waited;
    if (waited >= seconds) return -waited;
  }
}

/** The kernels `build` has registered in tfjs: saved, or in the registry while it runs. */
function ownKernels(build: Build): number {
  return build === activeBuild ? [...registered()].filter(([key, k]) => baseKernels.get(key) !== k).length : build.kernels.length;
}

/** Where a stream's pool memory lies: MiB in 2 MB pages (the pool advised for them: kernels/huge_pages.ts). */
function pages(s: Stream): string {
  if (s.model.pool === undefined) return 'none';
  const advice = (s.model.pool as { pageAdvice?: { hugePages: boolean; address?: number; bytes?: number } }).pageAdvice;
  if (advice === undefined) return 'pages ?';
  if (!advice.hugePages) return `no 2 MB pages (${(advice as { why?: string }).why ?? 'not asked'})`;
  const resident = residentMiB(advice.address!, advice.bytes!);
  return resident === undefined ? 'asked for 2 MB pages' : `${resident.huge.toFixed(0)} of ${resident.rss.toFixed(0)} MiB resident in 2 MB pages`;
}

/** An arm in words: its way, weights and threads. */
const way = (arm: Arm) =>
  arm.way === 'tfjs'
    ? "the tfjs path (f32, tfjs's wasm backend, one thread)"
    : `${arm.way}, ${arm.weights}, ${arm.threads} thread${arm.threads > 1 ? 's' : ''}`;

/** Tokens of the stream's model its build's decode program ran (none where decode programs were off or the build has none). */
const programRuns = (s: Stream) => s.build.programs?.pooledDecodeProgram(s.model)?.runs ?? 0;

const streamLine = (s: Stream) =>
  `${s.name}: ${way(s.arm)}; ${s.build.dist} (${s.build.commit}; ${addonLines.get(s.build.dist)}; ${ownKernels(s.build)} tfjs kernels of its own; ` +
  `pool: ${pages(s)}, ${s.threadIds.length} threads of its own; ${programRuns(s)} tokens as one program)`;

await runBench(async () => {
  const checkpoint = randomCheckpoint(shape);
  const loadBefore = loadavg()[0]!;
  const { initBackend } = (await import(`${pathToFileURL(join(armA.dist, 'src', 'backend.js')).href}?inproc=backend`)) as typeof import('../src/backend.js');
  await initBackend('wasm');
  baseKernels = registered();
  const arms: [string, Arm][] = [['A', armA], ['B', armB], ...(aa ? [["A'", armA] as [string, Arm]] : [])];
  const names = arms.map(([name]) => name);

  /** A stream of `arm`: its build's modules imported anew, a model placed as the arm says (in a pool of its own). */
  const open = async (name: string, arm: Arm, round: number): Promise<Stream> => {
    const build = await importBuild(arm.dist, `${name === "A'" ? 'A2' : name}.${round}`);
    if (arm.way === 'pool-no-program') {
      // (this stream's own module graph: the switch is its alone)
      if (build.programs === undefined) throw new Error(`${arm.dist}: this build has no decode programs to turn off (no src/model/decode_program.js)`);
      build.programs.setDecodePrograms(false);
    }
    activate(build);
    const before = new Set(threadIds());
    const loaded = build.loadModel(checkpoint);
    const model = arm.way === 'tfjs' ? loaded : build.placeWeights(loaded, { weights: arm.weights, threads: arm.threads });
    await model.pool?.ready();
    return { name, arm, build, model, threadIds: threadIds().filter((id) => !before.has(id)), blocks: 0 };
  };

  let blocksPerGeneration = 0;
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

  const groups = Math.ceil(tokens / block);
  const turns: Turn[] = [];
  let idleThreadsMs = 0;
  let blocksMs = 0;
  let idleCpuMsPerSecond = 0;
  let sameIds = true;
  let firstStreams: string[] = [];
  /** Seconds each round waited for quiet (--wait-quiet), negative where it gave up. */
  const waits: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // each round: the streams' modules, models and pools anew, opened in a
    // rotating order (where each lands in memory, and its code, differ from
    // one round to the next: a fixed layout favoured one stream by 1-5%)
    if (waitQuiet > 0) waits.push(await untilQuiet(waitQuiet));
    const lead = r % arms.length;
    const streams: Stream[] = [];
    for (const [name, arm] of [...arms.slice(lead), ...arms.slice(0, lead)]) streams.push(await open(name, arm, r));
    // the turns' order: A B A', or A A' B every other round (each stream after each other), the lead passed on with each generation
    if (r % 2 === 1) streams.reverse();
    streams.unshift(...streams.splice(streams.findIndex((s) => s.name === 'A')));
    const seqLen = streams[0]!.model.config.maxSeqLen;
    /** Blocks in one generation: its prompt's step and these fit the context (dense cache, from BOS). */
    blocksPerGeneration = Math.floor((seqLen - 1) / block);
    if (blocksPerGeneration < 1) cli.fail(`--block: ${block} tokens and the prompt's step do not fit the ${shape} model's ${seqLen} positions`);
    // warm-up, untimed, in turns: WARMUP_TOKENS of each (V8 compiles the decode's code, tfjs kernels registered)
    for (let b = 0; b < Math.ceil(WARMUP_TOKENS / block); b++) for (const s of streams) await decodeBlock(s);
    if (r === 0) {
      // every pool idle: what the process takes doing nothing (the pools' threads asleep, after their spin)
      const idleFrom = process.cpuUsage();
      await new Promise((done) => setTimeout(done, 500));
      const idle = process.cpuUsage(idleFrom);
      idleCpuMsPerSecond = (idle.user + idle.system) / 1000 / 0.5;
    }
    for (let g = 0; g < groups; g++) {
      // round robin, no stream twice in a row (a block right after its own
      // would find its weights and code warm)
      const at = Math.floor(g / blocksPerGeneration) % streams.length;
      const order = [...streams.slice(at), ...streams.slice(0, at)];
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
        // (threads a block keeps busy: the pool's, or the calling thread alone on the tfjs path)
        turn.share = Math.min(turn.share, (cpu.user + cpu.system) / 1000 / (wallMs * s.arm.threads));
        blocksMs += wallMs;
        idleThreadsMs += threadsCpuMs(idleIds) - idleBefore;
        turn.us[s.name] = d.usPerToken;
        ids[s.name] = d.ids.join(',');
      }
      turn.others = othersCores(from, cpuMark());
      for (const n of names) if (ids[n] !== ids.A) sameIds = false;
      turns.push(turn);
    }
    for (const s of streams) await s.generation?.return(undefined);
    if (r === 0) firstStreams = streams.map(streamLine);
    for (const s of streams) await s.build.disposeModel(s.model); // (its workers gone before the next round; an older build returns nothing to await)
    const these = turns.filter((t) => t.round === r);
    const row = names.map((n) => `${n} ${median(these.map((t) => t.us[n]!)).toFixed(1)} µs`).join(', ');
    process.stderr.write(`round ${r + 1}: ${row}; B/A ${median(these.map((t) => t.us.B! / t.us.A!)).toFixed(4)}\n`);
  }

  // ---- the tables -----------------------------------------------------------
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  /** The q-quantile of xs, between order statistics. */
  const quantile = (xs: number[], q: number) => {
    const s = sorted(xs);
    const at = q * (s.length - 1);
    const lo = Math.floor(at);
    return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
  };
  const compared = names.filter((n) => n !== 'A');
  const ratios = (ts: Turn[], n: string) => ts.map((t) => t.us[n]! / t.us.A!);
  const others = (ts: Turn[]) => {
    const xs = ts.flatMap((t) => (t.others === undefined ? [] : [t.others]));
    return xs.length === 0 ? '?' : median(xs).toFixed(2);
  };
  const byRound = Array.from({ length: rounds }, (_, r) => turns.filter((t) => t.round === r));
  const quietByRound = byRound.map((ts) => ts.filter((t) => t.share >= QUIET_SHARE));
  const roundTable = markdownTable(
    [
      'round',
      ...names.map((n) => `${n} µs/token`),
      ...compared.flatMap((n) => [`${n}/A`, `${n}/A quartiles`, `${n}/A quiet`]),
      'quiet turns',
      'CPU share',
      "others' CPU, cores",
    ],
    byRound.map((ts, r) => [
      String(r + 1),
      ...names.map((n) => median(ts.map((t) => t.us[n]!)).toFixed(1)),
      ...compared.flatMap((n) => {
        const xs = ratios(ts, n);
        const quiet = quietByRound[r]!;
        return [
          median(xs).toFixed(4),
          `${quantile(xs, 0.25).toFixed(3)}..${quantile(xs, 0.75).toFixed(3)}`,
          quiet.length >= MIN_QUIET_TURNS ? median(ratios(quiet, n)).toFixed(4) : '',
        ];
      }),
      `${quietByRound[r]!.length}/${ts.length}`,
      median(ts.map((t) => t.share)).toFixed(2),
      others(ts),
    ]),
  );
  const quietRounds = quietByRound.filter((ts) => ts.length >= MIN_QUIET_TURNS);
  const summary = (rs: Turn[][], label: string) => [
    label,
    String(rs.length),
    ...names.map((n) => median(rs.map((ts) => median(ts.map((t) => t.us[n]!)))).toFixed(1)),
    ...compared.flatMap((n) => [
      // over the rounds: each round's models, pools and modules are new, so its figure is an independent measurement, and
      // now and then one stream of a round lands badly in memory (5-9% slower for the whole round): a median keeps such a
      // round from moving the result, as a mean would
      medianWithInterval(
        rs.map((ts) => median(ratios(ts, n))),
        4,
      ),
      medianWithInterval(
        rs.map((ts) => median(ts.map((t) => t.us[n]! - t.us.A!))),
        1,
      ),
    ]),
  ];
  const summaryTable = markdownTable(
    ['turns', 'rounds', ...names.map((n) => `${n} µs/token`), ...compared.flatMap((n) => [`${n}/A (95%)`, `${n}-A µs/token (95%)`])],
    [
      summary(byRound, 'all'),
      ...(quietRounds.length > 0 ? [summary(quietRounds, `quiet (rounds with ${MIN_QUIET_TURNS}+ turns of CPU share >= ${QUIET_SHARE})`)] : []),
    ],
  );
  const idleShare = (100 * idleThreadsMs) / blocksMs;
  const body =
    `Random llama2.c ${shape}-shaped model; ${arms.map(([n, arm]) => `${n}: ${way(arm)}, build ${commitOf(arm.dist)}`).join('; ')}; greedy generate() from BOS, dense cache, in one process: ` +
    `${rounds} rounds, each with every stream's modules, model and pool anew (opened in a rotating order) and ${Math.ceil(WARMUP_TOKENS / block) * block} untimed tokens each, then ` +
    `${groups} turns of a block of ${block} tokens each (round robin${aa ? ", A B A' and A A' B in alternate rounds" : ''}, the lead passed on with each generation), ` +
    `every stream restarting after ${blocksPerGeneration} blocks (its prompt's step untimed), so that a turn's blocks decode the same positions. ` +
    `By round: µs/token, median over the turns; X/A, median of the turns' ratios (quartiles; over the quiet turns alone where there are ${MIN_QUIET_TURNS} or more). ` +
    `Quiet turn: every block's CPU share (the process's CPU time over the wall time of the threads its stream keeps busy; the pool's workers spin between jobs) at ${QUIET_SHARE} or more, ` +
    `no other process holding a core for long. Others' CPU: what other processes took during a turn (median). ` +
    `Over the rounds (each its own memory layout and compiled code: the independent measurements): medians of the rounds' figures, ` +
    `X/A and X-A (the turns' median difference) with a 95% interval of the median (order statistics; from 6 rounds, the median alone below). ` +
    `The waiting streams' pool threads took ${idleShare.toFixed(2)}% of a core while another stream decoded; with every pool idle the process ` +
    `took ${idleCpuMsPerSecond.toFixed(1)} ms of CPU a second. ` +
    `Load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after. ` +
    (waitQuiet > 0
      ? `Each round waited for a quiet half second (others under ${QUIET_OTHERS} of a core): ${median(waits.map(Math.abs)).toFixed(1)} s (median), ` +
        `${waits.filter((w) => w < 0).length} of ${rounds} gave up after ${waitQuiet} s. `
      : '') +
    `Tokens: ${sameIds ? 'every stream decoded the same ids' : 'the streams decoded different ids (B computes other numbers)'}.\n` +
    `Round 1's streams:\n${firstStreams.join('\n')}\n\n${roundTable}\n\n${summaryTable}`;
  process.stdout.write(body + '\n');
  const given = (flag: string) => (process.argv.includes(`--${flag}`) ? [`--${flag} ${cli.value(flag, '')}`] : []);
  recordResult(
    'Decode A/B in one process (bench/inproc_ab.ts)',
    [
      'node dist/bench/inproc_ab.js',
      ...given('a'),
      ...given('b'),
      ...(aa ? ['--aa'] : []),
      ...(waitQuiet > 0 ? [`--wait-quiet ${waitQuiet}`] : []),
      ...(cli.has('pages-mismatch-ok') ? ['--pages-mismatch-ok'] : []),
      `--shape ${shape} --weights ${defaultWeights} --threads ${defaultThreads} --block ${block} --tokens ${tokens} --rounds ${rounds} --record`,
    ].join(' '),
    body,
  );
});
