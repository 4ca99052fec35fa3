// The layers of a model whose matrices live in the worker pool (pooled.ts),
// for the Llama family (RMSNorm, SwiGLU, sequential residual, no biases):
// the residual stream stays a Float32Array from the embedding to the final
// norm, and the norms, SwiGLU and residual adds run as plain loops between
// the pool's products. Only attention goes through tfjs (the cache keeps
// its keys and values there). A decode step was dozens of tfjs ops per layer,
// each with a fixed dispatch cost that outweighed the 15M model's products
// on one thread; this leaves about six (q|k|v in, the fused head split,
// the cache write, attention, the read back).
//
// The loops compute what the tensor path's kernels compute, bit for bit (the
// RMSNorm kernel's loop; SwiGLU's, kernels/swiglu.ts swigluRows, with the
// SIMD loop's exp where that runs; a float32 add): only the products'
// summation order can differ from the tensor path.
import * as tf from '@tensorflow/tfjs';
import { pooledProduct, productTensor } from '../../kernels/split_products.js';
import { swigluRows } from '../../kernels/swiglu.js';
import type { LayerWeights, Model } from './weights.js';

/**
 * Attention of one layer: q|k|v [rows, (heads + 2 kvHeads) * headDim] in,
 * the merged heads [rows, heads * headDim] out (before the out projection).
 */
export type Attend = (qkv: tf.Tensor2D, layer: number) => tf.Tensor2D;

/** Whether the model's layers can run with the residual stream outside tfjs. */
export function residualInPool(model: Model): boolean {
  const { config, weights } = model;
  return (
    model.pool !== undefined &&
    config.norm === 'rmsnorm' &&
    config.mlp === 'swiglu' &&
    !config.parallelResidual &&
    weights.layers.every((w) => [w.qkv, w.out, w.up, w.down].every((l) => l.pooled !== undefined && l.bias === undefined))
  );
}

// Norm weights as arrays, read once per tensor (a pooled model is for inference: they never change).
const normWeights = new WeakMap<tf.Tensor, Float32Array>();
function valuesOf(t: tf.Tensor1D): Float32Array {
  let v = normWeights.get(t);
  if (v === undefined) normWeights.set(t, (v = t.dataSync() as Float32Array));
  return v;
}

/** out = RMSNorm(x) * weight per row of dim, as kernels/rmsnorm.ts's kernel loop computes it. */
function rmsNormRows(x: Float32Array, weight: Float32Array, eps: number, dim: number, out: Float32Array): void {
  for (let row = 0; row < x.length; row += dim) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[row + i]! * x[row + i]!;
    const r = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[row + i] = x[row + i]! * r * weight[i]!;
  }
}

/** x += y, elementwise (float32, as tfjs adds). */
function addInto(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
}

function layer(model: Model, w: LayerWeights, l: number, stream: Float32Array, h: Float32Array, rows: number, attend: Attend): void {
  const { config } = model;
  const dim = config.dim;
  rmsNormRows(stream, valuesOf(w.attnNorm.weight), config.normEps, dim, h);
  const qkvMatrix = w.qkv.pooled!;
  // No tidy of its own: attention caches tensors for the next layers (the
  // rotations of a view); the caller's tidy (forwardBatch) releases them.
  const qkv = productTensor(pooledProduct(qkvMatrix, h, rows), [rows, qkvMatrix.rows]); // [rows, (heads + 2 kvHeads) * headDim]
  const heads = attend(qkv, l); // [rows, heads * headDim]
  const merged = heads.dataSync() as Float32Array;
  tf.dispose([qkv, heads]);
  addInto(stream, pooledProduct(w.out.pooled!, merged, rows));
  rmsNormRows(stream, valuesOf(w.mlpNorm.weight), config.normEps, dim, h);
  const up = w.up.pooled!;
  const hidden = up.rows / 2;
  const gated = new Float32Array(rows * hidden); // [rows, hidden]
  swigluRows(pooledProduct(up, h, rows), rows, hidden, gated);
  addInto(stream, pooledProduct(w.down.pooled!, gated, rows));
}

/** x: [rows, dim] (the embeddings) through every layer -> [rows, dim], a new tensor. */
export function pooledLayers(model: Model, x: tf.Tensor2D, attend: Attend): tf.Tensor2D {
  const [rows, dim] = x.shape;
  const stream = Float32Array.from(x.dataSync()); // [rows, dim]: the residual stream
  const h = new Float32Array(rows * dim); // [rows, dim]: its norm
  model.weights.layers.forEach((w, l) => layer(model, w, l, stream, h, rows, attend));
  return tf.tensor2d(stream, [rows, dim]);
}
