// Key/value storage for one cache: per layer, two tensors of
// [kvHeads, slots, headDim] written in place (kernels/cache_write.ts), or,
// given an entry memory (src/cache/types.ts, Memory), two arrays of that
// shape in it, given back when the storage grows and when it is disposed.
// Caches start small and grow (doubling) as the stream needs more slots, up
// to what their policy keeps, so a huge window costs nothing until a stream
// fills it; every size is checked against memory before it is allocated.
import * as tf from '@tensorflow/tfjs';
import { joinEntries } from '../../kernels/cache_read.js';
import { writeEntries, writeEntryArray, writeEntryPerHead } from '../../kernels/cache_write.js';
import { checkFits, checkRoomFits } from '../memory.js';
import type { CacheEntries, CacheShape, EntryMemory } from './types.js';

/** Slots a growing cache starts with (or its capacity, when smaller). */
export const INITIAL_SLOTS = 256;

/**
 * A zero tensor [kvHeads, slots, headDim]: tf.fill, which the wasm backend
 * fills in its own memory, where tf.zeros makes a JavaScript array of zeros
 * and copies it in (measured on wasm, [6, 256, 48]: 160 µs against 8; a
 * 15M model's cache of 256 slots is 12 of them, 1.9 ms, 15 µs a token of a
 * 128-token generate call).
 */
function zeroStorage(dims: [number, number, number]): tf.Tensor3D {
  return tf.fill(dims, 0, 'float32');
}

/** What an entry memory is, in a too-large error. */
const ENTRY_MEMORY = 'the memory its entries are kept in';

/** Runs of slots, [first slot, count] each, that a block's entries are joined from (EntryStorage.join). */
export type SlotRuns = [number, number][];

export class EntryStorage {
  /** Per layer, in tensors (no entry memory): [kvHeads, slots, headDim] each. */
  private readonly keys: tf.Tensor3D[] = [];
  private readonly values: tf.Tensor3D[] = [];
  /** Per layer, in the entry memory: [kvHeads, slots, headDim] each. */
  private readonly keyArrays: Float32Array[] = [];
  private readonly valueArrays: Float32Array[] = [];
  /** join's keys and values in the entry memory, [kvHeads, n, headDim] each: reused from block to block, grown on demand. */
  private joined: { keys: Float32Array; values: Float32Array } | undefined;
  private slotCount: number;

  /** `label` names the cache in a too-large error, e.g. "window(100000)"; `memory`: keep the entries there, not in tensors. */
  constructor(
    readonly shape: CacheShape,
    slots: number,
    readonly label: string,
    readonly memory?: EntryMemory,
  ) {
    this.checkFits(slots, 0);
    this.slotCount = slots;
    for (let layer = 0; layer < shape.layers; layer++) {
      if (memory !== undefined) {
        this.keyArrays.push(memory.alloc(this.layerFloats(slots))); // [kvHeads, slots, headDim]
        this.valueArrays.push(memory.alloc(this.layerFloats(slots))); // [kvHeads, slots, headDim]
      } else {
        const dims: [number, number, number] = [shape.kvHeads, slots, shape.headDim];
        this.keys.push(tf.keep(zeroStorage(dims)));
        this.values.push(tf.keep(zeroStorage(dims)));
      }
    }
  }

  get slots(): number {
    return this.slotCount;
  }

  get byteSize(): number {
    return this.bytesFor(this.slotCount);
  }

  private layerFloats(slots: number): number {
    return this.shape.kvHeads * slots * this.shape.headDim;
  }

  private bytesFor(slots: number): number {
    return 2 * this.shape.layers * this.layerFloats(slots) * 4;
  }

  /** `slots` slots fit next to what is allocated, less `freed` bytes released along the way. */
  private checkFits(slots: number, freed: number): void {
    const what = `${this.label} cache of ${slots} entries`;
    const largest = this.layerFloats(slots) * 4;
    // (in the entry memory, all layers in one region's room: a bound that ignores what growing gives back)
    if (this.memory !== undefined) checkRoomFits(what, this.bytesFor(slots), this.memory.room, ENTRY_MEMORY);
    else checkFits(what, this.bytesFor(slots) - freed, largest);
  }

  /**
   * Grow to at least `needed` slots (doubling, at most `capacity`), keeping
   * slots [0, used). Layer by layer, so the peak is one layer's copy.
   */
  reserve(needed: number, capacity: number, used: number): void {
    const target = Math.min(needed, capacity);
    if (target <= this.slotCount) return;
    let size = Math.max(1, this.slotCount);
    while (size < target) size *= 2;
    size = Math.min(size, capacity);
    this.checkFits(size, this.byteSize);
    const { kvHeads, headDim } = this.shape;
    const dims: [number, number, number] = [kvHeads, size, headDim];
    const memory = this.memory;
    for (let layer = 0; layer < this.shape.layers; layer++) {
      if (memory !== undefined) {
        for (const list of [this.keyArrays, this.valueArrays]) {
          const old = list[layer]!;
          const grown = memory.alloc(this.layerFloats(size)); // [kvHeads, size, headDim]
          for (let h = 0; h < kvHeads; h++) grown.set(old.subarray(h * this.slotCount * headDim, (h * this.slotCount + used) * headDim), h * size * headDim);
          memory.free(old);
          list[layer] = grown;
        }
        continue;
      }
      for (const list of [this.keys, this.values]) {
        const old = list[layer]!;
        let grown = tf.keep(zeroStorage(dims));
        if (used > 0) {
          const kept = old.slice([0, 0, 0], [kvHeads, used, headDim]);
          grown = writeEntries(grown, kept, 0, 0, used);
          kept.dispose();
        }
        old.dispose();
        list[layer] = grown;
      }
    }
    this.slotCount = size;
  }

