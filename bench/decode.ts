// Batch-1 greedy decode speed against llama2.c's run.c, in one run: this
// project on float32 and q8 weights, on one thread and on every core (the
// worker pool's loops, as the CLI runs them; float32 on one thread also on
// the plain tfjs path, XNNPACK's products and tfjs ops, the one-thread path
// before session 25 and the base of the issue's "today's one-thread
// float32"), alternating with run.c built as its Makefile's `runomp` (-Ofast
// -march=native -fopenmp) on 1 and 2 threads (and on `--threads` where that
// is more: the all-threads ratio compares like with like on a bigger
// machine); and blocked evaluation on one
// thread and on every core. Only ratios within one run mean anything on a
// shared machine.
//
// Every measurement is a child process (its own memory, no warm state
// carried between engines); the engines go round robin, `--rounds` times,
// and each reports its median; around each, a cache line's round trip
// between two threads says how far apart the machine had put two cores
// (on a VM it moves, and two-thread ratios move with it: each ratio is
// then also given by placement). Checkpoints (random, llama2.c format), the
// synthetic tokenizer run.c needs, and runomp itself go to a temporary
// folder, removed at the end.
//
//   node dist/bench/decode.js [--shapes 15M,110M] [--tokens 128] [--rounds 3] [--threads N] [--record]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultThreads } from '../kernels/threads.js';
import { initBackend } from '../src/backend.js';
import { StreamllmError } from '../src/errors.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import {
  anonHugePagesMiB,
  benchArgs,
  coreRoundTripNs,
  cpuMark,
  markdownTable,
  median,
  medianWithInterval,
  othersCores,
  peakRssMiB,
  placementBoundary,
  recordResult,
  runBench,
  shapesFlag,
} from './common.js';

const HELP = `bench/decode.ts: greedy decode tok/s of this project (float32, q8; 1 thread and all, in the worker pool;
float32 on 1 thread also on the plain tfjs path) against llama2.c run.c built as runomp (1, 2 and --threads threads),
alternating in one run; blocked evaluation (float32, q8; the same placements) on 1 and all threads. Around each
measurement, a cache line's round trip between two threads says how far apart the machine had put two cores.

  node dist/bench/decode.js [--shapes 15M,110M] [--tokens 128] [--warmup 8] [--rounds 3] [--threads N] [--eval-tokens 1024] [--only decode|eval] [--engines LIST] [--spin-ab] [--pages-ab] [--anon-peer] [--record]

  --shapes LIST      llama2.c shapes (${Object.keys(NAMED_SHAPES).join(', ')}); default 15M,110M
  --tokens N         greedy tokens timed per measurement (default 128). Every engine decodes N+1 tokens from
                     BOS and is timed as run.c times itself: from after its first token to its last
  --warmup N         greedy tokens ours decode first, untimed, as a stream of their own in the same process
                     (default 8; 0: none. This engine's first few hundred tokens run slower than later ones:
                     see the README). The issue's own protocol, 256 tokens from a fresh process (run.c's
                     default -n 256, the 15M model's whole context): --tokens 255 --warmup 0
  --rounds N         round-robin passes over the engines (default 3)
  --threads N        "all threads" (default: every core, ${defaultThreads()} here)
  --eval-tokens N    tokens scored per blocked-evaluation measurement (default 1024; 0 skips it)
  --only decode|eval only the decode rows (run.c and ours) or only the blocked-evaluation rows (default: both)
  --engines LIST     only these engines, in this order, by key (default: every one the other flags give): runomp-N (run.c on N
                     threads; -anon with --anon-peer), f32-N, q8-N (ours in the pool; -nospin with --spin-ab, -4k with
                     --pages-ab), tfjs (ours on the tfjs path), eval-f32-N, eval-q8-N, eval-tfjs; N is 1 or --threads
                     (run.c's also 2), each key once. More rounds of fewer engines: e.g. --engines runomp-2,f32-2 --rounds 41
  --spin-ab          also this project on all threads with the pool's spin off (the sleep-only pool), an A/B of the spin in the same run
  --pages-ab         also this project (1 thread and all) with its memory on 4 KB pages (the pool's memory and the wasm
                     backend's heap not advised to take 2 MB pages: kernels/huge_pages.ts), an A/B of the page size
  --anon-peer        also runomp (each thread count above) with its checkpoint copied into anonymous memory, as this project's
                     weights would lie without 2 MB pages (4 KB here: THP madvise), instead of its read-only mmap of the file, which the
                     page cache can map in 2 MB folios (fewer TLB misses)
  --peer FILE        run.c to build (default: ../shared/peers/llama2c/run.c beside the repository)
  --record           append the tables to bench/RESULTS.md
  --help             this text

Needs gcc with OpenMP and run.c; without them, only this project is measured.
Large files go to a temporary folder, removed at the end.`;

