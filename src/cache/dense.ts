// Dense attention: every token sees every earlier token, at its stream index.
// Memory grows with the stream, and past the model's trained length the
// model meets distances it never saw: the paper's first failing baseline.
// Storage doubles when full, so appending stays amortised O(1) per token.
import type * as tf from '@tensorflow/tfjs';
import { EntryStorage, INITIAL_SLOTS } from './storage.js';
import type { KVCachePolicy } from './policies.js';
import { ReusedView } from './reused_view.js';
import type { BlockView, CacheEntries, CacheShape, KVCache, PlacedEntries } from './types.js';

export class DenseCache implements KVCache {
  readonly policy: KVCachePolicy = { kind: 'dense' };
  readonly blockLimit = Infinity;
  private readonly storage: EntryStorage;
  private streamLength = 0;
  /** Tokens of the block begun (it starts at streamLength); undefined when none is. */
  private blockTokens: number | undefined;
  private readonly view = new ReusedView(1);

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
    if (this.blockTokens !== undefined) throw new Error('DenseCache.begin: the previous block was not ended');
    const start = this.streamLength;
    this.storage.reserve(start + T, Infinity, start);
    this.blockTokens = T;
    const view = this.view.begin(start, T);
    const frame = view.frames[0]!;
    for (let i = 0; i < T; i++) {
      view.keyPositions[i] = frame.queryPositions[i] = start + i;
      frame.rowRanges[2 * i] = 0;
      frame.rowRanges[2 * i + 1] = start + i + 1; // causal: entries 0..t
    }
    frame.keyStart = 0;
    frame.keyEnd = start + T;
    return this.view.block;
  }

  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    if (this.blockTokens === undefined) throw new Error('DenseCache.store: call begin() first');
    this.storage.write(layer, keys, values, this.streamLength);
    return this.storage.entries(layer);
  }

  /** A single token goes to slot `start`, the storage grown for it in begin. */
  place(layer: number): PlacedEntries | undefined {
    if (this.blockTokens === undefined) throw new Error('DenseCache.place: call begin() first');
    return this.blockTokens === 1 ? this.storage.place(layer, this.streamLength) : undefined;
  }

  end(): void {
    if (this.blockTokens === undefined) throw new Error('DenseCache.end: no block begun');
    this.streamLength += this.blockTokens;
    this.blockTokens = undefined;
  }

  /** Nothing to undo: the block's slots are past the stream, seen by no later query until written again. */
  abandon(): void {
    if (this.blockTokens === undefined) throw new Error('DenseCache.abandon: no block begun');
    this.blockTokens = undefined;
  }

  reset(): void {
    this.streamLength = 0;
    this.blockTokens = undefined;
  }

  dispose(): void {
    this.storage.dispose();
  }
}