  /** Write rows [from, from + count) of keys/values [kvHeads, T, headDim] to slots [slot, slot + count). */
  write(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D, slot: number, from = 0, count = keys.shape[1]): void {
    if (this.memory !== undefined) {
      writeEntryArray(this.keyArrays[layer]!, this.slotCount, keys, slot, from, count);
      writeEntryArray(this.valueArrays[layer]!, this.slotCount, values, slot, from, count);
      return;
    }
    this.keys[layer] = writeEntries(this.keys[layer]!, keys, slot, from, count);
    this.values[layer] = writeEntries(this.values[layer]!, values, slot, from, count);
  }

  /** Write row `from` of keys/values [kvHeads, T, headDim], kv head g to slot slots[g] (storage in tensors only). */
  writePerHead(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D, slots: ArrayLike<number>, from = 0): void {
    if (this.memory !== undefined) throw new Error('EntryStorage.writePerHead: only for storage in tensors');
    this.keys[layer] = writeEntryPerHead(this.keys[layer]!, keys, slots, from);
    this.values[layer] = writeEntryPerHead(this.values[layer]!, values, slots, from);
  }

  /** Every slot of a layer, as store returns them: [kvHeads, slots, headDim]. */
  entries(layer: number): CacheEntries {
    if (this.memory === undefined) return { keys: this.keys[layer]!, values: this.values[layer]! };
    const shape: [number, number, number] = [this.shape.kvHeads, this.slotCount, this.shape.headDim];
    return { memory: this.memory, shape, keys: this.keyArrays[layer]!, values: this.valueArrays[layer]! };
  }

  /**
   * A layer's slot runs, in order, then the block's entries keys/values
   * [kvHeads, T, headDim], joined along the entry axis: [kvHeads, n, headDim]
   * (new tensors, or, in the entry memory, arrays valid until the next join).
   */
  join(layer: number, runs: SlotRuns, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    const T = keys.shape[1];
    if (this.memory === undefined) {
      const joined = (stored: tf.Tensor3D, block: tf.Tensor3D) =>
        joinEntries([...runs.map(([slot, count]) => ({ entries: stored, start: slot, count })), { entries: block, start: 0, count: T }]);
      return { keys: joined(this.keys[layer]!, keys), values: joined(this.values[layer]!, values) };
    }
    const { kvHeads, headDim } = this.shape;
    const n = runs.reduce((sum, [, count]) => sum + count, 0) + T;
    const floats = kvHeads * n * headDim;
    if (this.joined === undefined || this.joined.keys.length < floats) {
      const grown = Math.max(floats, 2 * (this.joined?.keys.length ?? 0));
      this.freeJoined();
      checkRoomFits(`${this.label} cache's block of ${n} entries`, 8 * grown, this.memory.room, ENTRY_MEMORY);
      this.joined = { keys: this.memory.alloc(grown), values: this.memory.alloc(grown) };
    }
    const out = { keys: this.joined.keys.subarray(0, floats), values: this.joined.values.subarray(0, floats) }; // [kvHeads, n, headDim] each
    const shape: [number, number, number] = [kvHeads, n, headDim];
    const stored = { keys: this.keyArrays[layer]!, values: this.valueArrays[layer]! };
    for (const part of ['keys', 'values'] as const) {
      const to = out[part];
      const from = stored[part];
      for (let h = 0; h < kvHeads; h++) {
        let at = h * n * headDim;
        for (const [slot, count] of runs) {
          to.set(from.subarray((h * this.slotCount + slot) * headDim, (h * this.slotCount + slot + count) * headDim), at);
          at += count * headDim;
        }
      }
      writeEntryArray(to, n, part === 'keys' ? keys : values, n - T, 0, T);
    }
    return { memory: this.memory, shape, keys: out.keys, values: out.values };
  }

  private freeJoined(): void {
    if (this.joined === undefined) return;
    this.memory!.free(this.joined.keys);
    this.memory!.free(this.joined.values);
    this.joined = undefined;
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
    if (this.memory !== undefined) {
      for (const a of [...this.keyArrays, ...this.valueArrays]) this.memory.free(a);
      this.freeJoined();
    }
    this.keys.length = this.values.length = this.keyArrays.length = this.valueArrays.length = 0;
  }
}
