// Token embedding lookup: rows of the table.
//
// tf.gather's gradient needs UnsortedSegmentSum, which the wasm backend
// lacks, so the gradient here is a scatter-add done on the host: the rows of
// dy are summed into the rows of the table that they came from.
import * as tf from '@tensorflow/tfjs';
import { customGrad } from './custom_grad.js';

/** table: [vocab, dim], ids: T token ids -> [T, dim] */
export function embed(table: tf.Tensor2D, ids: ArrayLike<number>): tf.Tensor2D {
  const [vocab, dim] = table.shape;
  const index = Int32Array.from(ids);
  return tf.tidy(() => {
    const indexTensor = tf.tensor1d(index, 'int32');
    if (!tf.engine().isTapeOn()) return tf.gather(table, indexTensor);
    const lookup = customGrad(([t]) => ({
      value: tf.gather(t!, indexTensor),
      gradFunc: (dy) => {
        const rows = dy.dataSync();
        const grad = new Float32Array(vocab * dim);
        for (let i = 0; i < index.length; i++) {
          const src = i * dim;
          const dst = index[i]! * dim;
          for (let c = 0; c < dim; c++) grad[dst + c] += rows[src + c]!;
        }
        return tf.tensor2d(grad, [vocab, dim]);
      },
    }));
    return lookup(table) as tf.Tensor2D;
  });
}
