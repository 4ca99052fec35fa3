// A weight product of the forward pass: on the worker pool when the model
// keeps the matrix there (pooled.ts), else as a tfjs product.
import type * as tf from '@tensorflow/tfjs';
import { linear } from '../../kernels/matmul.js';
import { pooledLinear } from '../../kernels/split_products.js';
import { classifierTensor, type Linear, type ModelWeights, weightTensor } from './weights.js';

/** x: [T, in] -> [T, out] */
export function project(x: tf.Tensor2D, l: Linear): tf.Tensor2D {
  if (l.pooled !== undefined) return pooledLinear(x, l.pooled, l.bias);
  return linear(x, weightTensor(l), l.bias);
}

/** x: [T, dim] -> logits [T, vocab] */
export function classify(x: tf.Tensor2D, w: ModelWeights): tf.Tensor2D {
  if (w.pooledClassifier !== undefined) return pooledLinear(x, w.pooledClassifier);
  return linear(x, classifierTensor(w));
}