/**
 * Ours, float32 on one thread on the plain tfjs path (the model never placed
 * in the pool: XNNPACK's products and tfjs ops, `--products tfjs`): the
 * one-thread path before session 25, which the issue's "today's one-thread
 * float32" measured, kept as a row of its own.
 */
const TFJS_PATH = (kind: 'ours' | 'eval'): Engine => ({
  name: `${kind === 'eval' ? 'blocked eval' : 'this project'}, f32, 1 thread, tfjs path (--products tfjs)`,
  kind,
  threads: 1,
  weights: 'f32',
  tfjs: true,
});

/** ../shared/peers/llama2c/run.c beside the repository (dist/bench/ is two folders down). */
const DEFAULT_PEER = fileURLToPath(new URL('../../../shared/peers/llama2c/run.c', import.meta.url));

const cli = benchArgs(HELP, ['child FILE', 'child-eval FILE', 'weights F', 'spin-off', 'small-pages', 'tfjs-products']);
const arg = cli.value;
const tokens = cli.count('tokens', 128, 1, 1_000_000);
const warmup = cli.count('warmup', 8, 0, 1_000_000);
const threads = cli.count('threads', defaultThreads(), 1, 256);
const evalTokens = cli.count('eval-tokens', 1024, 0, 1_000_000);
const rounds = cli.count('rounds', 3, 1, 100);
const shapes = shapesFlag(cli, 'shapes', '15M,110M');
const only = cli.choice('only', 'both', ['both', 'decode', 'eval']);
// the engines the flags give (run.c's as if it builds): none is an error, not empty tables; --engines' keys checked against them
const keys = engineList(only !== 'eval', cli.has('anon-peer')).map(engineKey);
if (keys.length === 0) cli.fail('--only eval with --eval-tokens 0: no engine left to run');
const engines = cli.has('engines') ? cli.value('engines', '').split(',') : undefined;
if (engines !== undefined) {
  for (const [i, k] of engines.entries()) {
    if (!keys.includes(k)) cli.fail(`--engines: no engine '${k}' with these flags (engines: ${keys.join(', ')})`);
    // (a round runs an engine once: a second mention would be dropped, and the order it was meant to give lost)
    if (engines.indexOf(k) < i) cli.fail(`--engines: '${k}' given twice`);
  }
}
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const { writeLlama2c } = await import('../src/checkpoint/llama2c.js');
const { scoreTokens } = await import('../src/eval/perplexity.js');
const { generate } = await import('../src/generate.js');
const { randomLlamaTensors } = await import('../src/model/random_init.js');
const { disposeModel } = await import('../src/model/weights.js');
const { argmax } = await import('../src/sample/sampler.js');
const { loadOurs } = await import('./models.js');

interface Engine {
  /** Row label. */
  name: string;
  kind: 'ours' | 'runomp' | 'eval';
  threads: number;
  weights?: 'f32' | 'q8';
  /** The pool's threads sleep at once between jobs (--spin-ab). */
  spinOff?: boolean;
  /** The pool's memory left on 4 KB pages (--pages-ab). */
  smallPages?: boolean;
  /** runomp reading its checkpoint into anonymous memory (--anon-peer). */
  anon?: boolean;
  /** Ours on the plain tfjs path (the model never placed: XNNPACK's products, tfjs ops; float32, one thread). */
  tfjs?: boolean;
}

