// Operand space in a worker pool's shared memory: each user of the pool (the
// products, attention, the token NLLs) keeps one region, grown on demand and
// never shrunk or freed (the pool's memory lives as long as its model).
import type { WorkerPool } from './pool.js';

const regions = new WeakMap<WorkerPool, Map<string, { offset: number; bytes: number }>>();

/**
 * The offset of at least `bytes` (16-byte aligned) for `user` in the pool's
 * memory: the region it had, or a new one twice as large when that is too
 * small. The contents are the user's to manage; a pool allocation detaches
 * views of the memory taken before it.
 */
export function poolScratch(pool: WorkerPool, user: string, bytes: number): number {
  let byUser = regions.get(pool);
  if (byUser === undefined) regions.set(pool, (byUser = new Map()));
  const have = byUser.get(user);
  if (have !== undefined && have.bytes >= bytes) return have.offset;
  const grown = Math.max(bytes, 2 * (have?.bytes ?? 0), 1 << 16);
  const offset = pool.alloc(grown);
  byUser.set(user, { offset, bytes: grown });
  return offset;
}
