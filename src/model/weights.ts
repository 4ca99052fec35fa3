// A model's tensors, in the layout the forward pass wants: every matrix is
// [in, out] so that x @ W is the untransposed 2-D product XNNPACK runs fast
// (checkpoints store [out, in]; loaders transpose once). A model placed on
// the worker pool (pooled.ts) holds its matrices there instead, [out, in],
// float32 or q8, and the tfjs tensors are gone.
import * as tf from '@tensorflow/tfjs';
import type { WorkerPool } from '../../kernels/pool.js';
import type { PooledMatrix } from '../../kernels/split_products.js';
import { ArgumentError, ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';

export interface Linear {
  /** [in, out]; absent when the matrix lives in the worker pool. */
  weight?: tf.Tensor2D;
  /** The matrix in the worker pool's memory, [out, in]. */
  pooled?: PooledMatrix;
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
  /** [dim, vocab]; for tied embeddings a transposed copy of `embedding`. Absent when pooled. */
  classifier?: tf.Tensor2D;
  /** The classifier in the worker pool's memory, [vocab, dim]. */
  pooledClassifier?: PooledMatrix;
}

export interface Model {
  config: ModelConfig;
  weights: ModelWeights;
  /** The worker pool that holds the pooled matrices (owned: disposeModel stops it). */
  pool?: WorkerPool;
}

/** The [in, out] tensor of a matrix that the training and export code need in tfjs. */
export function weightTensor(l: Linear): tf.Tensor2D {
  if (l.weight === undefined)
    throw new ConfigError('this model keeps its matrices in the worker pool (--threads/--weights): load it without them to train or export');
  return l.weight;
}

/** The classifier as a tfjs tensor [dim, vocab] (see weightTensor). */
export function classifierTensor(w: ModelWeights): tf.Tensor2D {
  return weightTensor({ weight: w.classifier });
}

/** Number of parameters, counting a tied classifier once. */
export function parameterCount(model: Model, tied: boolean): number {
  const w = model.weights;
  const tensors = collectTensors(w).filter((t) => !(tied && t === w.classifier));
  const pooled = [...w.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down].map((p) => p.pooled)), tied ? undefined : w.pooledClassifier];
  return tensors.reduce((n, t) => n + t.size, 0) + pooled.reduce((n, m) => n + (m ? m.rows * m.cols : 0), 0);
}

export function collectTensors(w: ModelWeights): tf.Tensor[] {
  const list: (tf.Tensor | undefined)[] = [w.embedding, w.sinkEmbedding, w.finalNorm.weight, w.finalNorm.bias, w.classifier];
  for (const l of w.layers) {
    for (const p of [l.attnNorm, l.qkv, l.out, l.mlpNorm, l.up, l.down]) list.push(p.weight, p.bias);
    list.push(l.sinkLogits);
  }
  return list.filter((t): t is tf.Tensor => t !== undefined);
}

/** Models disposeModel was called on (checkNotDisposed). */
const disposedModels = new WeakSet<Model>();

/**
 * Free the model's tensors and stop its worker pool's threads (a model
 * loaded with threads, weights or products: placement.ts), at once; the
 * promise resolves when every worker has exited. The workers never keep the
 * process alive, so only a caller that goes on (and counts threads, or loads
 * another model) needs to await it.
 */
export function disposeModel(model: Model): Promise<void> {
  disposedModels.add(model);
  tf.dispose(collectTensors(model.weights));
  return model.pool?.dispose() ?? Promise.resolve();
}

/**
 * Throws an ArgumentError naming that the model was disposed, where using it
 * would fail deep inside tfjs with a TypeError (its tensors are gone) or in
 * the worker pool: called where a forward pass or a stream starts. (Its
 * embedding disposed on its own counts too.)
 */
export function checkNotDisposed(model: Model): void {
  if (disposedModels.has(model) || model.weights.embedding.isDisposed) {
    throw new ArgumentError('model', 'it was disposed (disposeModel): load the model again to use it');
  }
}
