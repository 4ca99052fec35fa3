// Key/value storage for one cache: per layer, two tensors of
// [kvHeads, slots, headDim] written in place (kernels/cache_write.ts), or,
// given an entry memory (src/cache/types.ts, Memory), two arrays of that
// shape in it, given back when the storage grows and when it is disposed.
// The entry memory may hold less than the backend (a pooled model's 4 GiB
// hold its weights too: a 2.7B model's q8 matrices leave about 1.2 GiB), so
// storage that outgrows its room moves to tensors, as if it had been given
// none, instead of failing where tensors would hold it.
// Caches start small and grow (doubling) as the stream needs more slots, up
// to what their policy keeps, so a huge window costs nothing until a stream
// fills it; every size is checked against memory before it is allocated.
import * as tf from '@tensorflow/tfjs';
import { joinEntries, joinRunsInto } from '../../kernels/cache_read.js';
import { writeEntries, writeEntryArray, writeEntryPerHead } from '../../kernels/cache_write.js';
import { checkFits } from '../memory.js';
import { type CacheEntries, type CacheShape, type EntryMemory, entryTensors, type MemoryEntries, type PlacedEntries } from './types.js';

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

/** Runs of slots, [first slot, count] each, that a block's entries are joined from (EntryStorage.join). */
export type SlotRuns = [number, number][];

