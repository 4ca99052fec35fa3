// Operand space in a worker pool's shared memory: each user of the pool (the
// products, attention, the token NLLs) keeps one region, grown on demand and
// never shrunk or freed (the pool's memory lives as long as its model).
//
// Two allocators share the memory: these regions (and the weights) come from
// the pool's bump allocator (WorkerPool.alloc), the caches' from PoolRegions'
// free list over it. A region a user outgrows stays allocated, unused (at
// most as much again as its final size: regions double), and what caches
// give back cannot serve a region here; caches leave 64 MiB of fresh memory
// for these instead (pooled_layers.ts CACHE_SPARE_BYTES). Routing these
// through PoolRegions (release the old region when one grows, so that a
// cache may take it) needs every reader of an offset or view into a region
// to be done with it when the region grows, which nothing checks today: an
// outgrown region is never given to anyone else, so a stale offset reads
// stale numbers, never a cache's. Offsets kept across calls: the decode
// program's patched step arguments (re-patched when its scores region
// grows), split_products' result views and last picks (keyed by offset), a
// product's result read by its caller until the next product, the
// classifier's logits until the next forward pass.
//
// Where no region fits (a full 4 GiB), users run elsewhere: attention over a
// cache in the pool's memory then runs the JavaScript loop in float64 on the
// calling thread (transformer.ts attendArraysTo), within rounding of the SIMD
// loop's numbers, not bit for bit. A decode step's 'attention' region is a
// few KB, and the caches' 64 MiB spare keeps that case to pools whose weights
// and operand regions leave less than that.
import { POOL_MAX_BYTES, type WorkerPool } from './pool.js';

const regions = new WeakMap<WorkerPool, Map<string, { offset: number; bytes: number }>>();

function regionOf(pool: WorkerPool, user: string): { offset: number; bytes: number } | undefined {
  return regions.get(pool)?.get(user);
}

/** Bytes the pool can still allocate (its memory holds at most 4 GiB). */
function room(pool: WorkerPool): number {
  return POOL_MAX_BYTES - 16 * Math.ceil(pool.allocatedBytes / 16);
}

/** Whether the pool's memory has room for `bytes` more (an allocation of its own, pool.alloc, outside the regions). */
export function poolHasRoom(pool: WorkerPool, bytes: number): boolean {
  return bytes <= room(pool);
}

/**
 * Whether `user` can have `bytes` of operand space: its region is that
 * large, or the pool's memory has room for a new one. Where it has not (a
 * large model's weights fill most of the 4 GiB), callers that can run
 * elsewhere do.
 */
export function poolScratchFits(pool: WorkerPool, user: string, bytes: number): boolean {
  return (regionOf(pool, user)?.bytes ?? 0) >= bytes || poolHasRoom(pool, bytes);
}

/**
 * The offset of at least `bytes` (16-byte aligned) for `user` in the pool's
 * memory: the region it had, or a new one, twice as large as the old where
 * the memory has room, when that is too small. The contents are the user's
 * to manage; views of the memory taken before a pool allocation stop at the
 * length it had then (a shared memory's buffer never detaches): take new ones.
 */
export function poolScratch(pool: WorkerPool, user: string, bytes: number): number {
  let byUser = regions.get(pool);
  if (byUser === undefined) regions.set(pool, (byUser = new Map()));
  const have = byUser.get(user);
  if (have !== undefined && have.bytes >= bytes) return have.offset;
  const grown = Math.max(bytes, Math.min(Math.max(2 * (have?.bytes ?? 0), 1 << 16), room(pool)));
  const offset = pool.alloc(grown);
  byUser.set(user, { offset, bytes: grown });
  return offset;
}
