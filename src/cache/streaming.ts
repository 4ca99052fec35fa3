// StreamingLLM's cache (Xiao et al. 2024): the first S tokens ("attention
// sinks") are kept forever, plus a rolling window of the last W tokens.
//
//   stream  0 1 2 3 4 5 6 7 8 9 10 11 12 13 ...          S = 4, W = 6, t = 13
//   kept    0 1 2 3 . . . . 8 9 10 11 12 13
//           sinks           window (13 is the new token)
//
// Token t sees 0..min(S, t+1)-1 and max(0, t-W+1)..t, a union: at most S + W
// entries, itself included. Sinks sit in slots 0..S-1; the window in a ring
// of W slots after them, so a decode step writes one slot and copies nothing.
// Until the stream first fills the cache, stream index j sits in slot j, so
// storage starts small and grows with the stream (a huge window costs only
// what the stream uses).
import type * as tf from '@tensorflow/tfjs';
import { ArgumentError } from '../errors.js';
import { EntryStorage, INITIAL_SLOTS, type SlotRuns } from './storage.js';
import { type KVCachePolicy, policyLabel } from './policies.js';
import { type BlockView, type CacheEntries, type CacheShape, type KVCache, type PlacedEntries, sharedLayers, type ViewFrame } from './types.js';

export class StreamingCache implements KVCache {
  readonly policy: KVCachePolicy;
  readonly blockLimit = Infinity;
  private readonly storage: EntryStorage;
  private streamLength = 0;
  private block: { start: number; T: number; composed: boolean } | undefined;

  constructor(
    readonly sinkCount: number,
    readonly windowSize: number,
    shape: CacheShape,
    initialSlots = INITIAL_SLOTS,
  ) {
    if (!Number.isInteger(sinkCount) || sinkCount < 0) throw new ArgumentError('sinkCount', `expected an integer >= 0, got ${sinkCount}`);
    if (!Number.isInteger(windowSize) || windowSize < 1) throw new ArgumentError('windowSize', `expected an integer >= 1, got ${windowSize}`);
    this.policy = sinkCount === 0 ? { kind: 'window', windowSize } : { kind: 'streaming', sinkCount, windowSize };
    this.storage = new EntryStorage(shape, Math.min(initialSlots, sinkCount + windowSize), policyLabel(this.policy), shape.entryMemory);
  }

  get length(): number {
    return this.streamLength;
  }

  get size(): number {
    const t = this.streamLength;
    return Math.min(this.sinkCount, t) + Math.min(this.windowSize, Math.max(0, t - this.sinkCount));
  }

  get byteSize(): number {
    return this.storage.byteSize;
  }

  /** Ring slot of stream index j >= S. */
  private slotOf(j: number): number {
    return this.sinkCount + ((j - this.sinkCount) % this.windowSize);
  }