interface Measurement {
  tokensPerSecond: number;
  rssMiB?: number;
  /** Of ours: MiB of the process's anonymous memory in 2 MB pages at the end (AnonHugePages: the pool's memory, where advised). */
  hugePagesMiB?: number;
  /** Times the pool's workers were told to stop spinning because the process got too little CPU time (other processes wanted the cores: kernels/pool_busy.ts). */
  calmPeriods?: number;
  /**
   * CPU that other processes took meanwhile, in cores (bench/common.ts
   * othersCores): over ours' timed tokens; over run.c's whole process. What
   * told a slow measurement from a fast one here (2 cores shared, s24): with
   * others taking a few tenths of a core, our 15M 2-thread decode ran 400-470
   * tok/s, against 580-620 beside nothing.
   */
  othersCores?: number;
  /** The threads' round trip just before and just after the measurement, ns (bench/common.ts coreRoundTripNs; absent where it gave none). */
  roundTripNs?: [number, number];
}

/** A tokenizer.bin run.c accepts, for a vocabulary of `vocab` (see the peer's README). */
function syntheticTokenizer(file: string, vocab: number): void {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeInt32LE(16);
  parts.push(head);
  for (let id = 0; id < vocab; id++) {
    // byte tokens <0x00>..<0xFF> at 3..258 and " " at 259: run.c's prompt
    // encoder falls back to the first and always looks up the second
    const text = id >= 3 && id < 259 ? `<0x${(id - 3).toString(16).toUpperCase().padStart(2, '0')}>` : id === 259 ? ' ' : `t${id}`;
    const bytes = Buffer.from(text, 'utf8');
    const rec = Buffer.alloc(8);
    rec.writeFloatLE(0, 0);
    rec.writeInt32LE(bytes.length, 4);
    parts.push(rec, bytes);
  }
  writeFileSync(file, Buffer.concat(parts));
}

/**
 * Every engine the flags give, in the order a round runs them (run.c's only
 * where it was built: `peer`).
 */
function engineList(peer: boolean, anonPeer: boolean): Engine[] {
  const decode: Engine[] = [
    ...(peer ? [...new Set([1, 2, threads])].map((n): Engine => ({ name: `run.c runomp, ${n} thread${n > 1 ? 's' : ''}`, kind: 'runomp', threads: n })) : []),
    ...(peer && anonPeer
      ? [...new Set([1, 2, threads])].map((n): Engine => ({
          name: `run.c runomp, ${n} thread${n > 1 ? 's' : ''}, weights in anonymous memory`,
          kind: 'runomp',
          threads: n,
          anon: true,
        }))
      : []),
    ...(only === 'eval' ? [] : (['f32', 'q8'] as const)).flatMap((weights) =>
      [...new Set([1, threads])].map((n): Engine => ({
        name: `this project, ${weights}, ${n} thread${n > 1 ? 's' : ''} (pool)`,
        kind: 'ours',
        threads: n,
        weights,
      })),
    ),
    ...(only === 'eval' ? [] : [TFJS_PATH('ours')]),
    ...(only !== 'eval' && threads > 1 && cli.has('spin-ab')
      ? (['f32', 'q8'] as const).map((weights): Engine => ({
          name: `this project, ${weights}, ${threads} threads (pool), no spin`,
          kind: 'ours',
          threads,
          weights,
          spinOff: true,
        }))
      : []),
    ...(only !== 'eval' && cli.has('pages-ab')
      ? (['f32', 'q8'] as const).flatMap((weights) =>
          [...new Set([1, threads])].map((n): Engine => ({
            name: `this project, ${weights}, ${n} thread${n > 1 ? 's' : ''} (pool), 4 KB pages`,
            kind: 'ours',
            threads: n,
            weights,
            smallPages: true,
          })),
        )
      : []),
  ];
  const evaluation: Engine[] =
    evalTokens > 0 && only !== 'decode'
      ? [
          ...(['f32', 'q8'] as const).flatMap((weights) =>
            [...new Set([1, threads])].map((n): Engine => ({
              name: `blocked eval, ${weights}, ${n} thread${n > 1 ? 's' : ''} (pool)`,
              kind: 'eval',
              threads: n,
              weights,
            })),
          ),
          TFJS_PATH('eval'),
        ]
      : [];
  return [...decode, ...evaluation];
}

