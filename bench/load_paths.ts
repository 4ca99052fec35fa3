// Does the way a model reached the worker pool change how fast it decodes?
// One random llama2.c checkpoint (the shape's, seed 0, tied classifier, as
// bench/decode.ts writes it), arms:
//
//   file+place   loadModel(file) then placeWeights: the float32 model in the
//                wasm backend's tensors first, then moved into the pool
//                (bench/decode.ts's child until session 26; placeModel's way)
//   file         loadModel(file, {threads, weights}): the reader's rows
//                straight into the pool (pooled_llama2c.ts): the CLI's and
//                the library's path
//   drawn        pooledModelFromLlama2c(randomLlamaReader): drawn straight
//                into the pool, no file (bench/profile_decode.ts)
//   gc           file+place, then a full garbage collection (node --expose-gc)
//
// Every arm a fresh process, the arms alternating (and reversed every other
// round); an arm named twice (file+place,...,file+place') is an A/A. Each
// process decodes a stream of 8 tokens, then --warm more in streams of 128
// (warm code: docs/speed.md, "Measuring"), then --streams streams of
// --length tokens from BOS, timed, with the decode program's table by op
// (WorkerPool.programTimes: the calling thread's own claims plus its wait at
// the step's barrier). Each process starts after a second in which other
// processes took under 0.1 of a core (waiting 15 s at most). Reported by arm:
// µs a token, the classifier step (final norm, product and pick), the other
// op steps, Attend among them (a step that reads no weights: a control for
// the machine's memory), the time outside the program, the load, the pool's
// memory in 2 MB pages, and peak RSS; medians over the quiet rounds, and
// each arm's ratio to the first arm's in the same round.
//
//   node dist/bench/load_paths.js [--shape 15M] [--weights f32] [--threads 2] [--rounds 8] [--arms LIST] [--warm 1024] [--streams 4] [--length 129] [--record]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultThreads } from '../kernels/threads.js';
import { initBackend } from '../src/backend.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import {
  anonHugePagesMiB,
  benchArgs,
  cpuMark,
  markdownTable,
  median,
  othersCores,
  peakRssMiB,
  recordResult,
  residentMiB,
  runBench,
  shapeFlag,
} from './common.js';

const ARMS = ['file+place', 'file', 'drawn', 'gc'] as const;
type Arm = (typeof ARMS)[number];

const HELP = `bench/load_paths.ts: decode speed of one checkpoint by the way it reached the worker pool (loadModel then
placeWeights; loadModel with placement options, straight into the pool; drawn into the pool), fresh processes alternating,
with the decode program's time by op.

  node dist/bench/load_paths.js [--shape 15M] [--weights f32] [--threads 2] [--rounds 8] [--arms LIST] [--warm 1024] [--streams 4] [--length 129] [--record]

  --shape S      llama2.c shape (${Object.keys(NAMED_SHAPES).join(', ')}); default 15M
  --weights F    f32 or q8 (default f32)
  --threads N    the pool's threads (default: every core, ${defaultThreads()} here; on one, no split program: no table by op)
  --rounds N     rounds over the arms (default 8)
  --arms LIST    of ${ARMS.join(', ')}; an arm again with a trailing ' runs again as a row of its own, an A/A
                 (default "file+place,file,drawn,file+place'"); ratios are to the first
  --warm N       untimed tokens after the first stream of 8, in streams of 128 (default 1024)
  --streams N    timed streams from BOS (default 4)
  --length N     tokens a timed stream (default 129)
  --record       append the table to bench/RESULTS.md
  --help         this text`;

