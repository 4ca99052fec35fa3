// Training throughput: forward + backward + AdamW of one step, for a model
// shape, through the training path and through the proof-of-concept path it
// replaced (measured in the same run, alternating, so the shared machine's
// load hits both alike):
//
//   poc      every sequence through the general cache attention (per-sequence
//            Slice, batched products split with Unpack, tfjs softmax) and
//            tfjs's one-hot softmax cross-entropy
//   trained  the batched causal attention kernel (kernels/causal_attention.ts)
//            and the fused cross-entropy (kernels/cross_entropy.ts)
//
//   node dist/bench/train.js [--shape DIM,LAYERS,HEADS] [--vocab N] [--batch B] [--seq-len T] [--steps N] [--record]
import { loadavg } from 'node:os';
import { initBackend } from '../src/backend.js';
import type { KVCache } from '../src/cache/types.js';
import type { TrainableModel } from '../src/train/params.js';
import { variantConfig } from '../src/train/variants.js';
import { benchArgs, markdownTable, median, recordResult, trainModelFlags } from './common.js';
import type { Scalar, Tensor } from '@tensorflow/tfjs';
import type { Batch } from '../src/train/batches.js';

const USAGE = `Training throughput (forward + backward + AdamW), the training path against the proof-of-concept path, alternating.

  node dist/bench/train.js [--shape DIM,LAYERS,HEADS] [--vocab N] [--batch B] [--seq-len T] [--steps N] [--record]

  --shape        width, layers, heads (default 256,4,8)
  --vocab N      vocabulary size (default 4096)
  --batch B      sequences per step (default 8)
  --seq-len T    tokens per sequence (default 256)
  --steps N      timed steps per path (default 3)
  --record       append the table to bench/RESULTS.md
  --help         this text`;
const cli = benchArgs(USAGE);
const { dim, layers, heads, vocab, batch: B, seqLen: T } = trainModelFlags(cli);
const steps = cli.count('steps', 3, 1, 1000);
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const tf = await import('@tensorflow/tfjs');
const { crossEntropy } = await import('../kernels/cross_entropy.js');
const { CausalBlock } = await import('../src/cache/causal_block.js');
const { forwardBatch } = await import('../src/model/transformer.js');
const { AdamW } = await import('../src/train/adamw.js');
const { BatchSampler, WindowSource } = await import('../src/train/batches.js');
const { initTrainableModel } = await import('../src/train/init.js');

/** The same causal block, hidden from the batched path (its view no longer says it is self-contained). */
function opaque(c: KVCache): KVCache {
  return {
    policy: c.policy,
    length: 0,
    size: 0,
    byteSize: 0,
    blockLimit: c.blockLimit,
    begin: (n) => ({ ...c.begin(n), selfContained: false }),
    store: (l, k, v) => c.store(l, k, v),
    end: () => c.end(),
    abandon: () => c.abandon(),
    reset: () => c.reset(),
    dispose: () => c.dispose(),
  };
}

function loss(tm: TrainableModel, batch: Batch, poc: boolean): Scalar {
  return tf.tidy(() => {
    const caches = batch.inputs.map(() => (poc ? opaque(new CausalBlock()) : new CausalBlock()));
    const logits = forwardBatch(tm.model(), batch.inputs, caches);
    if (!poc) return crossEntropy(logits, batch.targets).sum().div<Scalar>(batch.scored);
    const onehot = tf.oneHot(tf.tensor1d(batch.targets, 'int32'), vocab);
    return tf.losses.softmaxCrossEntropy<Tensor, Scalar>(onehot, logits);
  });
}

await initBackend('wasm');
const tm = initTrainableModel(variantConfig('softmax', { dim, layers, heads }, vocab, T), 0);
const optimizer = new AdamW(tm.params);
const vars = tm.params.map((p) => p.variable);
const tokens = Int32Array.from({ length: 200_000 }, (_, i) => (i * 7919) % vocab);
const sampler = new BatchSampler(new WindowSource(tokens, T), B, 0);

function step(poc: boolean): number {
  const started = performance.now();
  const batch = sampler.next();
  const { value, grads } = tf.variableGrads(() => loss(tm, batch, poc), vars);
  const gradArrays = vars.map((v) => grads[v.name]!.dataSync() as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  optimizer.update(gradArrays, 1e-4);
  return performance.now() - started;
}

// FLOPs of a step: 6 per parameter per token (the tied classifier counted as
// a [dim, vocab] product), plus attention's QK^T and PV over the causal half
// (2 products x 2 T^2/2 dim per layer, forward; backward twice that).
const flops = 6 * tm.parameterCount * B * T + 3 * 2 * layers * B * T * T * dim;
const times: Record<'poc' | 'trained', number[]> = { poc: [], trained: [] };
step(false);
step(true); // warm-up both
const load = [loadavg()[0]!];
for (let i = 0; i < steps; i++) {
  times.poc.push(step(true));
  times.trained.push(step(false));
  load.push(loadavg()[0]!);
}
const rows = (['poc', 'trained'] as const).map((mode) => {
  const ms = median(times[mode]);
  return [mode, ms.toFixed(0), ((B * T) / (ms / 1000)).toFixed(0), (flops / (ms / 1000) / 1e9).toFixed(2)];
});
const speedup = median(times.poc) / median(times.trained);
const table = markdownTable(['path', 'ms/step (median)', 'tok/s', 'GFLOP/s'], rows);
const body =
  `Model d${dim} L${layers} H${heads}, vocab ${vocab}, ${tm.parameterCount} parameters; batch ${B} x ${T} tokens; ` +
  `${steps} steps per path after a warm-up, alternating; ${(flops / 1e9).toFixed(1)} GFLOP per step; ` +
  `load average during the run ${Math.min(...load).toFixed(1)}..${Math.max(...load).toFixed(1)} (2 cores, shared).\n\n${table}\n\n` +
  `Speed-up of the training path: ${speedup.toFixed(2)}x.`;
console.log(body);
recordResult('Training step (bench/train.ts)', `node dist/bench/train.js ${process.argv.slice(2).join(' ')}`.trim(), body);
