// The cache benchmarks of issue 3, on a random llama2.c 15M-shaped model:
//
//   length    per-token decode latency and memory at stream lengths 1K, 10K,
//             100K: streaming stays flat, dense grows (dense stops at 10K)
//   fig10     the paper's Fig. 10: per-token latency of recompute vs streaming
//             for cache sizes 256..2048
//   blocked   blocked vs stepwise evaluation throughput on 20K tokens, and the
//             largest NLL difference between them
//
//   node dist/bench/streaming.js [length|fig10|blocked ...] [--backend wasm]
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { type BackendName, initBackend } from '../src/backend.js';
import { type CachePolicy, policyLabel } from '../src/cache/index.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { loadModel } from '../src/model/load.js';
import { type Model, parameterCount } from '../src/model/weights.js';
import { TokenStream } from '../src/stream.js';
import { markdownTable, median, randomCheckpoint, recordResult, weightProductsMs } from './common.js';

const rng = seedrandom('bench-streaming');
const randomIds = (n: number, vocab: number) => Array.from({ length: n }, () => 3 + Math.floor(rng() * (vocab - 3)));

/** Median milliseconds of `count` single-token decode steps. */
function decodeLatency(stream: TokenStream, count: number, vocab: number): number {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const logits = stream.feed([3 + Math.floor(rng() * (vocab - 3))], 'last');
    logits.dataSync();
    logits.dispose();
    times.push(performance.now() - started);
  }
  return median(times);
}

/** Feed n tokens quickly: blocks of up to 256 (exactly what decoding them one by one would store). */
function advance(stream: TokenStream, n: number, vocab: number): void {
  for (let done = 0; done < n; ) {
    const block = Math.min(256, n - done);
    tf.dispose(stream.feed(randomIds(block, vocab)));
    done += block;
  }
}

function lengthBench(model: Model): string {
  const vocab = model.config.vocabSize;
  const marks = [1_000, 10_000, 100_000];
  const rows: string[][] = [];
  const policies: CachePolicy[] = [
    { kind: 'streaming', sinkCount: 4, windowSize: 252 },
    { kind: 'dense' },
  ];
  for (const policy of policies) {
    const stream = new TokenStream(model, policy);
    let at = 0;
    for (const mark of marks) {
      if (policy.kind === 'dense' && mark > 10_000) {
        rows.push([policyLabel(policy), String(mark), 'skipped (hours of attention)', '', '', '']);
        continue;
      }
      advance(stream, mark - at, vocab);
      at = mark;
      const ms = decodeLatency(stream, 32, vocab);
      at += 32;
      rows.push([
        policyLabel(policy),
        String(mark),
        ms.toFixed(2),
        String(stream.cacheSize),
        (stream.cacheBytes / 2 ** 20).toFixed(2),
        `${tf.memory().numTensors} / ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)}`,
      ]);
      process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
    }
    stream.dispose();
  }
  return (
    'Median latency of 32 decode steps taken at each stream length (the stream is advanced in blocks of 256 between marks).\n\n' +
    markdownTable(['policy', 'stream length', 'ms/token', 'cache entries', 'cache MiB', 'tensors / RSS MiB'], rows)
  );
}

function fig10Bench(model: Model): string {
  const vocab = model.config.vocabSize;
  const rows: string[][] = [];
  for (const size of [256, 512, 1024, 2048]) {
    const streaming = new TokenStream(model, { kind: 'streaming', sinkCount: 4, windowSize: size - 4 });
    advance(streaming, size, vocab);
    const streamingMs = decodeLatency(streaming, 16, vocab);
    const streamingBytes = streaming.cacheBytes;
    streaming.dispose();
    const recompute = new TokenStream(model, { kind: 'recompute', windowSize: size });
    advance(recompute, size, vocab);
    const recomputeMs = decodeLatency(recompute, size <= 512 ? 5 : 3, vocab);
    recompute.dispose();
    rows.push([String(size), recomputeMs.toFixed(1), streamingMs.toFixed(2), (recomputeMs / streamingMs).toFixed(1), (streamingBytes / 2 ** 20).toFixed(1)]);
    process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
  }
  return (
    'Per-token decode latency with the cache full (median of 16 steps for streaming, 3-5 for recompute). The paper reports up to 22.2x on an A6000 GPU for Llama-2-13B.\n\n' +
    markdownTable(['cache size', 'recompute ms/token', 'streaming ms/token', 'speed-up', 'streaming cache MiB'], rows)
  );
}

/**
 * The floors of both modes on this machine, now: the weight products alone
 * for one token (stepwise reads every matrix per token: memory bandwidth)
 * and for a block of 256 (blocked reuses each read 256 times: arithmetic).
 */
function productFloors(model: Model): { stepMs: number[]; blockMs: number[] } {
  return { stepMs: weightProductsMs(model, 1, 8), blockMs: weightProductsMs(model, 256, 2) };
}