const cli = benchArgs(HELP, ['child ARM', 'model FILE']);
const shape = shapeFlag(cli, 'shape', '15M');
const weights = cli.choice('weights', 'f32', ['f32', 'q8']);
const threads = cli.count('threads', defaultThreads(), 1, 256);
const rounds = cli.count('rounds', 8, 1, 100);
const warm = cli.count('warm', 1024, 0, 1_000_000);
const streams = cli.count('streams', 4, 1, 1000);
const length = cli.count('length', 129, 1, 100_000);
const arms = cli.value('arms', "file+place,file,drawn,file+place'").split(',');
const armOf = (name: string) => name.replace(/'+$/, '') as Arm;
for (const a of arms) if (!ARMS.includes(armOf(a))) cli.fail(`--arms: no arm '${a}' (arms: ${ARMS.join(', ')})`);
if (new Set(arms).size !== arms.length) cli.fail(`--arms: an arm twice (name the second with a trailing ')`);

interface Result {
  usPerToken: number;
  /** Of the decode program (NaN where no program ran split: one thread), µs a split token. */
  classifierUs: number;
  otherOpsUs: number;
  attendUs: number;
  outsideUs: number;
  /** Tokens whose program ran split, of those timed (the rest ran step by step while the cores were busy). */
  splitShare: number;
  loadMs: number;
  poolHugeMiB: number;
  poolRssMiB: number;
  anonHugeMiB: number;
  rssMiB: number;
  classifierAt: number;
  others: number;
  ids: string;
}

async function child(arm: Arm, file: string): Promise<Result> {
  await initBackend('wasm');
  const { loadModel } = await import('../src/model/load.js');
  const { placeWeights } = await import('../src/model/pooled.js');
  const { pooledModelFromLlama2c } = await import('../src/model/pooled_llama2c.js');
  const { randomLlamaReader } = await import('../src/model/random_init.js');
  const { generate } = await import('../src/generate.js');
  const { argmax } = await import('../src/sample/sampler.js');
  const { disposeModel } = await import('../src/model/weights.js');
  const { isJobOp, JOB_OP_NAMES } = await import('../kernels/pool_ops.js');
  const loadStarted = performance.now();
  const m =
    arm === 'drawn'
      ? pooledModelFromLlama2c(randomLlamaReader({ ...NAMED_SHAPES[shape]!, sharedClassifier: true }, 0), { threads, weights }, 'drawn')
      : arm === 'file'
        ? loadModel(file, { threads, weights })
        : placeWeights(loadModel(file), { threads, weights });
  if (arm === 'gc') (globalThis as { gc?: () => void }).gc!();
  const pool = m.pool!;
  await pool.ready();
  const loadMs = performance.now() - loadStarted;
  const ids: number[] = [];
  const run = async (steps: number, keep = false) => {
    for await (const step of generate(m, { kind: 'dense' }, [1], argmax, { steps })) if (keep) ids.push(step.id);
  };
  await run(8);
  for (let n = 0; n < warm; n += 128) await run(Math.min(128, warm - n));
  const times = (pool.programTimes = { runs: 0, own: [] as number[], barrier: [] as number[], ops: [] as number[] });
  const from = cpuMark();
  const started = performance.now();
  for (let i = 0; i < streams; i++) await run(length, i === 0);
  const ms = performance.now() - started;
  const others = othersCores(from, cpuMark()) ?? NaN;
  pool.programTimes = undefined;
  const tokens = streams * length;
  const byOp = new Map<string, number>();
  times.ops.forEach((op, i) => {
    const name = isJobOp(op) ? JOB_OP_NAMES[op] : `op ${op}`;
    byOp.set(name, (byOp.get(name) ?? 0) + (1000 * ((times.own[i] ?? 0) + (times.barrier[i] ?? 0))) / times.runs);
  });
  const inProgram = times.runs === 0 ? NaN : [...byOp.values()].reduce((a, b) => a + b, 0);
  const classifierUs = [...byOp].find(([name]) => name.endsWith('(classifier)'))?.[1] ?? NaN; // F32Pick or Q8Pick
  const advice = pool.pageAdvice;
  const resident = (advice.hugePages ? residentMiB(advice.address, advice.bytes) : undefined) ?? { rss: NaN, huge: NaN };
  const result: Result = {
    usPerToken: (1000 * ms) / tokens,
    classifierUs,
    otherOpsUs: inProgram - classifierUs,
    attendUs: byOp.get('Attend') ?? NaN,
    outsideUs: (1000 * ms) / tokens - inProgram,
    splitShare: times.runs / tokens,
    loadMs,
    poolHugeMiB: resident.huge,
    poolRssMiB: resident.rss,
    anonHugeMiB: anonHugePagesMiB() ?? NaN,
    rssMiB: peakRssMiB(),
    classifierAt: m.weights.pooledClassifier?.data ?? -1,
    others,
    ids: ids.slice(0, 16).join(','),
  };
  await disposeModel(m);
  return result;
}

/** Wait, up to 15 s, for a second in which other processes took under 0.1 of a core (the rounds' others' CPU is what tells). */
async function quietSecond(): Promise<void> {
  for (const started = performance.now(); performance.now() - started < 15_000;) {
    const from = cpuMark();
    await new Promise((done) => setTimeout(done, 1000));
    if (!((othersCores(from, cpuMark()) ?? 0) >= 0.1)) return;
  }
}

/** --rounds rounds of a fresh process an arm, the arms' order reversed every other round: each arm's results by round. */
async function runRounds(file: string): Promise<Map<string, Result[]>> {
  const script = fileURLToPath(import.meta.url);
  const results = new Map<string, Result[]>(arms.map((a) => [a, []]));
  for (let r = 0; r < rounds; r++) {
    for (const a of r % 2 === 0 ? arms : [...arms].reverse()) {
      const args = [script, '--child', armOf(a), '--model', file, '--shape', shape, '--weights', weights, '--threads', String(threads)];
      args.push('--warm', String(warm), '--streams', String(streams), '--length', String(length));
      await quietSecond();
      const out = execFileSync(process.execPath, [...(armOf(a) === 'gc' ? ['--expose-gc'] : []), ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
      const res = JSON.parse(out, (_, v: unknown) => (v === null ? NaN : v)) as Result; // (NaN travels as null)
      results.get(a)!.push(res);
      process.stderr.write(
        `round ${r + 1} ${a}: ${res.usPerToken.toFixed(1)} µs/token; classifier ${res.classifierUs.toFixed(1)}, other ops ${res.otherOpsUs.toFixed(1)} ` +
          `(Attend ${res.attendUs.toFixed(1)}), outside ${res.outsideUs.toFixed(1)}, split ${res.splitShare.toFixed(2)}; load ${res.loadMs.toFixed(0)} ms; ` +
          `pool ${res.poolHugeMiB.toFixed(0)} of ${res.poolRssMiB.toFixed(0)} MiB in 2 MB pages, all anonymous ${res.anonHugeMiB.toFixed(0)}; ` +
          `peak RSS ${res.rssMiB.toFixed(0)} MiB; classifier at ${res.classifierAt}; others ${res.others.toFixed(2)} cores; ids ${res.ids}\n`,
      );
    }
  }
  return results;
}

/** The table over the quiet rounds (medians, and ratios to the first arm's in the same round), with what it is of. */
function report(results: Map<string, Result[]>, loadBefore: number): string {
  const idsDiffer = arms.some((a) => results.get(a)!.some((res) => res.ids !== results.get(arms[0]!)![0]!.ids));
  // quiet rounds: every arm's timed tokens beside under 0.1 of a core of other processes
  const all = [...Array(rounds).keys()];
  const calm = all.filter((r) => arms.every((a) => results.get(a)![r]!.others < 0.1));
  const quiet = calm.length > 0 ? calm : all; // (none quiet: every round, said so)
  const of = (a: string, f: (res: Result) => number) => quiet.map((r) => f(results.get(a)![r]!));
  const med = (a: string, f: (res: Result) => number, digits = 1) => median(of(a, f)).toFixed(digits);
  const base = arms[0]!;
  const ratio = (a: string, f: (res: Result) => number) => {
    const xs = quiet.map((r) => f(results.get(a)![r]!) / f(results.get(base)![r]!));
    return `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(2)}..${Math.max(...xs).toFixed(2)})`;
  };
  const range = (a: string, f: (res: Result) => number) => `${Math.min(...of(a, f)).toFixed(0)}..${Math.max(...of(a, f)).toFixed(0)}`;
  // on one thread no program runs split: its columns are dropped
  const split = arms.some((a) => of(a, (res) => res.classifierUs).some((x) => !Number.isNaN(x)));
  const programColumns = [3, 4, 5, 6, 7, 8];
  const keep = (cells: string[]) => (split ? cells : cells.filter((_, i) => !programColumns.includes(i)));
  const rows = arms.map((a) =>
    keep([
      a,
      med(a, (res) => res.usPerToken),
      ratio(a, (res) => res.usPerToken),
      med(a, (res) => res.classifierUs),
      range(a, (res) => res.classifierUs),
      ratio(a, (res) => res.classifierUs),
      med(a, (res) => res.otherOpsUs),
      med(a, (res) => res.attendUs),
      med(a, (res) => res.outsideUs),
      med(a, (res) => res.loadMs, 0),
      `${med(a, (res) => res.poolHugeMiB, 0)} of ${med(a, (res) => res.poolRssMiB, 0)}`,
      med(a, (res) => res.rssMiB, 0),
    ]),
  );
  return (
    `${shape}, ${weights}, ${threads} thread${threads > 1 ? 's' : ''}; per process ${8 + warm} tokens untimed, then ${streams} x ${length} timed. ` +
    `${calm.length} quiet rounds of ${rounds} (every arm's timed tokens beside under 0.1 of a core of other processes${calm.length > 0 ? '' : ': NONE; the figures are of every round'}); load average ` +
    `${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after. Medians over the quiet rounds; X/${base}: the median of the quiet rounds' ` +
    `ratios (range). The program's steps, µs a split token: the calling thread's own claims and its wait at the barrier ` +
    `(none on one thread: no program runs split there). ${idsDiffer ? 'THE ARMS DECODED DIFFERENT TOKENS.' : 'Every process decoded the same tokens.'}\n\n` +
    markdownTable(
      keep([
        'arm',
        'µs/token',
        `/${base}`,
        'classifier step',
        'range',
        `/${base}`,
        'other steps',
        'of them Attend',
        'outside the program',
        'load ms',
        'pool MiB in 2 MB pages',
        'peak RSS MiB',
      ]),
      rows,
    )
  );
}

async function main(): Promise<void> {
  const childArm = cli.value('child', '');
  if (childArm) {
    process.stdout.write(JSON.stringify(await child(childArm as Arm, cli.value('model', ''))));
    return;
  }
  const { writeLlama2c } = await import('../src/checkpoint/llama2c.js');
  const { randomLlamaTensors } = await import('../src/model/random_init.js');
  const dir = mkdtempSync(join(tmpdir(), 'streamllm-load-paths-'));
  try {
    const file = join(dir, `${shape}.bin`);
    writeLlama2c(file, randomLlamaTensors({ ...NAMED_SHAPES[shape]!, sharedClassifier: true }, 0));
    const loadBefore = loadavg()[0]!;
    const body = report(await runRounds(file), loadBefore);
    process.stdout.write(body + '\n');
    recordResult('Decode by load path (bench/load_paths.ts)', `node dist/bench/load_paths.js ${process.argv.slice(2).join(' ')}`.trim(), body);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runBench(main);
