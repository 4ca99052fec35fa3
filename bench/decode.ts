// Batch-1 greedy decode speed: tokens/s (median of several runs), peak RSS,
// and where the time goes, on random llama2.c-shaped checkpoints. Each shape
// runs in its own process so RSS is its own.
//
// A decode step must read every weight matrix once, so memory bandwidth sets
// its floor. Between the decode runs the bench times exactly that: one
// step's weight products alone (x @ W for every matrix, as the forward pass
// runs them), under the same load, and reports decode against that floor.
// The rest of a step is attention over the cache, the small fused kernels,
// and the fixed cost of dispatching each tfjs op (a per-kernel profile).
//
//   node dist/bench/decode.js [--shapes 15M,110M] [--tokens 256] [--runs 5] [--backend wasm]
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type BackendName, initBackend } from '../src/backend.js';
import { generate } from '../src/generate.js';
import { argmax } from '../src/sample/sampler.js';
import { loadModel } from '../src/model/load.js';
import { parameterCount } from '../src/model/weights.js';
import { TokenStream } from '../src/stream.js';
import { markdownTable, median, peakRssMiB, randomCheckpoint, recordResult, weightProductsMs } from './common.js';

interface ShapeResult {
  shape: string;
  backend: string;
  params: number;
  weightBytesPerToken: number;
  tokensPerSecond: number[];
  /** ms of one step's weight products alone, timed between the decode runs. */
  productsMs: number[];
  peakRssMiB: number;
  profile: { kernel: string; msPerToken: number; callsPerToken: number }[];
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

async function measureShape(shape: string, tokens: number, runs: number, backend: BackendName): Promise<ShapeResult> {
  const name = await initBackend(backend);
  const model = loadModel(randomCheckpoint(shape));
  const rates: number[] = [];
  const productsMs: number[] = [];
  for (let run = 0; run <= runs; run++) {
    const started = performance.now();
    let n = 0;
    for await (const step of generate(model, { kind: 'dense' }, [1], argmax, { steps: tokens })) n = step.generated;
    if (run > 0) rates.push(n / ((performance.now() - started) / 1000)); // run 0 warms up
    productsMs.push(...weightProductsMs(model, 1, 16).slice(run === 0 ? 4 : 0));
  }
  // Per-kernel time over 64 decode steps, after a prompt of 64 tokens.
  const stream = new TokenStream(model, { kind: 'dense' });
  tf.dispose(stream.feed(Array.from({ length: 64 }, (_, i) => i + 1)));
  const steps = 64;
  const info = await tf.profile(() => {
    for (let i = 0; i < steps; i++) tf.dispose(stream.feed([7], 'last'));
  });
  stream.dispose();
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += k.kernelTimeMs as number;
    entry.calls++;
    byKernel.set(k.name, entry);
  }
  const c = model.config;
  // every weight matrix is read once per token; the embedding only one row
  const weightBytesPerToken = 4 * (parameterCount(model, false) - c.vocabSize * c.dim);
  return {
    shape,
    backend: name,
    params: parameterCount(model, true),
    weightBytesPerToken,
    tokensPerSecond: rates,
    productsMs,
    peakRssMiB: peakRssMiB(),
    profile: [...byKernel]
      .map(([kernel, v]) => ({ kernel, msPerToken: v.ms / steps, callsPerToken: v.calls / steps }))
      .sort((a, b) => b.msPerToken - a.msPerToken),
  };
}

async function main(): Promise<void> {
  const tokens = Number(arg('tokens', '256'));
  const runs = Number(arg('runs', '5'));
  const backend = arg('backend', 'wasm') as BackendName;
  const child = arg('child', '');
  if (child) {
    process.stdout.write(JSON.stringify(await measureShape(child, tokens, runs, backend)));
    return;
  }
  const shapes = arg('shapes', '15M,110M').split(',');
  const script = fileURLToPath(import.meta.url);
  const results: ShapeResult[] = shapes.map((shape) => {
    randomCheckpoint(shape);
    const out = execFileSync(process.execPath, [script, '--child', shape, '--tokens', String(tokens), '--runs', String(runs), '--backend', backend], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    return JSON.parse(out) as ShapeResult;
  });

  const rows = results.map((r) => {
    const tps = median(r.tokensPerSecond);
    const floorMs = median(r.productsMs);
    return [
      r.shape,
      r.backend,
      `${(r.params / 1e6).toFixed(1)}M`,
      tps.toFixed(1),
      `${Math.min(...r.tokensPerSecond).toFixed(1)}..${Math.max(...r.tokensPerSecond).toFixed(1)}`,
      `${(r.weightBytesPerToken / 2 ** 20).toFixed(1)} MiB`,
      ((r.weightBytesPerToken * tps) / 1e9).toFixed(1),
      `${floorMs.toFixed(2)} ms (${(r.weightBytesPerToken / floorMs / 1e6).toFixed(1)} GB/s)`,
      (1000 / floorMs).toFixed(0),
      `${((100 * tps * floorMs) / 1000).toFixed(0)}%`,
      r.peakRssMiB.toFixed(0),
    ];
  });
  const table = markdownTable(
    ['shape', 'backend', 'params', 'tok/s (median)', 'range', 'weights read/token', 'GB/s', 'weight products alone', 'floor tok/s', 'of floor', 'peak RSS MiB'],
    rows,
  );
  const profiles = results
    .map((r) => {
      const total = r.profile.reduce((s, p) => s + p.msPerToken, 0);
      const top = r.profile.slice(0, 12).map((p) => [p.kernel, p.msPerToken.toFixed(3), p.callsPerToken.toFixed(0), `${((100 * p.msPerToken) / total).toFixed(0)}%`]);
      const wallMs = 1000 / median(r.tokensPerSecond);
      const floorMs = median(r.productsMs);
      return (
        `${r.shape}: ${wallMs.toFixed(2)} ms/token, of which the weight products alone take ${floorMs.toFixed(2)} ms ` +
        `(${((100 * floorMs) / wallMs).toFixed(0)}%). The other ${(wallMs - floorMs).toFixed(2)} ms: the same products running ` +
        `slower inside a step than back to back (compare their line in the profile), attention, the small fused kernels, and the ` +
        `fixed cost of each op. Per-kernel profile (tf.profile, 64 decode steps after a 64-token prompt; kernel time ` +
        `${total.toFixed(2)} ms/token; each op's time includes the cache misses it meets after the weights have streamed through):\n\n` +
        markdownTable(['kernel', 'ms/token', 'calls/token', 'share'], top)
      );
    })
    .join('\n\n');
  const body =
    `Greedy decode of ${tokens} tokens from BOS, dense cache, ${runs} runs after one warm-up. "Weight products alone": ` +
    `the median time of one step's weight products by themselves (every matrix read once), timed between the runs under the same load: ` +
    `the memory-bandwidth floor of a step on this machine at the time, and "of floor" how close decode comes to it.\n\n${table}\n\n${profiles}`;
  process.stdout.write(body + '\n');
  recordResult('Decode speed (bench/decode.ts)', `node dist/bench/decode.js ${process.argv.slice(2).join(' ')}`.trim(), body);
}

await main();