  begin(T: number): BlockView {
    if (this.block !== undefined) throw new Error('StreamingCache.begin: the previous block was not ended');
    const start = this.streamLength;
    const S = this.sinkCount;
    const W = this.windowSize;
    // A single token is written first and attends to the storage as it is
    // (slot order does not matter to attention). A block attends to a
    // stream-ordered copy: sinks, the window's older entries, then the block.
    const composed = T > 1;
    this.storage.reserve(start + T, S + W, Math.min(start, S + W));
    this.block = { start, T, composed };
    const storedSinks = Math.min(S, start);
    const oldFrom = Math.max(S, start - W + 1); // oldest window entry the block needs
    const oldCount = Math.max(0, start - oldFrom);
    const entryOf = (j: number): number => {
      if (!composed) return j < S ? j : this.slotOf(j);
      if (j < storedSinks) return j;
      if (j < start) return storedSinks + (j - oldFrom);
      return storedSinks + oldCount + (j - start);
    };
    const entryCount = composed ? storedSinks + oldCount + T : this.storage.slots;

    const keyPositions = new Int32Array(T);
    const bandPositions = new Int32Array(T);
    const bandRanges = new Int32Array(2 * T);
    const sinkPositions = new Int32Array(T);
    const sinkRanges = new Int32Array(2 * T);
    for (let i = 0; i < T; i++) {
      const t = start + i;
      keyPositions[i] = t;
      const bandLo = Math.max(0, t - W + 1);
      const sinksOutside = Math.min(S, bandLo); // sinks not already in the window
      // window frame: stream bandLo..t at distance t - j
      bandPositions[i] = t;
      if (composed || t < S) {
        bandRanges[2 * i] = entryOf(bandLo);
        bandRanges[2 * i + 1] = entryOf(t) + 1;
      } else {
        // in the ring every filled slot is in the window; sinks inside it precede the ring
        bandRanges[2 * i] = Math.min(bandLo, S);
        bandRanges[2 * i + 1] = S + Math.min(W, t - S + 1);
      }
      // sink frame: stream 0..sinksOutside-1, query at n - 1 of the re-encoded cache
      sinkPositions[i] = sinksOutside + (t - bandLo + 1) - 1;
      sinkRanges[2 * i] = 0;
      sinkRanges[2 * i + 1] = sinksOutside;
    }
    const frames: ViewFrame[] = [{ queryPositions: bandPositions, keyStart: 0, keyEnd: entryCount, rowRanges: bandRanges }];
    if (S > 0) frames.push({ queryPositions: sinkPositions, keyStart: 0, keyEnd: Math.min(S, entryCount), rowRanges: sinkRanges });
    return sharedLayers(start, { keyPositions, frames, wantsAttention: false });
  }

  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    const block = this.block;
    if (block === undefined) throw new Error('StreamingCache.store: call begin() first');
    if (!block.composed) {
      this.writeBlock(layer, keys, values);
      return this.storage.entries(layer);
    }
    const entries = this.composeEntries(layer, keys, values);
    this.writeBlock(layer, keys, values);
    return entries;
  }

  /** A single token (never composed) goes where writeBlock would write it: its sink slot, or its ring slot. */
  place(layer: number): PlacedEntries | undefined {
    const block = this.block;
    if (block === undefined) throw new Error('StreamingCache.place: call begin() first');
    if (block.T !== 1) return undefined;
    const j = block.start;
    return this.storage.place(layer, j < this.sinkCount ? j : this.slotOf(j));
  }

  end(): void {
    if (this.block === undefined) throw new Error('StreamingCache.end: no block begun');
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

  /** Sinks, then the window's older entries in stream order, then the block: a copy (EntryStorage.join). */
  private composeEntries(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    const { start } = this.block!;
    const S = this.sinkCount;
    const slotRuns: SlotRuns = []; // [first slot, count], in stream order
    const storedSinks = Math.min(S, start);
    if (storedSinks > 0) slotRuns.push([0, storedSinks]);
    // ring slots of stream oldFrom..start-1: one run, or two when it wraps
    for (let j = Math.max(S, start - this.windowSize + 1); j < start;) {
      const slot = this.slotOf(j);
      const run = Math.min(start - j, S + this.windowSize - slot);
      slotRuns.push([slot, run]);
      j += run;
    }
    return this.storage.join(layer, slotRuns, keys, values);
  }

  /** Write the block's entries that the cache keeps: sinks, and the last W of the rest. */
  private writeBlock(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): void {
    const { start, T } = this.block!;
    const S = this.sinkCount;
    const end = start + T;
    if (start < S) this.storage.write(layer, keys, values, start, 0, Math.min(S, end) - start);
    for (let j = Math.max(S, start, end - this.windowSize); j < end;) {
      const slot = this.slotOf(j);
      const run = Math.min(end - j, S + this.windowSize - slot);
      this.storage.write(layer, keys, values, slot, j - start, run);
      j += run;
    }
  }
}
