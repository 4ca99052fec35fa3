// Shared set-up of the worker pool's tests (test/pool*.test.ts, one concept a
// file: pool.test the jobs and their products, pool_memory.test the memory and
// its 2 MB pages, pool_program.test programs and their walker,
// pool_failures.test failures and the keeper): seeded random values, a matrix
// written into a pool, the pools most of them run on, views of a pool's memory.
import seedrandom from 'seedrandom';
import type { Test } from 'tap';
import { WorkerPool } from '../kernels/pool.js';
import { allocMatrix, type PooledMatrix, type WeightFormat, writeRow } from '../kernels/split_products.js';

/** A seeded generator and n values uniform in [-1, 1) from it: each file its own seed, so its values do not depend on another's. */
export function seededRandom(seed: string): { rng: () => number; randn: (n: number) => Float32Array } {
  const rng = seedrandom(seed);
  return { rng, randn: (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1) };
}

/** w ([rows, cols]) as a matrix of `format` in the pool's memory. */
export function matrix(pool: WorkerPool, format: WeightFormat, w: Float32Array, rows: number, cols: number): PooledMatrix {
  const m = allocMatrix(pool, format, rows, cols);
  for (let r = 0; r < rows; r++) writeRow(m, r, w, r * cols);
  return m;
}

/**
 * A one-thread pool, and the split pools the products are compared on:
 * splitMinBytes 0, so every product is split however small; 2, 3 and 4
 * threads, and 2 with spinMicros 0 (the threads sleep between jobs at once;
 * the others spin first). Ready, and disposed when `t` ends.
 */
export async function testPools(t: Test): Promise<{ one: WorkerPool; pools: WorkerPool[] }> {
  const one = new WorkerPool(1);
  const pools = [...[2, 3, 4].map((n) => new WorkerPool(n, { splitMinBytes: 0 })), new WorkerPool(2, { splitMinBytes: 0, spinMicros: 0 })];
  t.teardown(() => Promise.all([one, ...pools].map((p) => p.dispose())));
  await Promise.all(pools.map((p) => p.ready()));
  return { one, pools };
}

/** The floats of a pool's memory (a fresh view: allocations may grow it). */
export const floatsOf = (pool: WorkerPool) => new Float32Array(pool.memory.buffer);

/** Floats as their bits, for comparisons bit for bit. */
export const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer));
