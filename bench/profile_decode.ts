// Where the time of a pooled greedy decode step goes (--threads, --weights:
// the worker pool's path), from V8's sampling profiler: each sample is
// charged to the nearest frame, from the innermost out, that belongs to a
// part of the step (so a wasm loop counts for the JavaScript that called it,
// and a tfjs op for tfjs whoever called it):
//
//   weight products     kernels/pool.ts, kernels/split_products.ts (the SIMD
//                       loops, the calling thread's share and its wait)
//   other pool jobs     SwiGLU, attention and NLL jobs on the pool
//   attention           head split, rotation and attention loops
//                       (kernels/qkv_heads.ts, kernels/attention*.ts, rope)
//   cache               the policy's store (src/cache/, kernels/cache_write.ts)
//   tfjs                tfjs itself: tensors made, read, disposed; its ops
//   sampling, checks    argmax and the non-finite check of the logits (kernels/logits_argmax.ts: both at once)
//   layer loops         norms, residual adds (src/model/pooled_layers.ts)
//   other JavaScript    the forward pass's and generate's own code
//   GC, other           the garbage collector, V8 itself
//
// The profiler itself slows a step down, so the step time comes from a run
// without it (same process, before), which also times the pool's jobs
// (WorkerPool.run, and runProgram: a decode step as one program): the time a step spends outside them is measured there. The model is drawn straight into the
// pool (randomLlamaReader): no file.
//
//   node dist/bench/profile_decode.js [--shapes 15M,110M] [--weights q8] [--threads N] [--tokens 128] [--rounds 4] [--record]
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { defaultThreads } from '../kernels/threads.js';
import { initBackend } from '../src/backend.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { benchArgs, markdownTable, recordResult, runBench, shapesFlag, timePoolJobs } from './common.js';
import type { Model } from '../src/model/weights.js';

const HELP = `bench/profile_decode.ts: where the time of a pooled greedy decode step goes (V8's sampling profiler,
samples charged to the part of the step they ran in: weight products, attention, tfjs, sampling, ...).

  node dist/bench/profile_decode.js [--shapes 15M,110M] [--weights f32|q8] [--threads N] [--tokens 128] [--rounds 4] [--record]

  --shapes LIST   llama2.c shapes (${Object.keys(NAMED_SHAPES).join(', ')}); default 15M
  --weights F     f32 or q8 (default q8)
  --threads N     the pool's threads (default: every core, ${defaultThreads()} here)
  --tokens N      greedy tokens from BOS per round (default 128)
  --rounds N      rounds timed, then as many profiled (default 4)
  --record        append the tables to bench/RESULTS.md
  --help          this text`;

// Every flag read and checked here, before tfjs or a model loads: --help and a bad value answer at once.
const cli = benchArgs(HELP);
const shapes = shapesFlag(cli, 'shapes', '15M');
const weights = cli.choice('weights', 'q8', ['f32', 'q8']);
const threads = cli.count('threads', defaultThreads(), 1, 256);
const tokens = cli.count('tokens', 128, 1, 100_000);
const rounds = cli.count('rounds', 4, 1, 100);
const { isJobOp, JOB_OP_NAMES } = await import('../kernels/pool_ops.js');
const { generate } = await import('../src/generate.js');
const { pooledModelFromLlama2c } = await import('../src/model/pooled_llama2c.js');
const { randomLlamaReader } = await import('../src/model/random_init.js');
const { disposeModel } = await import('../src/model/weights.js');
const { argmax } = await import('../src/sample/sampler.js');

/** The parts of a step, each with the source files (url endings) or function names that are its own. */
const PARTS: { name: string; files: RegExp }[] = [
  { name: 'sampling, checks', files: /src\/sample\/|src\/finite\.js|kernels\/logits_argmax\.js/ },
  { name: 'tfjs', files: /@tensorflow\// },
  { name: 'weight products', files: /kernels\/(pool|split_products|pool_scratch)\.js/ },
  { name: 'other pool jobs', files: /kernels\/(pooled_swiglu|pooled_attention|token_nll)\.js/ },
  { name: 'attention', files: /kernels\/(qkv_heads|attention|attention_fused|rope|simd\/instance)\.js|kernels\/paths\.js/ },
  { name: 'cache', files: /src\/cache\/|kernels\/cache_write\.js/ },
  { name: 'layer loops', files: /src\/model\/pooled_layers\.js/ },
  { name: 'other JavaScript', files: /\/(src|kernels|bench)\// },
];

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Microseconds per part (and per function, self time), from a profile. */
function charge(profile: CpuProfile): { parts: Map<string, number>; functions: Map<string, number>; total: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const partOf = new Map<number, string>();
  const part = (id: number): string => {
    let known = partOf.get(id);
    if (known !== undefined) return known;
    const { functionName, url } = byId.get(id)!.callFrame;
    const own = PARTS.find((p) => p.files.test(url))?.name;
    const up = parent.get(id);
    if (own !== undefined) known = own;
    else if (functionName === '(garbage collector)' || functionName === '(program)' || functionName === '(idle)') known = 'GC, other';
    else known = up === undefined ? 'GC, other' : part(up);
    partOf.set(id, known);
    return known;
  };
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    // The first sample's time is the profiler's own start (Profiler.start's
    // dispatch, about 30 ms: 0.05 ms a token of 2 x 256, charged to 'other
    // JavaScript'), not the step's.
    if (i === 0) return;
    const dt = profile.timeDeltas[i]!;
    total += dt;
    const p = part(id);
    parts.set(p, (parts.get(p) ?? 0) + dt);
    const { functionName, url } = byId.get(id)!.callFrame;
    const name = `${functionName || '(anonymous)'} (${url.split('/').slice(-2).join('/') || 'native'})`;
    functions.set(name, (functions.get(name) ?? 0) + dt);
  });
  return { parts, functions, total };
}

