// A decode step by phase, on 1 thread or on N, from a checkpoint FILE loaded
// as the CLI and bench/decode.ts's child load it (placementOf, then
// loadModelPlaced: straight into the pool; RESULTS 'Second thread' loaded it
// with loadModel, then placeWeights: the same speed, bench/load_paths.ts):
// what each step of the decode program takes on the calling thread, and the
// time outside runProgram (the caller's JavaScript between programs), µs a
// token.
// One thread: each step's whole run (WorkerPool.programTimes with alone
// set: the clock read around each step of runProgramAlone). N threads: the caller's own claims plus its
// wait at the step's barrier (WorkerPool.programTimes); a step every thread
// runs (a norm, SwiGLU) counts in the step after it, so one thread's norm
// and SwiGLU rows add to that step's to compare. Steps are named by their
// place in a layer and summed over the layers. --tokens x --rounds greedy
// tokens from BOS are timed after --warmup untimed ones; with --again N, N
// more untimed, then the same window again (its figures under "again"):
// `--tokens 128 --rounds 1 --warmup 8 --again 1024` is bench/decode.ts's
// window cold, then warm, in one process. Prints one JSON line.
//
//   node dist/bench/step_phases.js --file 15M.bin [--threads 2] [--weights f32] [--tokens 256] [--rounds 4] [--warmup 512] [--again 0]
//
// One thread count a process: alternate processes (and run.c's instrumented
// copy, bench/peer/run_prof.patch) for a comparison; bench/RESULTS.md
// "Second thread: ours and run.c's step by phase on 1 and 2 threads" has the
// way it was run.
import { loadavg } from 'node:os';
import { benchArgs, cpuMark, othersCores, runBench } from './common.js';

const HELP = `bench/step_phases.ts: a decode step by phase (per step of the decode program, µs a token), one process, one thread count;
prints one JSON line. Alternate processes (and run.c's instrumented copy, bench/peer/run_prof.patch) for a comparison.

  node dist/bench/step_phases.js --file CHECKPOINT [--threads 2] [--weights f32] [--tokens 256] [--rounds 4] [--warmup 512] [--again 0]

  --file CHECKPOINT  a llama2.c checkpoint (loaded straight into the pool, as the CLI does)
  --threads N        the pool's threads (default 2)
  --weights F        f32 or q8 (default f32)
  --tokens N         greedy tokens from BOS a round (default 256)
  --rounds N         rounds timed (default 4)
  --warmup N         untimed tokens first (default 512)
  --again N          then N more untimed and the same window again ("again" in the JSON; default 0: not)
  --help             this text`;

const cli = benchArgs(HELP);
const file = cli.value('file', '');
if (file === '') cli.fail('--file CHECKPOINT is required (a llama2.c checkpoint)');
const threads = cli.count('threads', 2, 1, 64);
const weights = cli.choice('weights', 'f32', ['f32', 'q8']);
const tokens = cli.count('tokens', 256, 1, 100_000);
const rounds = cli.count('rounds', 4, 1, 100);
const warmup = cli.count('warmup', 512, 0, 100_000);
const again = cli.count('again', 0, 0, 100_000);
const { initBackend } = await import('../src/backend.js');
const { loadOurs } = await import('./models.js');
const { generate } = await import('../src/generate.js');
const { argmax } = await import('../src/sample/sampler.js');
const { disposeModel } = await import('../src/model/weights.js');
const { JOB_OP_NAMES, isJobOp } = await import('../kernels/pool_ops.js');

async function main(): Promise<void> {
  await initBackend('wasm');
  const m = loadOurs('bench step_phases', file, threads, weights);
  const pool = m.pool!;
  await pool.ready();
  const run = async (n: number) => {
    for await (const _ of generate(m, { kind: 'dense' }, [1], argmax, { steps: n }));
  };
  for (let left = warmup; left > 0; left -= 256) await run(Math.min(256, left));
  const measure = async () => {
    let inProgram = 0;
    const p = pool as unknown as Record<string, unknown>;
    const proto = Object.getPrototypeOf(pool) as Record<string, (...a: unknown[]) => unknown>;
    // per step: own (ms), barrier (ms), op. N threads: the split runs'; one thread: the runs alone (alone set)
    const times = (pool.programTimes = { runs: 0, own: [] as number[], barrier: [] as number[], ops: [] as number[], ...(threads === 1 ? { alone: 0 } : {}) });
    p.runProgram = function (plan: unknown) {
      const t0 = performance.now();
      try {
        proto.runProgram!.call(pool, plan);
      } finally {
        inProgram += performance.now() - t0;
      }
    };
    const from = cpuMark();
    const t0 = performance.now();
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      for await (const _ of generate(m, { kind: 'dense' }, [1], argmax, { steps: tokens })) n++;
    }
    const wall = performance.now() - t0;
    const others = othersCores(from, cpuMark());
    pool.programTimes = undefined;
    const { own, barrier, ops } = times;
    delete p.runProgram;
    const layers = m.config.layers;
    const perLayer = (ops.length - 2) / layers; // the final norm and the classifier after the layers
    const phases = new Map<string, { own: number; barrier: number }>();
    ops.forEach((op, s) => {
      if (op === undefined) return;
      const place = s >= layers * perLayer ? `final ${s - layers * perLayer}` : `layer ${s % perLayer}`;
      const name = `${place} ${op === -1 ? 'caller' : isJobOp(op) ? JOB_OP_NAMES[op] : `op ${op}`}`;
      const k = phases.get(name) ?? { own: 0, barrier: 0 };
      k.own += own[s] ?? 0;
      k.barrier += barrier[s] ?? 0;
      phases.set(name, k);
    });
    const us = (ms: number) => (1000 * ms) / n;
    const out = {
      threads,
      weights,
      tokens: n,
      splitRuns: times.runs + (times.alone ?? 0),
      stepUs: us(wall),
      inProgramUs: us(inProgram),
      outsideUs: us(wall - inProgram),
      others,
      load: loadavg()[0],
      phases: Object.fromEntries([...phases].map(([k, v]) => [k, { own: us(v.own), barrier: us(v.barrier) }])),
    };
    return out;
  };
  const results = [await measure()];
  if (again > 0) {
    for (let left = again; left > 0; left -= 256) await run(Math.min(256, left));
    results.push(await measure());
  }
  process.stdout.write(JSON.stringify(results.length === 1 ? results[0] : { ...results[0], again: results[1] }) + '\n');
  await disposeModel(m);
}

await runBench(main);
