// Softmax cross-entropy of logits against target ids, the training loss.
//
//   nll[r] = logsumexp(logits[r]) - logits[r, target[r]]
//   d nll[r] / d logits[r] = softmax(logits[r]) - onehot(target[r])
//
// tfjs's own loss wants a [rows, vocab] one-hot of the targets and a chain
// of ops that each read and write the whole [rows, vocab] block; on wasm/cpu
// one loop per direction does it, reading the logits once (plus once for the
// maximum). A target of -1 marks a row that is not scored (nll 0, gradient 0).
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';

/** Marks a row without a target. */
export const IGNORE_TARGET = -1;

/** logsumexp of row `row` of a [rows, vocab] array, computed in float64. */
function logSumExp(logits: Float32Array, row: number, vocab: number): number {
  let max = -Infinity;
  for (let j = row; j < row + vocab; j++) if (logits[j]! > max) max = logits[j]!;
  let z = 0;
  for (let j = row; j < row + vocab; j++) z += Math.exp(logits[j]! - max);
  return max + Math.log(z);
}

// inputs: logits [rows, vocab], targets [rows], nll [rows] (the forward's
// output, which gives each row's logsumexp without another pass: lse = nll +
// logits[target]), dy [rows] -> dlogits [rows, vocab]
const nllGradKernel: JsKernel<object> = {
  name: 'StreamllmCrossEntropyGrad',
  outputShape: ([logits]) => logits!,
  run([logits, targets, nll, dy], [shape], out) {
    const [rows, vocab] = shape as [number, number];
    for (let r = 0; r < rows; r++) {
      const row = r * vocab;
      const target = targets![r]!;
      if (target === IGNORE_TARGET) {
        out.fill(0, row, row + vocab);
        continue;
      }
      const lse = nll![r]! + logits![row + target]!;
      const g = dy![r]!;
      for (let j = 0; j < vocab; j++) out[row + j] = g * Math.exp(logits![row + j]! - lse);
      out[row + target]! -= g;
    }
  },
};

// inputs: logits [rows, vocab], targets [rows] (float32 ids) -> nll [rows]
const nllKernel: JsKernel<object> = {
  name: 'StreamllmCrossEntropy',
  outputShape: ([logits]) => [logits![0]!],
  run([logits, targets], [shape], out) {
    const [rows, vocab] = shape as [number, number];
    for (let r = 0; r < rows; r++) {
      const target = targets![r]!;
      out[r] = target === IGNORE_TARGET ? 0 : logSumExp(logits!, r * vocab, vocab) - logits![r * vocab + target]!;
    }
  },
  gradient: {
    save: [0, 1],
    saveOutput: true,
    grads: (dy, [logits, targets, nll]) => ({ 0: () => runJsKernel(nllGradKernel, [logits!, targets!, nll!, dy], {}) }),
  },
};

/** The same with tfjs ops, for backends without JS kernels. */
function crossEntropyOps(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  return tf.tidy(() => {
    const valid = tf.tensor1d(Float32Array.from(targets, (t) => (t === IGNORE_TARGET ? 0 : 1)));
    const onehot = tf.oneHot(
      tf.tensor1d(
        targets.map((t) => Math.max(t, 0)),
        'int32',
      ),
      logits.shape[1],
    );
    const picked = tf.sum(tf.logSoftmax(logits).mul(onehot), 1);
    return picked.neg().mul<tf.Tensor1D>(valid);
  });
}

/**
 * Per-row negative log-likelihood of `targets` under softmax(logits):
 * logits [rows, vocab], targets: rows ids (IGNORE_TARGET to skip a row)
 * -> nll [rows]. Differentiable with respect to the logits.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: ArrayLike<number>): tf.Tensor1D {
  const [rows, vocab] = logits.shape;
  if (targets.length !== rows) throw new Error(`crossEntropy: ${rows} rows of logits, ${targets.length} targets`);
  const ids = Int32Array.from(targets);
  for (const id of ids) {
    if (id !== IGNORE_TARGET && !(id >= 0 && id < vocab)) throw new Error(`crossEntropy: target ${id} outside 0..${vocab - 1}`);
  }
  if (!jsKernelsAvailable()) return crossEntropyOps(logits, ids);
  // The ids travel as float32 (exact below 2^24) so both backends hand the kernel Float32Arrays.
  return tf.tidy(() => runJsKernel(nllKernel, [logits, tf.tensor1d(Float32Array.from(ids))], {}) as tf.Tensor1D);
}
