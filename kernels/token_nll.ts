// Negative log-likelihoods of the next tokens, straight from the logits:
//
//   nll[i] = log sum_j exp(logits[r, j]) - logits[r, target_i],   r = firstRow + i
//
// computed where the logits are: a block of 256 tokens over a 32000-token
// vocabulary has 32 MB of logits, which reading out to JavaScript would copy
// (and then exp() one by one). On wasm the row's max and sum of exps run in
// WebAssembly SIMD (kernels/simd/loops.wat), summed in float64; on cpu a
// JavaScript loop in float64; elsewhere tfjs's logSoftmax. Given a worker
// pool of several threads, the rows are copied into its memory and their
// sums split over its threads: the same SIMD loop, the same numbers. On cpu
// a model's pool runs them on any number of threads, one too: the kernel's
// own loop there is the float64 one, and a model's NLLs must not depend on
// its thread count.
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';
import { float32View, hasDirectMemory, simdKernelsEnabled } from './paths.js';
import type { WorkerPool } from './pool.js';
import { PoolOp } from './pool_ops.js';
import { poolScratch, poolScratchFits } from './pool_scratch.js';
import { residentOffset } from './split_products.js';
import { simdAvailable, simdLoops } from './simd/instance.js';

interface NllAttrs {
  firstRow: number;
  targets: Int32Array;
}

/** log sum_j exp(row[j]) in float64, the max subtracted first so exp stays finite. */
function logSumExp(logits: Float32Array, at: number, vocab: number): number {
  let max = -Infinity;
  for (let j = 0; j < vocab; j++) max = Math.max(max, logits[at + j]!);
  let z = 0;
  for (let j = 0; j < vocab; j++) z += Math.exp(logits[at + j]! - max);
  return max + Math.log(z);
}

const tokenNllKernel: JsKernel<NllAttrs> = {
  name: 'StreamllmTokenNll',
  outputShape: (_, { targets }) => [targets.length],
  run([logits], [shape], out, { firstRow, targets }) {
    const vocab = shape![1]!;
    const simd = simdLoops([logits!]);
    for (let i = 0; i < targets.length; i++) {
      const at = (firstRow + i) * vocab;
      let lse: number;
      if (simd !== undefined) {
        const row = logits!.byteOffset + 4 * at;
        const max = simd.maxOf(row, vocab);
        lse = max + Math.log(simd.exps(row, vocab, max, 0));
      } else {
        lse = logSumExp(logits!, at, vocab);
      }
      out[i] = lse - logits![at + targets[i]!]!;
    }
  },
};

/**
 * The kernel's SIMD steps with the rows' sums on the pool's threads: the
 * rows read where they still lie in the pool (logits straight from a pooled
 * classifier, kernels/split_products.ts residentOffset) or else copied into
 * its memory, [targets.length] NLLs out; undefined when the pool's memory has
 * no room for them.
 */
function pooledTokenNll(pool: WorkerPool, logits: tf.Tensor2D, firstRow: number, targets: Int32Array): tf.Tensor1D | undefined {
  const vocab = logits.shape[1];
  const n = targets.length;
  const rowsBytes = 4 * n * vocab;
  const resident = residentOffset(logits, pool);
  // rows: [n, vocab] (unless resident), then per row its sum (f64) and max (f32), aligned for float64
  const sumsFrom = resident === undefined ? 16 * Math.ceil(rowsBytes / 16) : 0;
  if (!poolScratchFits(pool, 'token nll', sumsFrom + 16 * n)) return undefined;
  const region = poolScratch(pool, 'token nll', sumsFrom + 16 * n);
  const x = resident === undefined ? region : resident + 4 * firstRow * vocab;
  const rows = new Float32Array(pool.memory.buffer, x, n * vocab);
  if (resident === undefined) rows.set(float32View(logits).subarray(firstRow * vocab, (firstRow + n) * vocab));
  const sumsAt = region + sumsFrom;
  pool.run(PoolOp.SumsOfExps, [x, vocab, sumsAt], n, rowsBytes);
  // each row's 16 bytes, seen two ways: its sum of exps (float64 2i), then its max (float32 4i + 2)
  const sums = new Float64Array(pool.memory.buffer, sumsAt, 2 * n);
  const maxima = new Float32Array(pool.memory.buffer, sumsAt, 4 * n);
  const out = new Float32Array(n); // [n] NLLs
  for (let i = 0; i < n; i++) out[i] = maxima[4 * i + 2]! + Math.log(sums[2 * i]!) - rows[i * vocab + targets[i]!]!;
  return tf.tensor1d(out);
}

/**
 * logits: [rows, vocab]; the NLL of targets[i] under row firstRow + i, for
 * each target -> [targets.length]. Plain inference: no gradient. With a
 * `pool` of several threads (a model's), the rows' sums run on its threads.
 */
export function tokenNll(logits: tf.Tensor2D, targets: ArrayLike<number>, firstRow = 0, pool?: WorkerPool): tf.Tensor1D {
  const [rows, vocab] = logits.shape;
  if (firstRow + targets.length > rows) throw new RangeError(`tokenNll: rows ${firstRow}..${firstRow + targets.length} of ${rows}`);
  const ids = Int32Array.from(targets);
  for (const id of ids) if (!(id >= 0 && id < vocab)) throw new RangeError(`tokenNll: target ${id} is outside the vocabulary 0..${vocab - 1}`);
  if (pool !== undefined && (pool.threads > 1 || !simdAvailable()) && jsKernelsAvailable() && hasDirectMemory() && simdKernelsEnabled()) {
    const nll = pooledTokenNll(pool, logits, firstRow, ids);
    if (nll !== undefined) return nll;
  }
  if (jsKernelsAvailable()) return runJsKernel(tokenNllKernel, [logits], { firstRow, targets: ids }) as tf.Tensor1D;
  return tf.tidy(() => {
    const rowsOf = logits.slice([firstRow, 0], [ids.length, vocab]);
    return tf
      .logSoftmax(rowsOf)
      .mul(tf.oneHot(tf.tensor1d(ids, 'int32'), vocab))
      .sum(1)
      .neg() as tf.Tensor1D;
  });
}
