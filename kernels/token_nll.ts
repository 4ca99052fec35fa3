// Negative log-likelihoods of the next tokens, straight from the logits:
//
//   nll[i] = log sum_j exp(logits[r, j]) - logits[r, target_i],   r = firstRow + i
//
// computed where the logits are: a block of 256 tokens over a 32000-token
// vocabulary has 32 MB of logits, which reading out to JavaScript would copy
// (and then exp() one by one). On wasm the row's max and sum of exps run in
// WebAssembly SIMD (kernels/simd/loops.wat), summed in float64; on cpu a
// JavaScript loop in float64; elsewhere tfjs's logSoftmax.
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';
import { simdLoops } from './simd/instance.js';

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
 * logits: [rows, vocab]; the NLL of targets[i] under row firstRow + i, for
 * each target -> [targets.length]. Plain inference: no gradient.
 */
export function tokenNll(logits: tf.Tensor2D, targets: ArrayLike<number>, firstRow = 0): tf.Tensor1D {
  const [rows, vocab] = logits.shape;
  if (firstRow + targets.length > rows) throw new RangeError(`tokenNll: rows ${firstRow}..${firstRow + targets.length} of ${rows}`);
  const ids = Int32Array.from(targets);
  for (const id of ids) if (!(id >= 0 && id < vocab)) throw new RangeError(`tokenNll: target ${id} is outside the vocabulary 0..${vocab - 1}`);
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