/** An engine's --engines key: runomp-2, runomp-2-anon, f32-1, q8-2-nospin, f32-2-4k, tfjs, eval-q8-2, eval-tfjs. */
function engineKey(e: Engine): string {
  const ours = e.tfjs === true ? 'tfjs' : `${e.weights}-${e.threads}${e.spinOff === true ? '-nospin' : ''}${e.smallPages === true ? '-4k' : ''}`;
  return e.kind === 'runomp' ? `runomp-${e.threads}${e.anon === true ? '-anon' : ''}` : e.kind === 'eval' ? `eval-${ours}` : ours;
}

/** Child: greedy decode with one engine of ours; prints a Measurement. */
async function childDecode(
  model: string,
  threads: number,
  weights: 'f32' | 'q8',
  tokens: number,
  warmup: number,
  spinOff: boolean,
  smallPages: boolean,
  tfjs: boolean,
): Promise<Measurement> {
  await initBackend('wasm', { hugePages: !smallPages });
  const m = loadOurs('bench decode', model, threads, weights, tfjs, { hugePages: !smallPages, ...(spinOff ? { spinMicros: 0 } : {}) });
  await m.pool?.ready();
  if (warmup > 0) for await (const _ of generate(m, { kind: 'dense' }, [1], argmax, { steps: warmup })); // untimed, a stream of its own
  // run.c's clock: it starts after the first token (run.c: "the first iteration can be slower") and counts the rest
  let started = 0;
  let n = 0;
  let from: ReturnType<typeof cpuMark>;
  for await (const step of generate(m, { kind: 'dense' }, [1], argmax, { steps: tokens + 1 })) {
    if (step.generated === 1) {
      from = cpuMark();
      started = performance.now();
    }
    n = step.generated - 1;
  }
  const tokensPerSecond = n / ((performance.now() - started) / 1000);
  const others = othersCores(from, cpuMark());
  const calmPeriods = m.pool?.calmPeriods ?? 0;
  const hugePagesMiB = anonHugePagesMiB();
  await disposeModel(m);
  return { tokensPerSecond, rssMiB: peakRssMiB(), hugePagesMiB, calmPeriods, othersCores: others };
}

/** Child: blocked scoring of `count` tokens (window cache of the trained length, blocks of 256). */
async function childEval(model: string, threads: number, weights: 'f32' | 'q8', count: number, tfjs: boolean): Promise<Measurement> {
  await initBackend('wasm');
  const m = loadOurs('bench decode', model, threads, weights, tfjs);
  await m.pool?.ready();
  const ids = Array.from({ length: count }, (_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1)));
  const window = m.config.maxSeqLen;
  await scoreTokens(m, ids.slice(0, 256), { kind: 'window', windowSize: window }); // warm-up
  const from = cpuMark();
  const started = performance.now();
  await scoreTokens(m, ids, { kind: 'window', windowSize: window }, { mode: 'blocked', blockSize: 256 });
  const tokensPerSecond = count / ((performance.now() - started) / 1000);
  const others = othersCores(from, cpuMark());
  const calmPeriods = m.pool?.calmPeriods ?? 0;
  const hugePagesMiB = anonHugePagesMiB();
  await disposeModel(m);
  return { tokensPerSecond, rssMiB: peakRssMiB(), hugePagesMiB, calmPeriods, othersCores: others };
}

