// Where the time of one training step (forward + backward, no optimiser)
// goes, tfjs kernel by kernel, on a random model: step time, tokens/s and
// GFLOP/s, and with --kernels the kernels that took the most time.
//
//   node dist/bench/profile_train.js [--shape 256,4,8] [--vocab 4096] [--batch 8] [--seq-len 256] [--variant softmax] [--steps 2] [--kernels] [--record]
import { loadavg } from 'node:os';
import { initBackend } from '../src/backend.js';
import { VARIANTS, variantConfig } from '../src/train/variants.js';
import { benchArgs, markdownTable, recordResult, trainModelFlags } from './common.js';

const USAGE = `bench/profile_train.ts: one training step (forward + backward) of a random model: time, tokens/s, GFLOP/s, and per tfjs kernel.

  node dist/bench/profile_train.js [--shape 256,4,8] [--vocab 4096] [--batch 8] [--seq-len 256] [--variant softmax] [--steps 2] [--kernels] [--record]

  --shape        width, layers, heads (default 256,4,8)
  --vocab N      vocabulary size (default 4096)
  --batch B      sequences per step (default 8)
  --seq-len T    tokens per sequence (default 256)
  --variant V    softmax variant (${VARIANTS.join(', ')}; default softmax)
  --steps N      timed steps, after one warm-up (default 2)
  --kernels      also profile one step per tfjs kernel (the 25 slowest)
  --record       append the tables to bench/RESULTS.md
  --help         this text`;

const cli = benchArgs(USAGE);
const { dim, layers, heads, vocab, batch: B, seqLen: T } = trainModelFlags(cli);
const variant = cli.choice('variant', 'softmax', VARIANTS);
const steps = cli.count('steps', 2, 1, 1000);
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const tf = await import('@tensorflow/tfjs');
const { initTrainableModel } = await import('../src/train/init.js');
const { batchLoss } = await import('../src/train/loss.js');
const { BatchSampler, samplePrefix, WindowSource } = await import('../src/train/batches.js');

const backend = await initBackend('wasm');
const tm = initTrainableModel(variantConfig(variant, { dim, layers, heads }, vocab, T), 0);
const tokens = Int32Array.from({ length: 100_000 }, (_, i) => (i * 7919) % vocab);
const sampler = new BatchSampler(new WindowSource(tokens, T, samplePrefix(tm.config.sinkToken)), B, 0);
const vars = tm.params.map((p) => p.variable);
const step = () => {
  const batch = sampler.next();
  const { value, grads } = tf.variableGrads(() => batchLoss(tm.model(), batch), vars);
  value.dataSync();
  for (const g of Object.values(grads)) g.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};
const load = loadavg()[0]!.toFixed(1);
step(); // warm-up
const started = performance.now();
for (let i = 0; i < steps; i++) step();
const ms = (performance.now() - started) / steps;
const params = tm.parameterCount;
// FLOPs: 6 per parameter-token (forward 2, backward 4; the tied classifier
// counted once), plus attention's scores and weighted sums (causal: half of
// 2 * 2 * T * dim a token and layer, times 3 with the backward pass)
const flops = B * T * (6 * params + 6 * layers * T * dim);
let body =
  `Random ${variant} model, dim ${dim}, ${layers} layers, ${heads} heads, vocab ${vocab}; batch ${B} x ${T} tokens; backend ${backend}; ` +
  `mean of ${steps} steps after one warm-up; load average ${load}.\n\n` +
  markdownTable(
    ['parameters', 'ms a step', 'tokens/s', 'GFLOP/s'],
    [[String(params), ms.toFixed(0), ((B * T) / (ms / 1000)).toFixed(0), (flops / (ms / 1000) / 1e9).toFixed(2)]],
  );
if (cli.has('kernels')) {
  const info = await tf.profile(() => {
    step();
  });
  const byName = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += k.kernelTimeMs as number;
    e.calls++;
    byName.set(k.name, e);
  }
  const total = [...byName.values()].reduce((s, e) => s + e.ms, 0);
  const rows = [...byName]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, 25)
    .map(([name, e]) => [name, e.ms.toFixed(1), `${((100 * e.ms) / total).toFixed(1)}%`, String(e.calls)]);
  body +=
    `\n\nOne profiled step: ${total.toFixed(0)} ms in ${info.kernels.length} kernel calls.\n\n` + markdownTable(['tfjs kernel', 'ms', 'share', 'calls'], rows);
}
process.stdout.write(body + '\n');
recordResult('Training step profile (bench/profile_train.ts)', `node dist/bench/profile_train.js ${process.argv.slice(2).join(' ')}`.trim(), body);
