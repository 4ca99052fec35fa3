// Profile one training step (forward + backward) kernel by kernel.
//   node dist/bench/profile_train.js [dim layers heads vocab B T]   (PROFILE=1: per kernel)
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { initTrainableModel } from '../src/train/init.js';
import { batchLoss } from '../src/train/loss.js';
import { variantConfig } from '../src/train/variants.js';
import { BatchSampler, samplePrefix, WindowSource } from '../src/train/batches.js';
import { benchArgs } from './common.js';

benchArgs(`Time one training step (forward + backward) of a random model; with PROFILE=1, also per tfjs kernel. Prints only (no --record).

  node dist/bench/profile_train.js [DIM LAYERS HEADS VOCAB BATCH SEQ_LEN]   (default 256 4 8 4096 8 256)

  env VARIANT    softmax variant of the model (default softmax); STEPS: timed steps (default 2); PROFILE=1: per-kernel table
  --help         this text`);

const [dim, layers, heads, vocab, B, T] = (process.argv.slice(2).length ? process.argv.slice(2) : ['256', '4', '8', '4096', '8', '256']).map(Number);
const variant = (process.env.VARIANT ?? 'softmax') as 'softmax';
await initBackend('wasm');
const tm = initTrainableModel(variantConfig(variant, { dim: dim!, layers: layers!, heads: heads! }, vocab!, T!), 0);
const tokens = Int32Array.from({ length: 100000 }, (_, i) => (i * 7919) % vocab!);
const sampler = new BatchSampler(new WindowSource(tokens, T!, samplePrefix(tm.config.sinkToken)), B!, 0);
const vars = tm.params.map((p) => p.variable);
const step = () => {
  const batch = sampler.next();
  const { value, grads } = tf.variableGrads(() => batchLoss(tm.model(), batch), vars);
  const loss = value.dataSync()[0]!;
  for (const g of Object.values(grads)) g.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
};
step(); // warm-up
const t0 = performance.now();
const n = Number(process.env.STEPS ?? 2);
for (let i = 0; i < n; i++) step();
const ms = (performance.now() - t0) / n;
const p = tm.parameterCount;
const nonEmb = p - vocab! * dim!;
// FLOPs: 6 per parameter-token for the matrices (classifier = tied embedding counted once), plus attention (causal: half of 2*2*T*dim per token, times 3 for backward)
const flops = B! * T! * (6 * (nonEmb + vocab! * dim!) + 6 * layers! * T! * dim!);
console.log(`params ${p} step ${ms.toFixed(0)} ms  ${((B! * T!) / (ms / 1000)).toFixed(0)} tok/s  ${(flops / (ms / 1e3) / 1e9).toFixed(2)} GFLOP/s`);
if (process.env.PROFILE) {
  const info = await tf.profile(() => {
    step();
  });
  const byName = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) {
    const e = byName.get(k.name) ?? { ms: 0, n: 0 };
    e.ms += k.kernelTimeMs as number;
    e.n++;
    byName.set(k.name, e);
  }
  const rows = [...byName].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`kernel total ${total.toFixed(0)} ms in ${info.kernels.length} kernels`);
  for (const [name, e] of rows.slice(0, 25)) console.log(`${name.padEnd(32)} ${e.ms.toFixed(1).padStart(8)} ms ${String(e.n).padStart(6)}`);
}
