// Regions of a worker pool's shared memory that are given back: for what
// grows and goes while the pool lives (a KV cache kept in the pool's memory,
// src/cache/storage.ts), where the pool's own alloc (a bump allocator, never
// freed: weights and operand space live as long as the model) would leak
// with every cache that grows, resets or is disposed.
//
// A free list in offset order: alloc takes the smallest free region that is
// large enough (its front; the rest stays free), else asks the pool for a
// new one; free merges a region with its free neighbours. So a cache that
// doubles reuses what the smaller copies left once they add up, and any
// sequence of caches needs at most what the most of them alive at once held
// plus what fragments between: a long stream or many caches do not grow the
// pool's memory without bound.
import { POOL_MAX_BYTES, type WorkerPool } from './pool.js';

const align16 = (n: number) => Math.ceil(n / 16) * 16;

export class PoolRegions {
  /** Free regions, in offset order, none adjacent to another. */
  private readonly free: { offset: number; bytes: number }[] = [];
  /** Regions handed out: offset -> bytes. */
  private readonly held = new Map<number, number>();

  constructor(readonly pool: WorkerPool) {}

  /** Bytes held by regions handed out and not given back. */
  get heldBytes(): number {
    let sum = 0;
    for (const bytes of this.held.values()) sum += bytes;
    return sum;
  }

  /** Bytes on the free list. */
  get freeBytes(): number {
    return this.free.reduce((sum, r) => sum + r.bytes, 0);
  }

  /** The largest region alloc can give now without failing. */
  get room(): number {
    return this.roomLeaving(0);
  }

  /**
   * The largest region alloc can give now and leave `spare` bytes of the
   * pool's fresh memory to the pool's own allocations (its operand and
   * result regions grow on demand, by pool.alloc: a free region here is no
   * use to them).
   */
  roomLeaving(spare: number): number {
    const fresh = POOL_MAX_BYTES - align16(this.pool.allocatedBytes) - spare;
    return this.free.reduce((most, r) => Math.max(most, r.bytes), Math.max(0, fresh));
  }

  /** A region of at least `bytes` (16-byte aligned), filled with zeros; its offset. Throws the pool's RangeError when the memory is full. */
  alloc(bytes: number): number {
    if (!(Number.isInteger(bytes) && bytes >= 0)) throw new RangeError(`PoolRegions.alloc: bytes must be an integer >= 0, got ${bytes}`);
    const size = Math.max(16, align16(bytes));
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const r = this.free[i]!;
      if (r.bytes >= size && (best < 0 || r.bytes < this.free[best]!.bytes)) best = i;
    }
    let offset: number;
    if (best >= 0) {
      const r = this.free[best]!;
      offset = r.offset;
      if (r.bytes === size) this.free.splice(best, 1);
      else {
        r.offset += size;
        r.bytes -= size;
      }
      this.pool.bytes().fill(0, offset, offset + size);
    } else {
      offset = this.pool.alloc(size); // (fresh memory is zeros)
    }
    this.held.set(offset, size);
    return offset;
  }

  /** `floats` zeros in a new region, as an array over the pool's memory (valid however the memory grows: it is shared). */
  allocFloats(floats: number): Float32Array {
    const offset = this.alloc(4 * floats); // (first: it may grow the memory, whose buffer is then a new, longer object)
    return new Float32Array(this.pool.memory.buffer, offset, floats);
  }

  /** Give back the region of an array allocFloats returned. */
  releaseFloats(array: Float32Array): void {
    this.release(array.byteOffset);
  }

  /** Give back a region alloc returned. */
  release(offset: number): void {
    const bytes = this.held.get(offset);
    if (bytes === undefined) throw new Error(`PoolRegions.release: no region at ${offset}`);
    this.held.delete(offset);
    let i = 0;
    while (i < this.free.length && this.free[i]!.offset < offset) i++;
    const before = this.free[i - 1];
    const after = this.free[i];
    if (before !== undefined && before.offset + before.bytes === offset) {
      before.bytes += bytes;
      if (after !== undefined && before.offset + before.bytes === after.offset) {
        before.bytes += after.bytes;
        this.free.splice(i, 1);
      }
    } else if (after !== undefined && offset + bytes === after.offset) {
      after.offset = offset;
      after.bytes += bytes;
    } else {
      this.free.splice(i, 0, { offset, bytes });
    }
  }
}

const byPool = new WeakMap<WorkerPool, PoolRegions>();

/** The pool's one list of regions (everyone who frees regions of a pool shares it). */
export function poolRegions(pool: WorkerPool): PoolRegions {
  let regions = byPool.get(pool);
  if (regions === undefined) byPool.set(pool, (regions = new PoolRegions(pool)));
  return regions;
}
