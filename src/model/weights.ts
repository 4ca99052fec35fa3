// A model's tensors, in the layout the forward pass wants: every matrix is
// [in, out] so that x @ W is the untransposed 2-D product XNNPACK runs fast
// (checkpoints store [out, in]; loaders transpose once).
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.js';

export interface Linear {
  weight: tf.Tensor2D; // [in, out]
  bias?: tf.Tensor1D; // [out]
}

export interface Norm {
  weight: tf.Tensor1D; // [dim]
  bias?: tf.Tensor1D; // [dim], LayerNorm only
}

export interface LayerWeights {
  attnNorm: Norm;
  /** [dim, (heads + 2 kvHeads) * headDim]: q, k, v projections side by side. */
  qkv: Linear;
  /** [heads * headDim, dim] */
  out: Linear;
  mlpNorm: Norm;
  /** swiglu: [dim, 2 * hidden] = [gate | up]; gelu: [dim, hidden] */
  up: Linear;
  /** [hidden, dim] */
  down: Linear;
  /** [heads]: the learned sink logits ('learned-sink' softmax). */
  sinkLogits?: tf.Tensor1D;
}

export interface ModelWeights {
  /** [vocab, dim] */
  embedding: tf.Tensor2D;
  /** [dim]: the learned sink token's embedding (sinkToken models). */
  sinkEmbedding?: tf.Tensor1D;
  layers: LayerWeights[];
  finalNorm: Norm;
  /** [dim, vocab]; for tied embeddings a transposed copy of `embedding`. */
  classifier: tf.Tensor2D;
}

export interface Model {
  config: ModelConfig;
  weights: ModelWeights;
}

/** Number of parameters, counting a tied classifier once. */
export function parameterCount(model: Model, tied: boolean): number {
  const tensors = collectTensors(model.weights).filter((t) => !(tied && t === model.weights.classifier));
  return tensors.reduce((n, t) => n + t.size, 0);
}

export function collectTensors(w: ModelWeights): tf.Tensor[] {
  const list: (tf.Tensor | undefined)[] = [w.embedding, w.sinkEmbedding, w.finalNorm.weight, w.finalNorm.bias, w.classifier];
  for (const l of w.layers) {
    for (const p of [l.attnNorm, l.qkv, l.out, l.mlpNorm, l.up, l.down]) list.push(p.weight, p.bias);
    list.push(l.sinkLogits);
  }
  return list.filter((t): t is tf.Tensor => t !== undefined);
}

export function disposeModel(model: Model): void {
  tf.dispose(collectTensors(model.weights));
}
