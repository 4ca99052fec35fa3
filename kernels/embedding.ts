// Token embedding lookup: rows of the table.
//
// tf.gather's gradient needs UnsortedSegmentSum, which the wasm backend
// lacks, so the gradient here is a scatter-add done on the host: the rows of
// dy are summed into the rows of the table that they came from. Without a
// tape, on wasm/cpu, the lookup is one kernel that copies the rows (the ids
// ride along as attributes: no index tensor to make for each decode step).
import * as tf from '@tensorflow/tfjs';
import { customGrad } from './custom_grad.js';
import { type JsKernel, runJsKernel } from './js_kernel.js';
import { fusedInference, tapeIsOn } from './paths.js';

const embedKernel: JsKernel<{ ids: Int32Array }> = {
  name: 'StreamllmEmbed',
  outputShape: ([table], { ids }) => [ids.length, table![1]!],
  run([table], [shape], out, { ids }) {
    const dim = shape![1]!;
    ids.forEach((id, i) => out.set(table!.subarray(id * dim, (id + 1) * dim), i * dim));
  },
};

/** table: [vocab, dim], ids: T token ids -> [T, dim] */
export function embed(table: tf.Tensor2D, ids: ArrayLike<number>): tf.Tensor2D {
  const [vocab, dim] = table.shape;
  const index = Int32Array.from(ids);
  if (fusedInference()) {
    for (const id of index) if (!(id >= 0 && id < vocab)) throw new RangeError(`embed: token id ${id} is outside the vocabulary 0..${vocab - 1}`);
    return runJsKernel(embedKernel, [table], { ids: index }) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    const indexTensor = tf.tensor1d(index, 'int32');
    if (!tapeIsOn()) return tf.gather(table, indexTensor);
    const lookup = customGrad(([t]) => ({
      value: tf.gather(t!, indexTensor),
      gradFunc: (dy) => {
        const rows = dy.dataSync();
        const grad = new Float32Array(vocab * dim);
        for (let i = 0; i < index.length; i++) {
          const src = i * dim;
          const dst = index[i]! * dim;
          for (let c = 0; c < dim; c++) grad[dst + c]! += rows[src + c]!;
        }
        return tf.tensor2d(grad, [vocab, dim]);
      },
    }));
    return lookup(table) as tf.Tensor2D;
  });
}