async function decode(model: Model, tokens: number, rounds: number): Promise<number> {
  let n = 0;
  const started = performance.now();
  for (let r = 0; r < rounds; r++) for await (const _ of generate(model, { kind: 'dense' }, [1], argmax, { steps: tokens })) n++;
  return (performance.now() - started) / n;
}

/**
 * Where a decode step's program (if the model runs one) spends the calling
 * thread's time, per kind of op step: in its own claims, and waiting at the
 * step's barrier for the other threads' (WorkerPool.programTimes), µs a
 * token; undefined when no program ran split.
 */
async function programTable(model: Model, tokens: number, rounds: number): Promise<string | undefined> {
  const pool = model.pool;
  if (pool === undefined) return undefined;
  const times = (pool.programTimes = { runs: 0, own: [] as number[], barrier: [] as number[], ops: [] as number[] });
  let n = 0;
  try {
    for (let r = 0; r < rounds; r++) for await (const _ of generate(model, { kind: 'dense' }, [1], argmax, { steps: tokens })) n++;
  } finally {
    pool.programTimes = undefined;
  }
  if (times.runs === 0) return undefined;
  const kinds = new Map<string, { steps: number; own: number; barrier: number }>();
  times.ops.forEach((op, s) => {
    const name = isJobOp(op) ? JOB_OP_NAMES[op] : `op ${op}`;
    const k = kinds.get(name) ?? { steps: 0, own: 0, barrier: 0 };
    k.steps++;
    k.own += times.own[s] ?? 0;
    k.barrier += times.barrier[s] ?? 0;
    kinds.set(name, k);
  });
  const perRun = (ms: number) => ((1000 * ms) / times.runs).toFixed(1);
  const rows = [...kinds].map(([name, k]) => [name, String(k.steps), perRun(k.own), perRun(k.barrier), ((1000 * k.barrier) / times.runs / k.steps).toFixed(2)]);
  const total = (xs: number[]) => xs.reduce((a, b) => a + (b ?? 0), 0);
  rows.push(['all barriers', String(times.ops.filter((o) => o !== undefined).length), perRun(total(times.own)), perRun(total(times.barrier)), '']);
  return (
    `The decode step's program (kernels/pool_program.ts), ${times.runs} of ${n} tokens run split over the threads (the rest while the cores were busy: step by step); ` +
    `the calling thread's time per split token (two clock readings a step added; the steps that run on every thread, ` +
    `without a barrier, are not listed: their time is in the own claims of the step after them):\n\n` +
    markdownTable(['op step', 'barriers a token', 'own claims, µs', 'at the barriers, µs', 'µs a barrier'], rows)
  );
}

async function profileShape(shape: string, weights: 'f32' | 'q8', threads: number, tokens: number, rounds: number): Promise<string> {
  const s = { ...NAMED_SHAPES[shape]!, sharedClassifier: true };
  const loadBefore = loadavg()[0]!;
  const model = pooledModelFromLlama2c(randomLlamaReader(s, 0), { threads, weights }, `--shapes ${shape}`);
  await model.pool?.ready();
  await decode(model, 16, 1); // warm-up
  // The unprofiled run also times the pool's jobs (WorkerPool.run: the weight
  // products and the other pool jobs, the calling thread's share and its
  // wait), so that the time outside them is a measurement, not a share.
  const inPool = timePoolJobs(model.pool);
  const stepMs = await decode(model, tokens, rounds);
  const poolMs = inPool.stop() / (rounds * tokens);
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const profiledMs = await decode(model, tokens, rounds);
  const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
  session.disconnect();
  const program = await programTable(model, tokens, rounds);
  await disposeModel(model);
  const { parts, functions, total } = charge(profile);
  const share = (us: number) => us / total;
  const rows = [...parts].sort((a, b) => b[1] - a[1]).map(([name, us]) => [name, (share(us) * stepMs).toFixed(3), `${(100 * share(us)).toFixed(1)}%`]);
  const top = [...functions]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([name, us]) => [name, (share(us) * stepMs).toFixed(3), `${(100 * share(us)).toFixed(1)}%`]);
  return (
    `${shape} (${s.dim} dim, ${s.layers} layers), ${weights}, ${threads} thread${threads > 1 ? 's' : ''}: ${stepMs.toFixed(3)} ms a token ` +
    `(${(1000 / stepMs).toFixed(1)} tok/s; ${profiledMs.toFixed(3)} ms under the profiler), ${rounds} x ${tokens} greedy tokens from BOS, dense cache; ` +
    `timed in the same run: ${poolMs.toFixed(3)} ms a token in the pool's jobs (WorkerPool.run, runProgram), ${(stepMs - poolMs).toFixed(3)} ms outside them. ` +
    `Shares from the profiled run, applied to the unprofiled step time. Load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after.\n\n` +
    markdownTable(['part of the step', 'ms a token', 'share'], rows) +
    '\n\n' +
    markdownTable(['function (self time)', 'ms a token', 'share'], top) +
    (program === undefined ? '' : `\n\n${program}`)
  );
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const sections: string[] = [];
  for (const shape of shapes) sections.push(await profileShape(shape, weights, threads, tokens, rounds));
  const body = sections.join('\n\n');
  process.stdout.write(body + '\n');
  recordResult('Decode step profile (bench/profile_decode.ts)', `node dist/bench/profile_decode.js ${process.argv.slice(2).join(' ')}`.trim(), body);
}

await runBench(main);
