// The layers of a model whose matrices live in the worker pool (pooled.ts),
// for the Llama family (RMSNorm, SwiGLU, sequential residual, no biases):
// the residual stream stays a Float32Array from the embedding to the final
// norm (during the layers, a copy in the pool's memory), and the norms (into
// the products' input), SwiGLU and residual adds run as plain loops between
// the pool's products. Only attention touches tfjs (the cache keeps its keys
// and values there). A decode step was dozens of tfjs ops per layer, each
// with a fixed dispatch cost that outweighed the 15M model's products on one
// thread; the attention the model runs here (transformer.ts:
// pooledAttention) takes q|k|v as an array and, where it can, splits the
// heads, rotates and attends on arrays too, leaving two tfjs tensors a
// layer: the new keys and values the cache stores. The model's caches keep
// their entries in the pool's memory (cacheMemory), and attention runs
// there, in place, split over the heads where there are several threads.
//
// The loops compute what the tensor path's kernels compute, bit for bit: the
// RMSNorm kernel's loop (kernels/rmsnorm.ts rmsNormRows; in the layers,
// loops.wat's rmsNormRows, which computes the same); a float32 add;
// SwiGLU, where its kernel runs the SIMD loop, that loop on the pool's
// threads (kernels/pooled_swiglu.ts), elsewhere the kernel's JavaScript loop
// (kernels/swiglu.ts swigluRows). With
// the pool's float32 products summing as XNNPACK does, a pooled float32
// model gives the tensor path's logits on wasm.
import * as tf from '@tensorflow/tfjs';
import { jsKernelsAvailable } from '../../kernels/js_kernel.js';
import { poolRegions } from '../../kernels/pool_regions.js';
import { poolHasRoom, poolScratch, poolScratchFits } from '../../kernels/pool_scratch.js';
import { pooledSwiglu } from '../../kernels/pooled_swiglu.js';
import { simdAvailable } from '../../kernels/simd/instance.js';
import { rmsNormRows } from '../../kernels/rmsnorm.js';
import type { WorkerPool } from '../../kernels/pool.js';
import { type InputNorm, pooledGatedProduct, pooledPickingProduct, pooledProduct, productTensor } from '../../kernels/split_products.js';
import { swigluRows } from '../../kernels/swiglu.js';
import type { EntryMemory } from '../cache/types.js';
import { classify } from './project.js';
import type { LayerWeights, Linear, Model } from './weights.js';

/**
 * Attention of one layer: q|k|v [rows, (heads + 2 kvHeads) * headDim] in (a
 * view of the pool's memory: read it before the pool's next product), the
 * merged heads [rows, heads * headDim] out (before the out projection; an
 * array the next call may reuse: read it before then).
 */
export type Attend = (qkv: Float32Array, rows: number, layer: number) => Float32Array;

const entryMemories = new WeakMap<WorkerPool, EntryMemory>();

/**
 * Bytes of the pool's fresh memory that caches leave to the products' and
 * attention's own regions, which grow on demand (a longer block, a longer
 * cache's scores): where the weights leave little room (a 2.7B q8 model
 * leaves about 1.26 GiB), a cache that took the last of it would send a
 * decode step's attention to the JavaScript loop on one thread, or a longer
 * prompt's product to a RangeError. 64 MiB: a 256-token block of the 2.7B
 * shape takes about 50 MB of operands and logits.
 */
export const CACHE_SPARE_BYTES = 64 * 2 ** 20;

/** The pool's memory as a cache's entry memory (src/cache/types.ts, Memory): one object per pool, regions given back (kernels/pool_regions.ts). */
export function poolEntryMemory(pool: WorkerPool): EntryMemory {
  let memory = entryMemories.get(pool);
  if (memory === undefined) {
    const regions = poolRegions(pool);
    memory = {
      alloc: (floats) => regions.allocFloats(floats),
      free: (array) => regions.releaseFloats(array),
      get room() {
        return regions.roomLeaving(CACHE_SPARE_BYTES);
      },
    };
    entryMemories.set(pool, memory);
  }
  return memory;
}

/**
 * Where the caches of a model should keep their entries: a model whose
 * layers run here, its pool's memory, where a decode step's attention runs
 * in place, split over the heads (the wasm backend's heap, where tensors
 * live, the pool's workers cannot read), and, on any number of threads, a
 * decode step can run as one program (decode_program.ts: it writes the
 * token's entry straight into the cache's slot); otherwise undefined:
 * tensors. Whoever makes a cache for the model passes it in the
 * cache's shape (src/stream.ts).
 */
export function cacheMemory(model: Model): EntryMemory | undefined {
  return residualInPool(model) ? poolEntryMemory(model.pool!) : undefined;
}

