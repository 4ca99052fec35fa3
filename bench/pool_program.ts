// What a pool job costs beyond its loop, and what a program (kernels/pool_program.ts:
// the steps as one job with barriers) saves: N small q8 products of one
// token run as N run() calls, as one program of N steps, and as one program
// with an empty caller step after each product (the cost of a caller
// step's barrier); and N steps too small to split (one unit each: run()
// runs them on the caller alone), as a program, where each step is only its
// barrier, which the caller passes at once (it ran the unit); and N steps of
// two such units on a pool that splits them, where each thread runs one and
// waits for the other's: a barrier's round trip between the cores. The engines alternate in one run (rounds), and run() calls run
// twice (an A/A: the spread between identical engines).
//
//   node dist/bench/pool_program.js [--threads 2] [--steps 31] [--rows 288] [--cols 288] [--units 16384] [--reps 2000] [--rounds 7] [--record]
import { defaultThreads } from '../kernels/threads.js';
import { benchArgs, markdownTable, median, recordResult, runBench } from './common.js';
import type { WorkerPool as Pool } from '../kernels/pool.js';
import type { ProgramOpStep, ProgramStep } from '../kernels/pool_program.js';

const HELP = `bench/pool_program.ts: the fixed cost of pool jobs and of a program's barriers. N q8 products of one token
([rows, cols] each) as N run() calls, as one program, and as one program with an empty caller step after each product;
N steps of one unit, and of two units (each thread one, then the barrier), as a program. Engines alternate in one run; run() calls twice (A/A).

  node dist/bench/pool_program.js [--threads 2] [--steps 31] [--rows 288] [--cols 288] [--units 16384] [--reps 2000] [--rounds 7] [--record]

  --threads N   the pool's threads (default ${Math.min(2, defaultThreads())})
  --steps N     products in a sequence (default 31: a 15M decode step's jobs)
  --rows N      each product's rows (default 288)
  --cols N      each product's columns (default 288; 288 x 288 q8: 93 KB, split)
  --units LIST  more engines: the program cut in units of these bytes (PoolProgram's unitBytes; e.g. 8192,16384)
  --reps N      sequences timed per engine and round (default 2000)
  --rounds N    rounds, the engines alternating (default 7)
  --record      append the table to bench/RESULTS.md
  --help        this text`;

const cli = benchArgs(HELP);
const threads = cli.count('threads', Math.min(2, defaultThreads()), 1, 64);
const steps = cli.count('steps', 31, 1, 1000);
const rows = cli.count('rows', 288, 4, 65536);
const cols = cli.count('cols', 288, 32, 65536);
const reps = cli.count('reps', 2000, 1, 1e6);
const unitList = cli.value('units', '');
const unitSizes = unitList === '' ? [] : unitList.split(',').map((u) => Number(u));
if (!unitSizes.every((u) => Number.isInteger(u) && u >= 1 && u <= 2 ** 30))
  cli.fail(`--units: expected bytes (whole numbers, comma-separated), got '${unitList}'`);
const rounds = cli.count('rounds', 7, 1, 100);
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const { WorkerPool } = await import('../kernels/pool.js');
const { PoolOp } = await import('../kernels/pool_ops.js');
const { PoolProgram } = await import('../kernels/pool_program.js');
const { allocMatrix, matrixBytes, writeRow } = await import('../kernels/split_products.js');

/** The N products (and a step of one unit) in `pool`'s memory. */
function sequence(pool: Pool) {
  // one matrix per step (a decode step's products read different weights), one x
  // x padded to the matrices' stride (a whole number of q8 blocks; the padding zero), then its blocks and scales
  const stride = Math.ceil(cols / 32) * 32;
  const x = pool.alloc(4 * stride);
  const xq = pool.alloc(2 * stride);
  const xd = pool.alloc(stride / 8);
  new Float32Array(pool.memory.buffer, x, cols).set(Float32Array.from({ length: cols }, (_, i) => Math.sin(i)));
  pool.loops.quantizeX16(x, stride, xq, xd);
  const row = Float32Array.from({ length: cols }, (_, i) => Math.cos(i));
  const products: ProgramOpStep[] = [];
  for (let s = 0; s < steps; s++) {
    const m = allocMatrix(pool, 'q8', rows, cols);
    for (let r = 0; r < rows; r++) writeRow(m, r, row);
    products.push({ op: PoolOp.Q8, args: [m.data, xq, xd, pool.alloc(4 * rows), m.stride, 1, rows], rows, weightBytes: matrixBytes('q8', rows, cols) });
  }
  // a step of one unit: SwiGLU of 4 rows of 8 (run() runs it alone: 384 bytes); of two such units: 8 rows
  const gateUp = pool.alloc(4 * 8 * 16);
  const tiny: ProgramOpStep = { op: PoolOp.Swiglu, args: [gateUp, 8, pool.alloc(4 * 8 * 8)], rows: 4, weightBytes: 3 * 4 * 4 * 8 };
  const pair: ProgramOpStep = { ...tiny, rows: 8, weightBytes: 2 * tiny.weightBytes };
  return { products, tiny, pair };
}

