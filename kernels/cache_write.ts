// Writing new entries into a KV cache's storage.
//
// On wasm and cpu the rows are copied straight into the storage tensor's
// memory: O(T) per write however large the cache. Elsewhere (tensorflow
// backend) tensors are out of reach and the write builds a new storage
// tensor, a copy of the whole cache per call: for the 15M shape with 256
// entries, 3.4 MiB of keys and values per token. Not measured: tfjs-node
// cannot be installed on the machine this was written on.
import * as tf from '@tensorflow/tfjs';
import { float32View, hasDirectMemory } from './paths.js';
import { simdLoops } from './simd/instance.js';

/**
 * Runs of at most this many floats are copied by a loop: copyWithin's call
 * cost more than the copy (a decode step writes one entry of each kv head
 * per layer, keys and values: 12 µs of a 15M q8 step's 0.9 ms).
 */
const SHORT_RUN = 256;

/**
 * The whole buffer as floats where both views lie in it (the wasm heap), so
 * that rows move with copyWithin: `set` between two views of one buffer
 * copies the source aside first, in case they overlap.
 */
function sharedHeap(src: Float32Array, dst: Float32Array): Float32Array | undefined {
  return src.buffer === dst.buffer ? new Float32Array(dst.buffer) : undefined;
}

/**
 * Entries [from, from + count) of src [kvHeads, T, headDim] into dst
 * [kvHeads, capacity, headDim] at slots [slot, slot + count), a kv head's
 * run by a loop when short, else by `set` (so dst and src are views of
 * different buffers, or a short run's, not overlapping).
 */
function copyEntryRuns(
  dst: Float32Array,
  capacity: number,
  src: Float32Array,
  T: number,
  kvHeads: number,
  headDim: number,
  slot: number,
  from: number,
  count: number,
): void {
  const run = count * headDim; // floats a kv head
  for (let h = 0; h < kvHeads; h++) {
    const to = (h * capacity + slot) * headDim;
    const at = (h * T + from) * headDim;
    if (run <= SHORT_RUN) for (let i = 0; i < run; i++) dst[to + i] = src[at + i]!;
    else dst.set(src.subarray(at, at + run), to);
  }
}

/**
 * Write entries [from, from + count) of rows: [kvHeads, T, headDim] (all
 * of them by default) into storage: [kvHeads, capacity, headDim] at slots
 * [slot, slot + count). `rows` and `storage` are different tensors (a
 * short run is copied front to back, which overlapping views would not
 * survive). Returns the tensor that now holds the storage: `storage`
 * itself when written in place, otherwise a new kept tensor (and `storage`
 * is disposed).
 */
export function writeEntries(storage: tf.Tensor3D, rows: tf.Tensor3D, slot: number, from = 0, count = rows.shape[1] - from): tf.Tensor3D {
  const [kvHeads, capacity, headDim] = storage.shape;
  const T = rows.shape[1];
  if (slot < 0 || slot + count > capacity) throw new Error(`writeEntries: slots [${slot}, ${slot + count}) outside capacity ${capacity}`);
  if (from < 0 || from + count > T) throw new Error(`writeEntries: entries [${from}, ${from + count}) outside the ${T} given`);
  if (hasDirectMemory()) {
    const src = float32View(rows);
    const dst = float32View(storage);
    const run = count * headDim; // floats a kv head
    if (run <= SHORT_RUN) {
      // a decode step's entry: by the SIMD loop where both lie in the wasm heap and a run is whole v128s
      const simd = run % 4 === 0 ? simdLoops([src, dst]) : undefined;
      if (simd !== undefined) {
        const rowBytes = 4 * headDim;
        simd.copyRows(src.byteOffset + from * rowBytes, T * rowBytes, dst.byteOffset + slot * rowBytes, capacity * rowBytes, kvHeads, 4 * run);
        return storage;
      }
    }
    const heap = run > SHORT_RUN ? sharedHeap(src, dst) : undefined;
    if (heap !== undefined) {
      const s = src.byteOffset / 4;
      const d = dst.byteOffset / 4;
      for (let h = 0; h < kvHeads; h++)
        heap.copyWithin(d + (h * capacity + slot) * headDim, s + (h * T + from) * headDim, s + (h * T + from + count) * headDim);
      return storage;
    }
    copyEntryRuns(dst, capacity, src, T, kvHeads, headDim, slot, from, count);
    return storage;
  }
  const next = tf.keep(
    tf.tidy(() => {
      const parts: tf.Tensor3D[] = [];
      if (slot > 0) parts.push(storage.slice([0, 0, 0], [kvHeads, slot, headDim]));
      parts.push(from === 0 && count === T ? rows : rows.slice([0, from, 0], [kvHeads, count, headDim]));
      if (slot + count < capacity) parts.push(storage.slice([0, slot + count, 0], [kvHeads, capacity - slot - count, headDim]));
      return tf.concat(parts, 1);
    }),
  );
  storage.dispose();
  return next;
}