function runEngine(engine: Engine, dir: string, shape: string, tokens: number, warmup: number, evalTokens: number): Measurement {
  const model = join(dir, `${shape}.bin`);
  if (engine.kind === 'runomp') {
    const from = cpuMark();
    const run = spawnSync(
      join(dir, engine.anon === true ? 'runomp-anon' : 'runomp'),
      [model, '-z', join(dir, `tokenizer-${shape}.bin`), '-t', '0', '-n', String(tokens + 1), '-i', 'Once'],
      {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: String(engine.threads) },
      },
    );
    const match = /achieved tok\/s: ([\d.]+|inf)/.exec(run.stderr); // run.c reports on stderr
    if (match === null) throw new Error(`runomp printed no tok/s (status ${run.status}): ${run.stderr.slice(-200)}`);
    // run.c's clock counts whole milliseconds: a run shorter than one reads as inf
    if (match[1] === 'inf') cli.fail(`--tokens: run.c decoded ${tokens} tokens within one tick of its millisecond clock; give more tokens`);
    return { tokensPerSecond: Number(match[1]), othersCores: othersCores(from, cpuMark()) };
  }
  const script = fileURLToPath(import.meta.url);
  const tfjs = engine.tfjs === true ? ['--tfjs-products'] : [];
  const args =
    engine.kind === 'eval'
      ? ['--child-eval', model, '--threads', String(engine.threads), '--weights', engine.weights!, '--eval-tokens', String(evalTokens), ...tfjs]
      : [
          '--child',
          model,
          '--threads',
          String(engine.threads),
          '--weights',
          engine.weights!,
          '--tokens',
          String(tokens),
          '--warmup',
          String(warmup),
          ...(engine.spinOff ? ['--spin-off'] : []),
          ...(engine.smallPages ? ['--small-pages'] : []),
          ...tfjs,
        ];
  return JSON.parse(execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 })) as Measurement;
}

/** The line of run.c that maps the checkpoint, and what --anon-peer adds after its check: a copy into anonymous memory. */
const PEER_MMAP = '    if (*data == MAP_FAILED) { fprintf(stderr, "mmap failed!\\n"); exit(EXIT_FAILURE); }\n';
const PEER_ANON_COPY =
  '    { float* copy = mmap(NULL, *file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n' +
  '      if (copy == MAP_FAILED) { fprintf(stderr, "anonymous mmap failed!\\n"); exit(EXIT_FAILURE); }\n' +
  '      memcpy(copy, *data, *file_size); munmap(*data, *file_size); *data = copy; }\n';

/** runomp (and with `anon` runomp-anon: run.c reading its checkpoint into anonymous memory) into dir. */
function buildPeer(dir: string, source: string, anon: boolean): boolean {
  try {
    execFileSync('gcc', ['-Ofast', '-march=native', '-fopenmp', '-o', join(dir, 'runomp'), source, '-lm'], { stdio: 'pipe' });
    if (anon) {
      const text = readFileSync(source, 'utf8');
      writeFileSync(join(dir, 'run_anon.c'), text.replace(PEER_MMAP, PEER_MMAP + PEER_ANON_COPY));
      execFileSync('gcc', ['-Ofast', '-march=native', '-fopenmp', '-o', join(dir, 'runomp-anon'), join(dir, 'run_anon.c'), '-lm'], { stdio: 'pipe' });
    }
    return true;
  } catch (e) {
    process.stderr.write(`run.c not built (${(e as Error).message.split('\n')[0]}): measuring this project alone\n`);
    return false;
  }
}

