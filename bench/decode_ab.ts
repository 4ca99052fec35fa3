// Greedy decode of two or more ways of running one model, alternating in ONE
// process, in blocks of tokens: the A/B that resolves a few percent where
// fresh processes spread 6-23% (run-queue waits, phases of a shared machine:
// bench/RESULTS.md). Each arm is its own model (its own weights, pool and
// stream: no state shared but the process), all decoding greedily from BOS
// with a dense cache, restarted after the shape's context; the arms take turns
// a block at a time, so a slow phase of the machine falls on each alike, and
// each pair of neighbouring blocks gives a ratio. An arm named twice is the
// A/A that says what a ratio resolves.
//
//   node dist/bench/decode_ab.js [--shape 15M] [--arms tfjs,pool] [--weights f32] [--threads 1] [--block 16] [--blocks 64] [--warmup 512]
import { loadavg } from 'node:os';
import { initBackend } from '../src/backend.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { benchArgs, markdownTable, median, recordResult, runBench, shapeFlag } from './common.js';

const ARMS = ['tfjs', 'pool', 'pool-no-program'] as const;
type ArmKind = (typeof ARMS)[number];

const HELP = `bench/decode_ab.ts: greedy decode tok/s of two or more ways of running one random llama2.c model, alternating
in blocks of tokens in one process (each arm its own model and stream), with the ratio of each arm to the first
from neighbouring blocks.

  node dist/bench/decode_ab.js [--shape 15M] [--arms LIST] [--weights f32|q8] [--threads N] [--block 16] [--blocks 64] [--warmup 512] [--record]

  --shape S      llama2.c shape (${Object.keys(NAMED_SHAPES).join(', ')}); default 15M
  --arms LIST    comma-separated, the first the reference; each one of
                   tfjs             the plain tfjs path (no worker pool; float32 only)
                   pool             the worker pool (--threads, --weights), a one-token step as one program
                   pool-no-program  the same with decode programs off: a step as one pool job at a time
                 an arm named twice is an A/A (default tfjs,pool)
  --weights F    f32 or q8 for the pool's arms (default f32)
  --threads N    the pool's threads (default 1)
  --block N      tokens per block (default 16)
  --blocks N     timed blocks per arm (default 64)
  --warmup N     tokens each arm decodes first, untimed, alternating as the timed ones (default 512)
  --record       append the table to bench/RESULTS.md
  --help         this text`;

const cli = benchArgs(HELP);
const shape = shapeFlag(cli, 'shape', '15M');
const arms = cli
  .value('arms', 'tfjs,pool')
  .split(',')
  .map((a) => (ARMS.includes(a as ArmKind) ? (a as ArmKind) : cli.fail(`--arms: unknown arm '${a}' (known: ${ARMS.join(', ')})`)));
if (arms.length < 2) cli.fail('--arms: expected at least two arms');
const weights = cli.choice('weights', 'f32', ['f32', 'q8']);
const threads = cli.count('threads', 1, 1, 256);
const block = cli.count('block', 16, 1, 100_000);
const blocks = cli.count('blocks', 64, 1, 100_000);
const warmup = cli.count('warmup', 512, 0, 1_000_000);
if (weights === 'q8' && arms.includes('tfjs')) cli.fail('--arms tfjs: runs float32 only (q8 runs in the pool)');
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const { loadModel } = await import('../src/model/load.js');
const { placeWeights } = await import('../src/model/pooled.js');
const { pooledDecodeProgram, setDecodePrograms } = await import('../src/model/decode_program.js');
const { TokenStream } = await import('../src/stream.js');
const { disposeModel } = await import('../src/model/weights.js');
const { randomCheckpoint } = await import('./models.js');

/** One arm: its model and stream, the next token it feeds, and its blocks' seconds. */
interface Arm {
  kind: ArmKind;
  model: ReturnType<typeof loadModel>;
  stream: InstanceType<typeof TokenStream>;
  next: number;
  seconds: number[];
  /** The greedy ids of its first context (an arm of the same bits as the first gives the same). */
  ids: number[];
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const file = randomCheckpoint(shape);
  const context = NAMED_SHAPES[shape]!.maxSeqLen;
  const all: Arm[] = [];
  for (const kind of arms) {
    const model = loadModel(file);
    if (kind !== 'tfjs') placeWeights(model, { threads, weights });
    await model.pool?.ready();
    all.push({ kind, model, stream: new TokenStream(model, { kind: 'dense' }), next: 1, seconds: [], ids: [] });
  }
  /** n greedy tokens of an arm (its stream restarted from BOS at the context's end). */
  const decode = (arm: Arm, n: number) => {
    const was = setDecodePrograms(arm.kind !== 'pool-no-program');
    try {
      for (let i = 0; i < n; i++) {
        if (arm.stream.length === context) {
          arm.stream.reset();
          arm.next = 1;
        }
        const choice = arm.stream.feedLastGreedy([arm.next]);
        if (!choice.finite) throw new Error('decode_ab: a non-finite logit');
        arm.next = choice.id;
        if (arm.ids.length < context) arm.ids.push(choice.id);
      }
    } finally {
      setDecodePrograms(was);
    }
  };
  for (let done = 0; done < warmup; done += block) for (const arm of all) decode(arm, Math.min(block, warmup - done));
  const loadBefore = loadavg()[0]!;
  for (let b = 0; b < blocks; b++) {
    for (const arm of all) {
      const started = performance.now();
      decode(arm, block);
      arm.seconds.push((performance.now() - started) / 1000);
    }
  }
  const loadAfter = loadavg()[0]!;
  const first = all[0]!;
  const rows = all.map((arm, i) => {
    const tps = arm.seconds.map((s) => block / s);
    // block b of this arm against block b of the first (neighbours in time): its tok/s over the first's
    const ratios = arm.seconds.map((s, b) => first.seconds[b]! / s).sort((x, y) => x - y);
    const q = (f: number) => ratios[Math.min(ratios.length - 1, Math.floor(f * ratios.length))]!;
    const sameIds = arm.ids.length === first.ids.length && arm.ids.every((id, j) => id === first.ids[j]);
    return [
      `${i + 1}. ${arm.kind}`,
      median(tps).toFixed(1),
      ((block * arm.seconds.length) / arm.seconds.reduce((a, s) => a + s, 0)).toFixed(1),
      i === 0 ? '' : median(ratios).toFixed(3),
      i === 0 ? '' : `${q(0.25).toFixed(3)}..${q(0.75).toFixed(3)}`,
      i === 0 ? '' : sameIds ? 'yes' : 'NO',
      arm.kind === 'tfjs' ? '' : String(pooledDecodeProgram(arm.model)?.runs ?? 0),
    ];
  });
  const body =
    `${shape}, ${weights} in the pool's arms, ${threads} thread${threads > 1 ? 's' : ''}: greedy decode from BOS, dense cache restarted every ${context} tokens; ` +
    `${blocks} timed blocks of ${block} tokens per arm after ${warmup} untimed, arms alternating block by block in one process; ` +
    `load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after.\n\n` +
    markdownTable(
      [
        'arm',
        'tok/s (median block)',
        'tok/s (all blocks)',
        'x arm 1 (median of neighbouring blocks)',
        'quartiles',
        'same greedy ids as arm 1',
        'tokens run as one program',
      ],
      rows,
    );
  process.stdout.write(body + '\n');
  for (const arm of all) {
    arm.stream.dispose();
    disposeModel(arm.model);
  }
  recordResult('Decode A/B in one process (bench/decode_ab.ts)', `node dist/bench/decode_ab.js ${process.argv.slice(2).join(' ')}`.trim(), body);
}

await runBench(main);