/**
 * Write entry `from` of rows: [kvHeads, T, headDim] into storage:
 * [kvHeads, capacity, headDim], kv head g at slot slots[g]: for a cache
 * whose kv heads evict different entries (src/cache/h2o.ts). Returns the
 * storage tensor, as writeEntries does.
 */
export function writeEntryPerHead(storage: tf.Tensor3D, rows: tf.Tensor3D, slots: ArrayLike<number>, from = 0): tf.Tensor3D {
  const [kvHeads, capacity, headDim] = storage.shape;
  const T = rows.shape[1];
  if (slots.length !== kvHeads) throw new Error(`writeEntryPerHead: ${slots.length} slots for ${kvHeads} kv heads`);
  for (let h = 0; h < kvHeads; h++) {
    if (!(slots[h]! >= 0 && slots[h]! < capacity)) throw new Error(`writeEntryPerHead: slot ${slots[h]} outside capacity ${capacity}`);
  }
  if (from < 0 || from >= T) throw new Error(`writeEntryPerHead: entry ${from} outside the ${T} given`);
  if (hasDirectMemory()) {
    const src = float32View(rows);
    const dst = float32View(storage);
    const heap = sharedHeap(src, dst);
    if (heap !== undefined) {
      const s = src.byteOffset / 4;
      const d = dst.byteOffset / 4;
      for (let h = 0; h < kvHeads; h++)
        heap.copyWithin(d + (h * capacity + slots[h]!) * headDim, s + (h * T + from) * headDim, s + (h * T + from + 1) * headDim);
      return storage;
    }
    for (let h = 0; h < kvHeads; h++) {
      dst.set(src.subarray((h * T + from) * headDim, (h * T + from + 1) * headDim), (h * capacity + slots[h]!) * headDim);
    }
    return storage;
  }
  // one head at a time, as writeEntries builds it, then the heads stacked again
  const next = tf.keep(
    tf.tidy(() => {
      const heads = Array.from({ length: kvHeads }, (_, h) => {
        const head = storage.slice([h, 0, 0], [1, capacity, headDim]);
        const row = rows.slice([h, from, 0], [1, 1, headDim]);
        const slot = slots[h]!;
        const parts: tf.Tensor3D[] = [];
        if (slot > 0) parts.push(head.slice([0, 0, 0], [1, slot, headDim]));
        parts.push(row);
        if (slot + 1 < capacity) parts.push(head.slice([0, slot + 1, 0], [1, capacity - slot - 1, headDim]));
        return tf.concat(parts, 1);
      });
      return tf.concat(heads, 0);
    }),
  );
  storage.dispose();
  return next;
}

/** The values of rows [kvHeads, T, headDim] to read: in place where the backend allows, else a copy. */
function rowValues(rows: tf.Tensor3D): Float32Array {
  return hasDirectMemory() ? float32View(rows) : (rows.dataSync() as Float32Array);
}

/**
 * writeEntries into storage kept as an array [kvHeads, capacity, headDim]
 * (a cache in memory outside the backend, src/cache/storage.ts): entries
 * [from, from + count) of rows [kvHeads, T, headDim] to slots [slot, slot +
 * count).
 */
export function writeEntryArray(storage: Float32Array, capacity: number, rows: tf.Tensor3D, slot: number, from = 0, count = rows.shape[1] - from): void {
  const [kvHeads, T, headDim] = rows.shape;
  if (storage.length !== kvHeads * capacity * headDim)
    throw new Error(`writeEntryArray: storage of ${storage.length} floats is not [${kvHeads}, ${capacity}, ${headDim}]`);
  if (slot < 0 || slot + count > capacity) throw new Error(`writeEntryArray: slots [${slot}, ${slot + count}) outside capacity ${capacity}`);
  if (from < 0 || from + count > T) throw new Error(`writeEntryArray: entries [${from}, ${from + count}) outside the ${T} given`);
  copyEntryRuns(storage, capacity, rowValues(rows), T, kvHeads, headDim, slot, from, count);
}
