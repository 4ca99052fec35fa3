// Writing new entries into a KV cache's storage.
//
// On wasm and cpu the rows are copied straight into the storage tensor's
// memory: O(T) per write however large the cache. Elsewhere (tensorflow
// backend) tensors are out of reach and the write builds a new storage
// tensor, a copy of the whole cache per call (measured in bench/RESULTS.md).
import * as tf from '@tensorflow/tfjs';
import { float32View, hasDirectMemory } from './memory.js';

/**
 * Write rows: [kvHeads, T, headDim] into storage: [kvHeads, capacity,
 * headDim] at slots [slot, slot + T). Returns the tensor that now holds the
 * storage: `storage` itself when written in place, otherwise a new kept
 * tensor (and `storage` is disposed).
 */
export function writeEntries(storage: tf.Tensor3D, rows: tf.Tensor3D, slot: number): tf.Tensor3D {
  const [kvHeads, capacity, headDim] = storage.shape;
  const T = rows.shape[1];
  if (slot < 0 || slot + T > capacity) throw new Error(`writeEntries: slots [${slot}, ${slot + T}) outside capacity ${capacity}`);
  if (hasDirectMemory()) {
    const src = float32View(rows);
    const dst = float32View(storage);
    for (let h = 0; h < kvHeads; h++) {
      dst.set(src.subarray(h * T * headDim, (h + 1) * T * headDim), (h * capacity + slot) * headDim);
    }
    return storage;
  }
  const next = tf.keep(
    tf.tidy(() => {
      const parts: tf.Tensor3D[] = [];
      if (slot > 0) parts.push(storage.slice([0, 0, 0], [kvHeads, slot, headDim]));
      parts.push(rows);
      if (slot + T < capacity) parts.push(storage.slice([0, slot + T, 0], [kvHeads, capacity - slot - T, headDim]));
      return tf.concat(parts, 1);
    }),
  );
  storage.dispose();
  return next;
}
