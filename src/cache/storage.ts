// Fixed-size key/value storage for one cache: per layer, two tensors of
// [kvHeads, slots, headDim] written in place (kernels/cache_write.ts).
import * as tf from '@tensorflow/tfjs';
import { writeEntries, writeEntryPerHead } from '../../kernels/cache_write.js';
import type { CacheShape } from './types.js';

export class EntryStorage {
  readonly keys: tf.Tensor3D[];
  readonly values: tf.Tensor3D[];

  constructor(
    readonly shape: CacheShape,
    readonly slots: number,
  ) {
    const dims: [number, number, number] = [shape.kvHeads, slots, shape.headDim];
    this.keys = Array.from({ length: shape.layers }, () => tf.keep(tf.zeros(dims)));
    this.values = Array.from({ length: shape.layers }, () => tf.keep(tf.zeros(dims)));
  }

  get byteSize(): number {
    return 2 * this.shape.layers * this.shape.kvHeads * this.slots * this.shape.headDim * 4;
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
