// Moving a loaded model's weight matrices into the worker pool: the pool's
// SIMD loops on the products, on every core or --threads of them (one: the
// calling thread alone), and optionally 8-bit weights (--weights q8).
//
// The matrices (qkv, out, up, down per layer, and the classifier) leave
// tfjs: each is written [out, in] into the pool's shared memory, float32 or
// quantised, and its tensor disposed, so the model holds them once. The
// embedding, norms, biases and sink logits stay tfjs tensors. A pooled model
// is for inference: training and export need the float32 tensors.
import * as tf from '@tensorflow/tfjs';
import { POOL_MAX_BYTES, WorkerPool } from '../../kernels/pool.js';
import { defaultThreads } from '../../kernels/threads.js';
import { allocMatrix, matrixBytes, type PooledMatrix, type WeightFormat, writeRow } from '../../kernels/split_products.js';
import { ArgumentError, ResourceError } from '../errors.js';
import { gib } from '../memory.js';
import { layerMatrixShapes, type ModelConfig } from './config.js';
import { checkOptionNames, placementOf, type PlacementOptions } from './placement.js';
import type { Linear, Model } from './weights.js';

export interface Placement {
  /** Threads for the weight products, the calling one included (default: every core; 1: the calling thread alone, no worker threads). */
  threads?: number;
  /** How the matrices are stored (default f32). */
  weights?: WeightFormat;
  /** Pool jobs (products, attention, ...) that read fewer bytes stay on the calling thread (default: the pool's SPLIT_MIN_BYTES; 0 splits all, for tests). */
  splitMinBytes?: number;
  /** How long the pool's threads spin before they sleep, µs (default: the pool's SPIN_MICROS; 0 never spins). */
  spinMicros?: number;
  /** Ask for 2 MB pages under the pool's memory (default true; false for A/B runs: kernels/huge_pages.ts). */
  hugePages?: boolean;
}

/** Rows of the [in, out] matrix transposed per step: a block of rows stays in cache while its columns are gathered. */
const ROWS_PER_STEP = 64;

/** W: [in, out] tensor -> the pool's [out, in] matrix. */
function pooledFrom(pool: WorkerPool, format: WeightFormat, weight: tf.Tensor2D): PooledMatrix {
  const [inDim, outDim] = weight.shape;
  const m = allocMatrix(pool, format, outDim, inDim);
  const values = weight.dataSync() as Float32Array; // [in, out]
  const rows = new Float32Array(ROWS_PER_STEP * inDim); // [ROWS_PER_STEP, in]: a block of W's rows ([out, in])
  for (let r0 = 0; r0 < outDim; r0 += ROWS_PER_STEP) {
    const n = Math.min(ROWS_PER_STEP, outDim - r0);
    for (let i = 0; i < inDim; i++) {
      const from = i * outDim + r0;
      for (let r = 0; r < n; r++) rows[r * inDim + i] = values[from + r]!;
    }
    for (let r = 0; r < n; r++) writeRow(m, r0 + r, rows, r * inDim);
  }
  return m;
}

/** Room left in the pool for the products' operands (activations, logits) next to the matrices. */
const POOL_HEADROOM_BYTES = 256 * 2 ** 20;

/** Bytes a model's pooled matrices take in `format`: qkv, out, up, down per layer and the classifier. */
export function pooledBytes(c: ModelConfig, format: WeightFormat): number {
  const layer = layerMatrixShapes(c).reduce((sum, [rows, cols]) => sum + matrixBytes(format, rows, cols), 0);
  return c.layers * layer + matrixBytes(format, c.vocabSize, c.dim);
}

/**
 * Refuse, before the pool takes any memory, a model whose matrices do not
 * fit in its 4 GiB (wasm32) with room for the products' operands. `what`
 * starts the message: it names the flag or argument.
 */
export function checkPoolFits(c: ModelConfig, format: WeightFormat, what: string): void {
  const bytes = pooledBytes(c, format);
  if (bytes > POOL_MAX_BYTES - POOL_HEADROOM_BYTES) {
    const smaller = format === 'f32' ? "; q8 weights take 1.125 bytes a weight (--weights q8, or loadModel's weights: 'q8')" : '';
    throw new ResourceError(
      `${what}: the weight matrices need ${gib(bytes)} as ${format}, more than the worker pool's ${gib(POOL_MAX_BYTES)} memory (wasm32) holds ` +
        `with ${gib(POOL_HEADROOM_BYTES)} left for the products${smaller}`,
    );
  }
}

/** A new worker pool for the placement's threads and tuning. */
export function poolFor(p: Placement): WorkerPool {
  return new WorkerPool(p.threads ?? defaultThreads(), { splitMinBytes: p.splitMinBytes, spinMicros: p.spinMicros, hugePages: p.hugePages });
}

/**
 * Move the model's matrices into a new worker pool, in place; returns the
 * model (as it was where it has a pool already). Any thread count, one
 * included: a pool of one thread has no workers, and its loops on the
 * calling thread decode faster than the tfjs path's ops (bench/RESULTS.md,
 * bench/inproc_ab.ts --a :tfjs --b :pool), with the same float32 bits on wasm. A model never
 * placed is the plain tfjs path, the reference the pooled paths are tested
 * against.
 */
export function placeWeights(model: Model, p: Placement, what = 'placeWeights'): Model {
  if (model.pool !== undefined) return model;
  const format = p.weights ?? 'f32';
  checkPoolFits(model.config, format, `${what}: weights '${format}'`);
  const pool = poolFor(p);
  const w = model.weights;
  const move = (l: Linear) => {
    if (l.weight === undefined || l.weight.size === 0) return; // an attention-only layer's empty MLP stays put, unused
    l.pooled = pooledFrom(pool, format, l.weight);
    l.weight.dispose();
    delete l.weight;
  };
  for (const l of w.layers) [l.qkv, l.out, l.up, l.down].forEach(move);
  if (w.classifier !== undefined) {
    w.pooledClassifier = pooledFrom(pool, format, w.classifier);
    w.classifier.dispose();
    delete w.classifier;
  }
  model.pool = pool;
  return model;
}

/**
 * Place a model already in memory (just trained, built, or loaded without
 * options) as loadModel's options would have: the same placementOf, the same
 * defaults. With any of threads, weights, products (other than 'tfjs') its
 * matrices move into a new worker pool in place: their float32 tensors are
 * disposed, so the model no longer trains or exports (saveHfModel), and it
 * holds worker threads until `await disposeModel(model)`, which stops them and
 * disposes the rest. With none, products 'tfjs', or on tensorflow, the model
 * is left as it was. Returns the model. A bad option, or a model already in a
 * pool, is an ArgumentError; matrices too large for the pool, a ResourceError.
 */
export function placeModel(model: Model, options: PlacementOptions): Model {
  checkOptionNames(options, []);
  const placement = placementOf(options, tf.getBackend());
  if (placement === undefined) return model;
  if (model.pool !== undefined) throw new ArgumentError('model', 'its matrices are in a worker pool already (loadModel or placeModel placed it)');
  return placeWeights(model, placement, 'placeModel');
}