await runBench(async () => {
  const pool = new WorkerPool(threads);
  const alone = new WorkerPool(1);
  // every step of two row groups split (a unit each): each thread claims one, then waits for the other's
  const everySplit = new WorkerPool(threads, { splitMinBytes: 0, unitBytes: 1 });
  await Promise.all([pool.ready(), everySplit.ready()]);
  const { products, tiny } = sequence(pool);
  const oneThread = sequence(alone).products;
  const pairs = sequence(everySplit).pair;
  const program = new PoolProgram(pool, products);
  // the same products, cut in units of other sizes
  const unitPrograms = unitSizes.map((unitBytes) => new PoolProgram(pool, products, { unitBytes }));
  const withCallers = new PoolProgram(
    pool,
    products.flatMap((p): ProgramStep[] => [p, { caller: () => undefined }]),
  );
  const barriers = new PoolProgram(
    pool,
    products.map(() => tiny),
  );
  const pairBarriers = new PoolProgram(
    everySplit,
    products.map(() => pairs),
  );
  const runCalls = () => {
    for (const p of products) pool.run(p.op, p.args, p.rows, p.weightBytes);
  };
  const engines: [string, () => void, number][] = [
    ['run() calls', runCalls, steps],
    [
      'one thread (run() calls)',
      () => {
        for (const p of oneThread) alone.run(p.op, p.args, p.rows, p.weightBytes);
      },
      steps,
    ],
    ['program', () => program.run(), steps],
    ['program + caller steps', () => withCallers.run(), 2 * steps],
    ['run() calls (A/A)', runCalls, steps],
    ['program of 1-unit steps', () => barriers.run(), steps],
    ['program of 2-unit steps', () => pairBarriers.run(), steps],
    ...unitPrograms.map((p, i): [string, () => void, number] => [`program, units of ${unitSizes[i]} B (${p.unitsOf(0)} a product)`, () => p.run(), steps]),
  ];
  const times = engines.map(() => [] as number[]); // µs a sequence, per round
  for (const [, run] of engines) for (let i = 0; i < Math.min(200, reps); i++) run(); // warm
  for (let round = 0; round < rounds; round++) {
    engines.forEach(([, run], e) => {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) run();
      times[e]!.push((1000 * (performance.now() - t0)) / reps);
    });
  }
  const base = median(times[0]!);
  // a product's share of the one-thread time, split perfectly: what each of the N steps would cost without any synchronisation
  const ideal = median(times[1]!) / threads;
  const table = markdownTable(
    ['engine', 'steps', 'µs a sequence (median)', 'spread (min-max)', 'µs a step', 'vs run() calls', `µs a product over 1 thread / ${threads}`],
    engines.map(([name, , n], e) => {
      const t = times[e]!;
      const m = median(t);
      const over = name.startsWith('one thread') || name.includes('-unit') ? '' : ((m - ideal) / steps).toFixed(2);
      return [name, String(n), m.toFixed(1), `${Math.min(...t).toFixed(1)}-${Math.max(...t).toFixed(1)}`, (m / n).toFixed(2), (m / base).toFixed(3), over];
    }),
  );
  const saved = (base - median(times[2]!)) / steps;
  const summary = `${threads} threads, ${steps} q8 products of [${rows}, ${cols}] (${(matrixBytes('q8', rows, cols) / 1024).toFixed(0)} KB, ${products[0] === undefined ? 0 : program.unitsOf(0)} units each), ${reps} sequences x ${rounds} rounds: a program saves ${saved.toFixed(2)} µs a step against run() calls`;
  console.log(`${table}\n\n${summary}`);
  recordResult(
    'Pool programs against run() calls (bench/pool_program.ts)',
    `node dist/bench/pool_program.js ${process.argv.slice(2).join(' ')}`,
    `${table}\n\n${summary}`,
  );
  program.dispose();
  withCallers.dispose();
  barriers.dispose();
  pairBarriers.dispose();
  unitPrograms.forEach((p) => p.dispose());
  await Promise.all([pool.dispose(), alone.dispose(), everySplit.dispose()]);
});
