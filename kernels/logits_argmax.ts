// Greedy decoding's pick from a row of logits that lies in the worker pool's
// memory (a pooled classifier's output, kernels/split_products.ts): the index
// of the first largest logit, and whether every logit is finite, in one SIMD
// call (simd/loops.wat argmaxFinite) where they lie, instead of two
// JavaScript loops over the vocabulary (src/sample/sampler.ts argmax and
// src/finite.ts firstNonFinite: about 45 µs of a 0.9 ms 15M q8 decode step
// at a vocabulary of 32,000). Where the classifier's job picked already
// (kernels/split_products.ts pooledPickingProduct: each thread from the rows
// it computed), the pick is that job's, and the logits are not read again.
import type { WorkerPool } from './pool.js';
import { pickedArgmax } from './split_products.js';

/** Whether `values` is a view of the pool's memory (a pooled product's result). */
export function inPoolMemory(pool: WorkerPool, values: Float32Array): boolean {
  return values.buffer === pool.memory.buffer;
}

/**
 * The index of the first largest of `values` (a view of the pool's memory,
 * at least one value), as argmax finds it, or -1 when any value is NaN or
 * infinite. For the result of a picking product with no product since, the
 * pick that product's job made as it wrote them (pickedArgmax): the values
 * are not read again, so they must be as it left them.
 */
export function pooledArgmax(pool: WorkerPool, values: Float32Array): number {
  if (!inPoolMemory(pool, values)) throw new Error("pooledArgmax: the values are not in the pool's memory");
  if (values.length === 0) throw new RangeError('pooledArgmax: no values');
  return pickedArgmax(pool, values) ?? pool.shared.argmaxFinite(values.byteOffset, values.length);
}
