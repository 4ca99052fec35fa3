// Key/value storage for one cache: per layer, two tensors of
// [kvHeads, slots, headDim] written in place (kernels/cache_write.ts).
// Caches start small and grow (doubling) as the stream needs more slots, up
// to what their policy keeps, so a huge window costs nothing until a stream
// fills it; every size is checked against memory before it is allocated.
import * as tf from '@tensorflow/tfjs';
import { writeEntries, writeEntryPerHead } from '../../kernels/cache_write.js';
import { checkFits } from '../memory.js';
import type { CacheShape } from './types.js';

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

export class EntryStorage {
  readonly keys: tf.Tensor3D[];
  readonly values: tf.Tensor3D[];
  private slotCount: number;

  /** `label` names the cache in a too-large error, e.g. "window(100000)". */
  constructor(
    readonly shape: CacheShape,
    slots: number,
    readonly label: string,
  ) {
    this.checkFits(slots, 0);
    this.slotCount = slots;
    const dims: [number, number, number] = [shape.kvHeads, slots, shape.headDim];
    this.keys = Array.from({ length: shape.layers }, () => tf.keep(zeroStorage(dims)));
    this.values = Array.from({ length: shape.layers }, () => tf.keep(zeroStorage(dims)));
  }

  get slots(): number {
    return this.slotCount;
  }

  get byteSize(): number {
    return this.bytesFor(this.slotCount);
  }

  private bytesFor(slots: number): number {
    return 2 * this.shape.layers * this.shape.kvHeads * slots * this.shape.headDim * 4;
  }

  /** `slots` slots fit next to what is allocated, less `freed` bytes released along the way. */
  private checkFits(slots: number, freed: number): void {
    const { kvHeads, headDim } = this.shape;
    checkFits(`${this.label} cache of ${slots} entries`, this.bytesFor(slots) - freed, kvHeads * slots * headDim * 4);
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
    for (let layer = 0; layer < this.shape.layers; layer++) {
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
    this.keys[layer] = writeEntries(this.keys[layer]!, keys, slot, from, count);
    this.values[layer] = writeEntries(this.values[layer]!, values, slot, from, count);
  }

  /** Write row `from` of keys/values [kvHeads, T, headDim], kv head g to slot slots[g]. */
  writePerHead(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D, slots: ArrayLike<number>, from = 0): void {
    this.keys[layer] = writeEntryPerHead(this.keys[layer]!, keys, slots, from);
    this.values[layer] = writeEntryPerHead(this.values[layer]!, values, slots, from);
  }

  /** Slots [slot, slot + count) of a layer, as new tensors. */
  read(layer: number, slot: number, count: number): { keys: tf.Tensor3D; values: tf.Tensor3D } {
    const { kvHeads, headDim } = this.shape;
    return {
      keys: this.keys[layer]!.slice([0, slot, 0], [kvHeads, count, headDim]),
      values: this.values[layer]!.slice([0, slot, 0], [kvHeads, count, headDim]),
    };
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
  }
}
