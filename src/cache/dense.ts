// Dense attention: every token sees every earlier token, at its stream index.
// Memory grows with the stream, and past the model's trained length the
// model meets distances it never saw: the paper's first failing baseline.
// Storage doubles when full, so appending stays amortised O(1) per token.
import type * as tf from '@tensorflow/tfjs';
import { EntryStorage } from './storage.js';
import { type BlockView, type CacheEntries, type CacheShape, type KVCache, type KVCachePolicy, sharedLayers } from './types.js';

export class DenseCache implements KVCache {
  readonly policy: KVCachePolicy = { kind: 'dense' };
  readonly blockLimit = Infinity;
  private storage: EntryStorage;
  private streamLength = 0;
  private block: { start: number; T: number } | undefined;

  constructor(
    private readonly shape: CacheShape,
    initialSlots = 256,
  ) {
    this.storage = new EntryStorage(shape, initialSlots);
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
    this.reserve(start + T);
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
    return { keys: this.storage.keys[layer]!, values: this.storage.values[layer]! };
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

  /** Grow storage to at least `slots`, doubling, keeping what is stored. */
  private reserve(slots: number): void {
    if (slots <= this.storage.slots) return;
    let size = this.storage.slots;
    while (size < slots) size *= 2;
    const grown = new EntryStorage(this.shape, size);
    for (let layer = 0; layer < this.shape.layers && this.streamLength > 0; layer++) {
      const old = this.storage.read(layer, 0, this.streamLength);
      grown.write(layer, old.keys, old.values, 0);
      old.keys.dispose();
      old.values.dispose();
    }
    this.storage.dispose();
    this.storage = grown;
  }
}