/** A copy of slots [slot, slot + count) of a layer (EntryStorage.copySlots), to put back where a block is abandoned. */
export interface SavedSlots {
  layer: number;
  slot: number;
  count: number;
  keys: Float32Array; // [kvHeads, count, headDim]
  values: Float32Array; // [kvHeads, count, headDim]
}

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
  /** Per layer, what memoryEntries last gave. */
  private readonly givenEntries: (MemoryEntries | undefined)[] = [];
  /** Per layer, what place last gave (given again, rewritten: a decode step asks every layer's each token). */
  private readonly givenPlaces: (PlacedEntries | undefined)[] = [];

  /** The entry memory the entries are kept in; undefined: tensors (none was given, or the storage outgrew its room). */
  private memory: EntryMemory | undefined;

  /** `label` names the cache in a too-large error, e.g. "window(100000)"; `memory`: keep the entries there while it has room, not in tensors. */
  constructor(
    readonly shape: CacheShape,
    slots: number,
    readonly label: string,
    memory?: EntryMemory,
  ) {
    this.memory = memory !== undefined && this.memoryHolds(memory, this.bytesFor(slots)) ? memory : undefined;
    this.checkFits(slots, 0);
    this.slotCount = slots;
    for (let layer = 0; layer < shape.layers; layer++) {
      if (this.memory !== undefined) {
        this.keyArrays.push(this.memory.alloc(this.layerFloats(slots))); // [kvHeads, slots, headDim]
        this.valueArrays.push(this.memory.alloc(this.layerFloats(slots))); // [kvHeads, slots, headDim]
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

  /** Whether `bytes` more fit in `memory` (all of them in its largest region: a bound that ignores what growing gives back). */
  private memoryHolds(memory: EntryMemory, bytes: number): boolean {
    return bytes <= memory.room;
  }

  /** `slots` slots fit next to what is allocated, less `freed` bytes released along the way (in tensors; in the entry memory, memoryHolds was asked). */
  private checkFits(slots: number, freed: number): void {
    if (this.memory !== undefined) return;
    checkFits(`${this.label} cache of ${slots} entries`, this.bytesFor(slots) - freed, this.layerFloats(slots) * 4);
  }

  /**
   * Move the entries out of the entry memory into tensors (all slots, all
   * layers), giving its arrays back: the storage has outgrown the room
   * there. `slots` slots in tensors are checked first (what it grows to), so
   * that a refusal leaves the storage as it was.
   */
  private moveToTensors(slots: number): void {
    const memory = this.memory!;
    checkFits(`${this.label} cache of ${slots} entries`, this.bytesFor(slots), this.layerFloats(slots) * 4);
    for (let layer = 0; layer < this.shape.layers; layer++) {
      // (copies: the memory hands the arrays' regions out again)
      const { keys, values } = entryTensors(this.entries(layer));
      this.keys.push(tf.keep(keys));
      this.values.push(tf.keep(values));
    }
    for (const a of [...this.keyArrays, ...this.valueArrays]) memory.free(a);
    this.keyArrays.length = this.valueArrays.length = this.givenEntries.length = this.givenPlaces.length = 0;
    this.freeJoined();
    this.memory = undefined;
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
    if (this.memory !== undefined && !this.memoryHolds(this.memory, this.bytesFor(size))) this.moveToTensors(size);
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

  /** A copy of slots [slot, slot + count) of a layer's keys and values, in arrays of their own (restore puts it back). */
  copySlots(layer: number, slot: number, count: number): SavedSlots {
    const { kvHeads, headDim } = this.shape;
    const copy = (stored: tf.Tensor3D | undefined, array: Float32Array | undefined): Float32Array => {
      if (stored !== undefined) {
        const part = stored.slice([0, slot, 0], [kvHeads, count, headDim]); // [kvHeads, count, headDim]
        const floats = (part.dataSync() as Float32Array).slice();
        part.dispose();
        return floats;
      }
      const floats = new Float32Array(kvHeads * count * headDim); // [kvHeads, count, headDim]
      for (let h = 0; h < kvHeads; h++)
        floats.set(array!.subarray((h * this.slotCount + slot) * headDim, (h * this.slotCount + slot + count) * headDim), h * count * headDim);
      return floats;
    };
    const inMemory = this.memory !== undefined;
    return {
      layer,
      slot,
      count,
      keys: copy(inMemory ? undefined : this.keys[layer], this.keyArrays[layer]),
      values: copy(inMemory ? undefined : this.values[layer], this.valueArrays[layer]),
    };
  }

  /** Put back the slots copySlots copied (the storage may have moved to tensors since). */
  restore(saved: SavedSlots): void {
    const dims: [number, number, number] = [this.shape.kvHeads, saved.count, this.shape.headDim];
    const keys = tf.tensor3d(saved.keys, dims);
    const values = tf.tensor3d(saved.values, dims);
    try {
      this.write(saved.layer, keys, values, saved.slot);
    } finally {
      tf.dispose([keys, values]); // (a write that throws, too: restore runs where a block failed, whose caller goes on)
    }
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
    return this.memoryEntries(layer, this.memory);
  }

  /**
   * Every slot of a layer, as entries() returns them, with `slot` for the
   * model to write a new entry into itself (KVCache.place); undefined for
   * storage in tensors. Nothing moves the arrays until the next reserve or
   * join. The layer's object of the call before, rewritten.
   */
  place(layer: number, slot: number): PlacedEntries | undefined {
    if (this.memory === undefined) return undefined;
    const entries = this.memoryEntries(layer, this.memory);
    const placed = this.givenPlaces[layer];
    if (placed === undefined) return (this.givenPlaces[layer] = { entries, at: slot });
    placed.entries = entries;
    placed.at = slot;
    return placed;
  }

  /**
   * A layer's entries in the entry memory: the object given before while
   * its arrays, size and memory are the same (a decode step asks every
   * layer's each token: no new objects while nothing moved).
   */
  private memoryEntries(layer: number, memory: EntryMemory): MemoryEntries {
    const keys = this.keyArrays[layer]!;
    const values = this.valueArrays[layer]!;
    const given = this.givenEntries[layer];
    if (given !== undefined && given.keys === keys && given.values === values && given.memory === memory && given.shape[1] === this.slotCount) return given;
    const shape: [number, number, number] = [this.shape.kvHeads, this.slotCount, this.shape.headDim];
    const entries = { memory, shape, keys, values };
    this.givenEntries[layer] = entries;
    return entries;
  }

  /**
   * A layer's slot runs, in order, then the block's entries keys/values
   * [kvHeads, T, headDim], joined along the entry axis: [kvHeads, n, headDim]
   * (new tensors, or, in the entry memory, arrays valid until the next join).
   */
  join(layer: number, runs: SlotRuns, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    const T = keys.shape[1];
    const { kvHeads, headDim } = this.shape;
    const n = runs.reduce((sum, [, count]) => sum + count, 0) + T;
    const floats = kvHeads * n * headDim;
    if (this.memory !== undefined && (this.joined === undefined || this.joined.keys.length < floats)) {
      const grown = Math.max(floats, 2 * (this.joined?.keys.length ?? 0));
      this.freeJoined();
      if (this.memoryHolds(this.memory, 8 * grown)) this.joined = { keys: this.memory.alloc(grown), values: this.memory.alloc(grown) };
      else this.moveToTensors(this.slotCount);
    }
    if (this.memory === undefined || this.joined === undefined) {
      const joined = (stored: tf.Tensor3D, block: tf.Tensor3D) =>
        joinEntries([...runs.map(([slot, count]) => ({ entries: stored, start: slot, count })), { entries: block, start: 0, count: T }]);
      return { keys: joined(this.keys[layer]!, keys), values: joined(this.values[layer]!, values) };
    }
    const out = { keys: this.joined.keys.subarray(0, floats), values: this.joined.values.subarray(0, floats) }; // [kvHeads, n, headDim] each
    const shape: [number, number, number] = [kvHeads, n, headDim];
    const stored = { keys: this.keyArrays[layer]!, values: this.valueArrays[layer]! };
    const starts = runs.map(([slot]) => slot);
    const counts = runs.map(([, count]) => count);
    for (const part of ['keys', 'values'] as const) {
      // the slot runs, then the block's entries after them
      joinRunsInto(
        out[part],
        n,
        runs.map(() => stored[part]),
        runs.map(() => this.slotCount),
        starts,
        counts,
        kvHeads,
        headDim,
      );
      writeEntryArray(out[part], n, part === 'keys' ? keys : values, n - T, 0, T);
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
    this.keys.length = this.values.length = this.keyArrays.length = this.valueArrays.length = this.givenEntries.length = this.givenPlaces.length = 0;
  }
}