async function main(): Promise<void> {
  const child = arg('child', '');
  if (child) {
    const weights = cli.choice('weights', 'f32', ['f32', 'q8']);
    process.stdout.write(
      JSON.stringify(await childDecode(child, threads, weights, tokens, warmup, cli.has('spin-off'), cli.has('small-pages'), cli.has('tfjs-products'))),
    );
    return;
  }
  const childEvalModel = arg('child-eval', '');
  if (childEvalModel) {
    process.stdout.write(
      JSON.stringify(await childEval(childEvalModel, threads, cli.choice('weights', 'f32', ['f32', 'q8']), evalTokens, cli.has('tfjs-products'))),
    );
    return;
  }

  const anonPeer = cli.has('anon-peer');
  const peerSource = arg('peer', DEFAULT_PEER);
  // Checked before the temporary folder exists: cli.fail exits at once, past any finally.
  if (anonPeer && only !== 'eval' && existsSync(peerSource) && !readFileSync(peerSource, 'utf8').includes(PEER_MMAP)) {
    cli.fail(`--anon-peer: ${peerSource} has no line '${PEER_MMAP.trim()}' to copy the checkpoint after`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'streamllm-bench-decode-'));
  try {
    const peer = only !== 'eval' && buildPeer(dir, peerSource, anonPeer);
    const listed = engineList(peer, anonPeer);
    // (with --engines, in its order: a round runs them so, and a reversed list shows what the order does)
    const all =
      engines === undefined
        ? listed
        : listed.filter((e) => engines.includes(engineKey(e))).sort((a, b) => engines.indexOf(engineKey(a)) - engines.indexOf(engineKey(b)));
    // (the flags were checked as if run.c builds: a list of its engines alone may leave none, and a run would print empty tables)
    if (all.length === 0) throw new StreamllmError(`--engines: ${engines!.join(',')} are run.c's engines alone, and run.c did not build`);
    const sections: string[] = [];
    for (const shape of shapes) {
      const s = NAMED_SHAPES[shape]!;
      writeLlama2c(join(dir, `${shape}.bin`), randomLlamaTensors({ ...s, sharedClassifier: true }, 0));
      syntheticTokenizer(join(dir, `tokenizer-${shape}.bin`), s.vocabSize);
      const results = new Map<Engine, Measurement[]>(all.map((e) => [e, []]));
      const loadBefore = loadavg()[0]!; // said with the result: a busy machine moves every figure, run.c's 2 threads most
      for (let round = 0; round < rounds; round++) {
        for (const e of all) {
          const before = await coreRoundTripNs();
          const m = runEngine(e, dir, shape, tokens, warmup, evalTokens);
          const after = await coreRoundTripNs();
          if (before !== undefined && after !== undefined) m.roundTripNs = [before, after];
          results.get(e)!.push(m);
          const calm = (m.calmPeriods ?? 0) > 0 ? ` (pool's workers calmed ${m.calmPeriods} times: busy cores)` : '';
          const others = m.othersCores === undefined ? '' : `; other processes took ${m.othersCores.toFixed(2)} cores meanwhile`;
          const trips = m.roundTripNs === undefined ? '' : `; threads' round trip ${m.roundTripNs.map((ns) => ns.toFixed(0)).join(' and ')} ns`;
          process.stderr.write(`${shape} round ${round + 1}/${rounds}: ${e.name}: ${m.tokensPerSecond.toFixed(1)} tok/s${calm}${others}${trips}\n`);
        }
      }
      const tps = (e: Engine | undefined) => (e === undefined ? NaN : median(results.get(e)!.map((m) => m.tokensPerSecond)));
      // the engine of this kind and thread count whose variant fields (weights, spinOff, anon, smallPages, tfjs) are exactly `variant`'s
      const find = (kind: Engine['kind'], n: number, variant: Pick<Engine, 'weights' | 'spinOff' | 'anon' | 'smallPages' | 'tfjs'> = {}) =>
        all.find(
          (e) =>
            e.kind === kind &&
            e.threads === n &&
            e.weights === variant.weights &&
            e.spinOff === variant.spinOff &&
            e.anon === variant.anon &&
            e.smallPages === variant.smallPages &&
            e.tfjs === variant.tfjs,
        );
      const tfjsPath = { weights: 'f32', tfjs: true } as const;
      const rows = all.map((e) => {
        const r = results.get(e)!;
        const rates = r.map((m) => m.tokensPerSecond);
        const rss = r[0]!.rssMiB;
        const huge = r[0]!.hugePagesMiB;
        const others = r.flatMap((m) => (m.othersCores === undefined ? [] : [m.othersCores]));
        const trips = r.flatMap((m) => m.roundTripNs ?? []);
        return [
          e.name,
          tps(e).toFixed(1),
          `${Math.min(...rates).toFixed(1)}..${Math.max(...rates).toFixed(1)}`,
          rss === undefined ? '' : rss.toFixed(0),
          huge === undefined ? '' : huge.toFixed(0),
          others.length === 0 ? '' : `${median(others).toFixed(2)} (${Math.max(...others).toFixed(2)})`,
          trips.length === 0 ? '' : `${median(trips).toFixed(0)} (${Math.min(...trips).toFixed(0)}..${Math.max(...trips).toFixed(0)})`,
        ];
      });
      // Where the machine put the two threads' cores around each measurement (bench/common.ts coreRoundTripNs): near or far
      // of placementBoundary's round trip. Where the run saw both, each ratio is given over the rounds of either: a round
      // counts where the round trips before and after both its measurements were all near, or all far.
      const nearBelow = placementBoundary(all.flatMap((e) => results.get(e)!.flatMap((m) => m.roundTripNs ?? [])));
      const placed = (ms: Measurement[], near: boolean) => ms.every((m) => m.roundTripNs !== undefined && m.roundTripNs.every((ns) => ns < nearBelow === near));
      const measured = all.flatMap((e) => results.get(e)!);
      const split = measured.some((m) => placed([m], true)) && measured.some((m) => placed([m], false));
      // The ratio of the two engines' medians, and the median of the rounds' ratios with its 95% interval (src/stats.ts; from 6
      // rounds): in a round the two ran minutes apart at most, so a round's ratio cancels what the machine did over the run.
      // Each pair of engines once: with --threads 1 the all-threads rows below name the one-thread engines again.
      const compared = new Set<string>();
      const ratio = (a: Engine | undefined, b: Engine | undefined): string[] => {
        if (a === undefined || b === undefined || a === b || compared.has(`${a.name} / ${b.name}`)) return ['NaN'];
        compared.add(`${a.name} / ${b.name}`);
        const ra = results.get(a)!;
        const rb = results.get(b)!;
        // each round's ratio, of every round or of the rounds near (far) alone
        const roundRatios = (near?: boolean) =>
          ra.flatMap((m, i) => (near === undefined || placed([m, rb[i]!], near) ? [m.tokensPerSecond / rb[i]!.tokensPerSecond] : []));
        const over = (xs: number[]) => (xs.length === 0 ? 'none' : `${medianWithInterval(xs, 3)}, ${xs.length} round${xs.length > 1 ? 's' : ''}`);
        return [(tps(a) / tps(b)).toFixed(2), medianWithInterval(roundRatios(), 3), ...(split ? [over(roundRatios(true)), over(roundRatios(false))] : [])];
      };
      const calmed = all.flatMap((e) => results.get(e)!).filter((m) => (m.calmPeriods ?? 0) > 0).length;
      // (one-thread float32 has two rows since session 25: the pool's, what --threads 1 runs, and the plain tfjs path's, the
      // one-thread path before it; every ratio against one-thread float32 is given against both, the issue's "today's one-thread
      // float32" being the tfjs path's)
      const ratioRows: [string, string[]][] = [
        ['f32, 1 thread (pool) / runomp 1 thread', ratio(find('ours', 1, { weights: 'f32' }), find('runomp', 1))],
        ['f32, 1 thread, tfjs path / runomp 1 thread', ratio(find('ours', 1, tfjsPath), find('runomp', 1))],
        ['f32, 1 thread: pool / tfjs path', ratio(find('ours', 1, { weights: 'f32' }), find('ours', 1, tfjsPath))],
        ['q8, 1 thread / runomp 1 thread', ratio(find('ours', 1, { weights: 'q8' }), find('runomp', 1))],
        [`f32, ${threads} threads / runomp ${threads} threads`, ratio(find('ours', threads, { weights: 'f32' }), find('runomp', threads))],
        [`q8, ${threads} threads / runomp 2 threads`, ratio(find('ours', threads, { weights: 'q8' }), find('runomp', 2))],
        [
          `f32, ${threads} threads / runomp ${threads} threads, weights in anonymous memory`,
          ratio(find('ours', threads, { weights: 'f32' }), find('runomp', threads, { anon: true })),
        ],
        [`runomp ${threads} threads: mmapped file / anonymous memory`, ratio(find('runomp', threads), find('runomp', threads, { anon: true }))],
        [
          `q8, ${threads} threads / f32, 1 thread, tfjs path (the issue's "today's one-thread float32")`,
          ratio(find('ours', threads, { weights: 'q8' }), find('ours', 1, tfjsPath)),
        ],
        [`q8, ${threads} threads / f32, 1 thread (pool)`, ratio(find('ours', threads, { weights: 'q8' }), find('ours', 1, { weights: 'f32' }))],
        [`f32, ${threads} threads / f32, 1 thread (pool)`, ratio(find('ours', threads, { weights: 'f32' }), find('ours', 1, { weights: 'f32' }))],
        [`f32, ${threads} threads / f32, 1 thread, tfjs path`, ratio(find('ours', threads, { weights: 'f32' }), find('ours', 1, tfjsPath))],
        [`f32, ${threads} threads, spin / no spin`, ratio(find('ours', threads, { weights: 'f32' }), find('ours', threads, { weights: 'f32', spinOff: true }))],
        [`q8, ${threads} threads, spin / no spin`, ratio(find('ours', threads, { weights: 'q8' }), find('ours', threads, { weights: 'q8', spinOff: true }))],
        [`f32, 1 thread, 2 MB / 4 KB pages`, ratio(find('ours', 1, { weights: 'f32' }), find('ours', 1, { weights: 'f32', smallPages: true }))],
        [
          `f32, ${threads} threads, 2 MB / 4 KB pages`,
          ratio(find('ours', threads, { weights: 'f32' }), find('ours', threads, { weights: 'f32', smallPages: true })),
        ],
        [
          `q8, ${threads} threads, 2 MB / 4 KB pages`,
          ratio(find('ours', threads, { weights: 'q8' }), find('ours', threads, { weights: 'q8', smallPages: true })),
        ],
        [
          `f32, ${threads} threads, 4 KB pages / runomp ${threads} threads`,
          ratio(find('ours', threads, { weights: 'f32', smallPages: true }), find('runomp', threads)),
        ],
        [`blocked eval, f32, ${threads} threads / 1 thread (pool)`, ratio(find('eval', threads, { weights: 'f32' }), find('eval', 1, { weights: 'f32' }))],
        [`blocked eval, f32, ${threads} threads / 1 thread, tfjs path`, ratio(find('eval', threads, { weights: 'f32' }), find('eval', 1, tfjsPath))],
        [`blocked eval, f32, 1 thread: pool / tfjs path`, ratio(find('eval', 1, { weights: 'f32' }), find('eval', 1, tfjsPath))],
        [`blocked eval, q8, ${threads} threads / 1 thread (pool)`, ratio(find('eval', threads, { weights: 'q8' }), find('eval', 1, { weights: 'q8' }))],
      ];
      const ratios = ratioRows
        .filter(([, [x]]) => x !== 'NaN') // rows whose engines did not run (--only, --engines, no run.c), or given above
        .map(([label, columns]) => [label, ...columns]);
      sections.push(
        `${shape} (${s.dim} dim, ${s.layers} layers, vocab ${s.vocabSize}): greedy decode from BOS, ${tokens} tokens timed after the first (as run.c times itself; ours after ${warmup > 0 ? `a stream of ${warmup} untimed` : 'nothing untimed: a fresh process'}), dense cache; ` +
          `blocked eval: ${evalTokens} tokens in blocks of 256, window cache of the trained length. Medians of ${rounds} rounds, engines alternating; ` +
          `load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after` +
          (calmed > 0 ? `; in ${calmed} runs of ours the pool found the cores busy and stopped its workers' spin for a while (kernels/pool_busy.ts)` : '') +
          ". Others' CPU: what other processes took while each measurement ran (ours: its timed tokens; run.c: its whole process), " +
          'in cores; the engines share the machine with them, and a measurement beside a few tenths of a core reads slower. ' +
          "Threads' round trip: a cache line's between two threads just before and after each measurement (bench/common.ts " +
          'coreRoundTripNs): how far apart the machine had put two cores; a VM may move its vCPUs within seconds' +
          '.\n\n' +
          markdownTable(
            [
              'engine',
              'tok/s (median)',
              'range',
              'peak RSS MiB',
              'in 2 MB pages, MiB',
              "others' CPU, cores: median (most)",
              "threads' round trip, ns: median (range)",
            ],
            rows,
          ) +
          '\n\n' +
          markdownTable(
            [
              'same-run ratio',
              'x (of the medians)',
              'per round: median (95% interval)',
              ...(split ? [`threads near (round trip < ${nearBelow.toFixed(0)} ns): the same`, 'threads far: the same'] : []),
            ],
            ratios,
          ),
      );
      rmSync(join(dir, `${shape}.bin`));
    }
    const body = sections.join('\n\n');
    process.stdout.write(body + '\n');
    recordResult('Decode against run.c (bench/decode.ts)', `node dist/bench/decode.js ${process.argv.slice(2).join(' ')}`.trim(), body);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runBench(main);