/** Whether the model's layers can run with the residual stream outside tfjs. */
export function residualInPool(model: Model): boolean {
  const { config, weights } = model;
  return (
    model.pool !== undefined &&
    config.norm === 'rmsnorm' &&
    config.mlp === 'swiglu' &&
    !config.parallelResidual &&
    weights.layers.every((w) => inPool(w.qkv) && inPool(w.out) && (config.hiddenDim === 0 || (inPool(w.up) && inPool(w.down))))
  );
}

/** A layer's matrix in the pool, without a bias (no array per check: a decode step checks every layer's). */
const inPool = (l: Linear) => l.pooled !== undefined && l.bias === undefined;

// Norm weights as arrays, read once per tensor (a pooled model is for inference: they never change).
const normWeights = new WeakMap<tf.Tensor, Float32Array>();
function valuesOf(t: tf.Tensor1D): Float32Array {
  let v = normWeights.get(t);
  if (v === undefined) normWeights.set(t, (v = t.dataSync() as Float32Array));
  return v;
}

// The norms as the products take them (InputNorm), made once per pool and
// tensor: the weight's values and a copy of them in the pool's memory, which
// the product's norm reads in place (where there is no room, it copies the
// values into its operand region for every product, as it did for all).
const inputNorms = new WeakMap<WorkerPool, WeakMap<tf.Tensor, InputNorm>>();
export function inputNorm(model: Model, t: tf.Tensor1D): InputNorm {
  const pool = model.pool!;
  let byTensor = inputNorms.get(pool);
  if (byTensor === undefined) inputNorms.set(pool, (byTensor = new WeakMap()));
  let norm = byTensor.get(t);
  if (norm === undefined) {
    const weight = valuesOf(t);
    norm = { weight, eps: model.config.normEps };
    if (poolHasRoom(pool, 4 * weight.length)) {
      const at = pool.alloc(4 * weight.length);
      new Float32Array(pool.memory.buffer, at, weight.length).set(weight);
      norm.at = at;
    }
    byTensor.set(t, norm);
  }
  return norm;
}

/** x += y, elementwise (float32, as tfjs adds). */
function addInto(x: Float32Array, y: Float32Array): void {
  const n = x.length;
  if (y.length < n) throw new RangeError(`addInto: ${y.length} values added to ${n}`);
  // Four at a time, loads before stores: about half the time of the plain
  // loop in a decode step (measured in place: 110M, 24 adds of 768 a token,
  // 56-118 -> 31 µs a token).
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const a = x[i]! + y[i]!;
    const b = x[i + 1]! + y[i + 1]!;
    const c = x[i + 2]! + y[i + 2]!;
    const d = x[i + 3]! + y[i + 3]!;
    x[i] = a;
    x[i + 1] = b;
    x[i + 2] = c;
    x[i + 3] = d;
  }
  for (; i < n; i++) x[i] = x[i]! + y[i]!;
}

/**
 * The residual stream [rows, dim] during the layers: where the pool's memory
 * has room, a copy there, so that the residual adds run as loops.wat's
 * addInto (the product's result lies there too); otherwise the caller's
 * array, with addInto above. values() is a view valid until the pool's next
 * allocation (a view of the memory then in place).
 */
interface Residual {
  values(): Float32Array;
  add(y: Float32Array): void;
}

/**
 * The stream as a Residual for the layers; done() writes it back into
 * `stream`. (In place, 110M, hot: an add of 768 0.42 -> 0.10 µs, a norm
 * 1.43 -> 1.19 µs with its copy into the operand region; in a decode step,
 * 24 of each a token, the stream's work outside the pool's jobs fell by
 * about 0.05 ms: see the commit.)
 */
function residualIn(model: Model, stream: Float32Array): { residual: Residual; done: () => void } {
  const pool = model.pool!;
  const n = stream.length;
  if (!poolScratchFits(pool, 'residual stream', 4 * n))
    return { residual: { values: () => stream, add: (y: Float32Array) => addInto(stream, y) }, done: () => {} };
  const at = poolScratch(pool, 'residual stream', 4 * n);
  let view = new Float32Array(pool.memory.buffer, at, n); // [rows, dim]
  // (one view while the memory does not grow, not one a call: three a layer)
  const values = () => (view.buffer === pool.memory.buffer ? view : (view = new Float32Array(pool.memory.buffer, at, n)));
  values().set(stream);
  const add = (y: Float32Array) => {
    if (y.buffer !== pool.memory.buffer) return addInto(values(), y);
    if (y.length < n) throw new RangeError(`addInto: ${y.length} values added to ${n}`);
    pool.shared.addInto(at, y.byteOffset, n);
  };
  return { residual: { values, add }, done: () => stream.set(values()) };
}

