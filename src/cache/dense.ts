// Dense attention: every token sees every earlier token, at its stream index.
// Memory grows with the stream, and past the model's trained length the
// model meets distances it never saw: the paper's first failing baseline.
// Storage doubles when full, so appending stays amortised O(1) per token.
import type * as tf from '@tensorflow/tfjs';
import { EntryStorage, INITIAL_SLOTS } from './storage.js';
import type { KVCachePolicy } from './policies.js';
import { type BlockView, type CacheEntries, type CacheShape, type KVCache, type PlacedEntries, sharedLayers } from './types.js';

export class DenseCache implements KVCache {
  readonly policy: KVCachePolicy = { kind: 'dense' };
  readonly blockLimit = Infinity;
  private readonly storage: EntryStorage;
  private streamLength = 0;
  private block: { start: number; T: number } | undefined;

  constructor(shape: CacheShape, initialSlots = INITIAL_SLOTS, label = 'dense') {
    this.storage = new EntryStorage(shape, initialSlots, label, shape.entryMemory);
  }

  get length(): number {
    return this.streamLength;
  }

  get size(): number {
    return this.streamLength;
  }

  get byteSize(): number {
    return this.storage.byteSize;
  }

  begin(T: number): BlockView {
    if (this.block !== undefined) throw new Error('DenseCache.begin: the previous block was not ended');
    const start = this.streamLength;
    this.storage.reserve(start + T, Infinity, start);
    this.block = { start, T };
    const queryPositions = new Int32Array(T);
    const rowRanges = new Int32Array(2 * T);
    for (let i = 0; i < T; i++) {
      queryPositions[i] = start + i;
      rowRanges[2 * i + 1] = start + i + 1; // causal: entries 0..t
    }
    return sharedLayers(start, {
      keyPositions: queryPositions.slice(),
      frames: [{ queryPositions, keyStart: 0, keyEnd: start + T, rowRanges }],
      wantsAttention: false,
    });
  }

  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    if (this.block === undefined) throw new Error('DenseCache.store: call begin() first');
    this.storage.write(layer, keys, values, this.block.start);
    return this.storage.entries(layer);
  }

  /** A single token goes to slot `start`, the storage grown for it in begin. */
  place(layer: number): PlacedEntries | undefined {
    if (this.block === undefined) throw new Error('DenseCache.place: call begin() first');
    return this.block.T === 1 ? this.storage.place(layer, this.block.start) : undefined;
  }

  end(): void {
    if (this.block === undefined) throw new Error('DenseCache.end: no block begun');
    this.streamLength += this.block.T;
    this.block = undefined;
  }

  reset(): void {
    this.streamLength = 0;
    this.block = undefined;
  }

  dispose(): void {
    this.storage.dispose();
  }
}