async function blockedBench(model: Model): Promise<string> {
  const ids = randomIds(20_000, model.config.vocabSize);
  const policy: CachePolicy = { kind: 'streaming', sinkCount: 4, windowSize: 252 };
  const floors = [productFloors(model)];
  const blocked = await scoreTokens(model, ids, policy, { mode: 'blocked' });
  process.stderr.write(`blocked ${blocked.seconds.toFixed(1)} s\n`);
  floors.push(productFloors(model));
  const stepwise = await scoreTokens(model, ids, policy, { mode: 'stepwise' });
  process.stderr.write(`stepwise ${stepwise.seconds.toFixed(1)} s\n`);
  floors.push(productFloors(model));
  let worst = 0;
  for (let i = 0; i < blocked.nll.length; i++) worst = Math.max(worst, Math.abs(blocked.nll[i]! - stepwise.nll[i]!));
  const rate = (r: typeof blocked) => ((r.tokens - 1) / r.seconds).toFixed(1);
  return (
    `20,000 random tokens under ${policyLabel(policy)}; blocks of 256.\n\n` +
    markdownTable(
      ['mode', 'seconds', 'tokens/s', 'ppl'],
      [
        ['stepwise', stepwise.seconds.toFixed(1), rate(stepwise), stepwise.ppl.toFixed(4)],
        ['blocked', blocked.seconds.toFixed(1), rate(blocked), blocked.ppl.toFixed(4)],
      ],
    ) +
    `\n\nSpeed-up ${(stepwise.seconds / blocked.seconds).toFixed(1)}x; largest per-token NLL difference ${worst.toExponential(2)}.\n\n` +
    floorsText(model, floors, stepwise.seconds / (stepwise.tokens - 1), blocked.seconds / (blocked.tokens - 1))
  );
}

/** What bounds the speed-up: the two floors measured around the runs, against the runs. */
function floorsText(model: Model, floors: { stepMs: number[]; blockMs: number[] }[], stepwiseS: number, blockedS: number): string {
  const c = model.config;
  const weightBytes = 4 * (parameterCount(model, false) - c.vocabSize * c.dim); // every matrix but the embedding
  const flops = weightBytes / 2; // 2 flops per weight per token
  const stepMs = median(floors.flatMap((f) => f.stepMs));
  const blockTokenMs = median(floors.flatMap((f) => f.blockMs)) / 256;
  const classifierShare = (2 * c.dim * c.vocabSize) / flops;
  return (
    `Floors measured around the runs (the weight products alone, as the forward pass runs them): one token's take ` +
    `${stepMs.toFixed(2)} ms (${(weightBytes / stepMs / 1e6).toFixed(1)} GB/s; stepwise at most ${(1000 / stepMs).toFixed(0)} tok/s, ` +
    `it ran at ${((100 * stepMs) / (1000 * stepwiseS)).toFixed(0)}% of that); a 256-token block's take ${blockTokenMs.toFixed(2)} ms per token ` +
    `(${(flops / blockTokenMs / 1e6).toFixed(1)} GFLOP/s; blocked at most ${(1000 / blockTokenMs).toFixed(0)} tok/s, it ran at ` +
    `${((100 * blockTokenMs) / (1000 * blockedS)).toFixed(0)}%). So blocked can beat stepwise by at most ` +
    `${(stepMs / blockTokenMs).toFixed(1)}x here, whatever the rest costs: a token needs ${(flops / 1e6).toFixed(1)} MFLOP of ` +
    `products, ${(100 * classifierShare).toFixed(0)}% of them the classifier (2 x ${c.dim} x ${c.vocabSize}), and one thread's ` +
    `arithmetic takes ${(stepMs / blockTokenMs).toFixed(1)}x less time than reading those weights does, not 10x. ` +
    `Blocked >= 10x stepwise would need about ${((10 * blockTokenMs) / stepMs).toFixed(1)}x this arithmetic rate (threads, or a GPU).`
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const backendAt = args.indexOf('--backend');
  const backend = (backendAt >= 0 ? args[backendAt + 1] : 'wasm') as BackendName;
  const which = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--backend');
  const runs = which.length ? which : ['length', 'fig10', 'blocked'];
  const name = await initBackend(backend);
  const model = loadModel(randomCheckpoint('15M'));
  const sections: [string, () => Promise<string> | string][] = [
    ['length', () => lengthBench(model)],
    ['fig10', () => fig10Bench(model)],
    ['blocked', () => blockedBench(model)],
  ];
  for (const [key, run] of sections) {
    if (!runs.includes(key)) continue;
    const body = `Random llama2.c 15M-shaped model, backend ${name}.\n\n${await run()}`;
    process.stdout.write(body + '\n\n');
    recordResult(`Streaming: ${key} (bench/streaming.ts)`, `node dist/bench/streaming.js ${key} --backend ${name}`, body);
  }
}

await main();
