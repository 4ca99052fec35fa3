// SwiGLU over rows that lie in a worker pool's memory (a product's result),
// on the pool's threads: loops.wat's swiglu, the loop the SwiGLU kernel
// (kernels/swiglu.ts) runs on the wasm backend, so the same numbers bit for
// bit, the rows split over the threads.
import type { WorkerPool } from './pool.js';
import { PoolOp } from './pool_ops.js';
import { poolScratch, poolScratchFits } from './pool_scratch.js';

/**
 * gateUp: [rows, 2 hidden] = [gate | up], a view of the pool's memory, hidden
 * a multiple of 4 -> silu(gate) * up: [rows, hidden], a view of the pool's
 * memory valid until the next pooled SwiGLU; undefined when the memory has
 * no room for it.
 */
export function pooledSwiglu(pool: WorkerPool, gateUp: Float32Array, rows: number, hidden: number): Float32Array | undefined {
  // (a view taken before the memory grew has an older buffer object: only its kind can be checked)
  if (!(gateUp.buffer instanceof SharedArrayBuffer)) throw new Error('pooledSwiglu: gateUp must be a view of the pool memory');
  if (hidden % 4 !== 0) throw new Error(`pooledSwiglu: hidden ${hidden} is not a multiple of 4`);
  if (gateUp.length < 2 * rows * hidden) throw new RangeError(`pooledSwiglu: gateUp holds ${gateUp.length} values, ${rows} x ${2 * hidden} needed`);
  if (!poolScratchFits(pool, 'swiglu', 4 * rows * hidden)) return undefined;
  const out = poolScratch(pool, 'swiglu', 4 * rows * hidden); // [rows, hidden]
  pool.run(PoolOp.Swiglu, [gateUp.byteOffset, hidden, out], rows, 3 * 4 * rows * hidden);
  return new Float32Array(pool.memory.buffer, out, rows * hidden);
}