/** simdLoops: the SwiGLU kernel's SIMD loop runs here (JS kernels, the SIMD loops on), asked once a pass (see pooledLayers). */
function layer(model: Model, w: LayerWeights, l: number, residual: Residual, rows: number, attend: Attend, simdLoops: boolean): void {
  // The norms run in the products (InputNorm): normalised straight into the
  // pool's operand region, by loops.wat's loop (rmsNormRows' bits).
  const attnNorm = inputNorm(model, w.attnNorm.weight);
  // No tidy of its own: attention caches tensors for the next layers (the
  // rotations of a view); the caller's tidy (forwardBatch) releases them.
  const qkv = pooledProduct(w.qkv.pooled!, residual.values(), rows, attnNorm); // [rows, (heads + 2 kvHeads) * headDim]
  const merged = attend(qkv, rows, l); // [rows, heads * headDim]
  residual.add(pooledProduct(w.out.pooled!, merged, rows));
  if (model.config.hiddenDim === 0) return; // attention-only layer: no feed-forward (its empty matrices stay unplaced: placeWeights)
  const up = w.up.pooled!;
  const hidden = up.rows / 2;
  // Where the SwiGLU kernel runs its SIMD loop, the pool runs that loop (on
  // its threads, with room in its memory): for one token of q8, in the
  // gate|up product's own job (pooledGatedProduct); elsewhere the kernel's
  // JavaScript loop.
  const simd = simdLoops && hidden % 4 === 0;
  const mlpNorm = inputNorm(model, w.mlpNorm.weight);
  let gated = simd && rows === 1 ? pooledGatedProduct(up, residual.values(), mlpNorm) : undefined; // [rows, hidden]
  if (gated === undefined) {
    const gateUp = pooledProduct(up, residual.values(), rows, mlpNorm); // [rows, 2 hidden], in the pool
    gated = simd ? pooledSwiglu(model.pool!, gateUp, rows, hidden) : undefined;
    if (gated === undefined) swigluRows(gateUp, rows, hidden, (gated = new Float32Array(rows * hidden)));
  }
  residual.add(pooledProduct(w.down.pooled!, gated, rows));
}

/** stream: [rows, dim], the embeddings, through every layer, in place: the residual stream. */
export function pooledLayers(model: Model, stream: Float32Array, attend: Attend): void {
  const dim = model.config.dim;
  const rows = stream.length / dim;
  const { residual, done } = residualIn(model, stream);
  // (once a pass, not in every layer: the backend and the kernels enabled do
  // not change within one, and asked in every layer, tfjs's lookups were
  // inlined into layer and compiled with it)
  const simdLoops = jsKernelsAvailable() && simdAvailable();
  model.weights.layers.forEach((w, l) => layer(model, w, l, residual, rows, attend, simdLoops));
  done();
}

/**
 * The final norm and the classifier of the residual stream [rows, dim]:
 * logits [rows, vocab], a new tensor (the only one the pooled forward pass
 * makes outside attention).
 */
export function pooledLogits(model: Model, stream: Float32Array): tf.Tensor2D {
  const { config, weights } = model;
  const rows = stream.length / config.dim;
  if (weights.pooledClassifier === undefined) return tf.tidy(() => classify(tf.tensor2d(finalNorm(model, stream), [rows, config.dim]), weights));
  return productTensor(pooledLogitValues(model, stream), [rows, config.vocabSize]); // [rows, vocab]
}

/**
 * pooledLogits as an array, for a model with a pooled classifier: a view of
 * the pool's memory [rows, vocab], valid until the pool's next product.
 */
export function pooledLogitValues(model: Model, stream: Float32Array): Float32Array {
  const { config, weights } = model;
  const classifier = weights.pooledClassifier;
  if (classifier === undefined) throw new Error('pooledLogitValues: the model has no pooled classifier');
  // The final norm runs in the product, as the layers' do (rmsNormRows'
  // bits, no array made: a 15M q8 decode step's finalNorm took 5-8 µs).
  const rows = stream.length / config.dim;
  const norm = inputNorm(model, weights.finalNorm.weight);
  // one token: the job also picks greedy decoding's token (kernels/logits_argmax.ts)
  return rows === 1 ? pooledPickingProduct(classifier, stream, norm) : pooledProduct(classifier, stream, rows, norm);
}

/** The final RMSNorm of the residual stream [rows, dim] (for a classifier outside the pool): a new array. */
function finalNorm(model: Model, stream: Float32Array): Float32Array {
  const { config, weights } = model;
  const h = new Float32Array(stream.length); // [rows, dim]
  rmsNormRows(stream, valuesOf(weights.finalNorm.weight), config.normEps, config.dim, h);
  return h;
}
