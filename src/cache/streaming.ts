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
import { EntryStorage, INITIAL_SLOTS, type SavedSlots, type SlotRuns } from './storage.js';
import { type KVCachePolicy, policyLabel } from './policies.js';
import { ReusedView } from './reused_view.js';
import type { BlockView, CacheEntries, CacheShape, KVCache, PlacedEntries } from './types.js';

export class StreamingCache implements KVCache {
  readonly policy: KVCachePolicy;
  readonly blockLimit = Infinity;
  private readonly storage: EntryStorage;
  private streamLength = 0;
  /** Tokens of the block begun (it starts at streamLength); undefined when none is. */
  private blockTokens: number | undefined;
  /** Each block's view: the window's frame, then (with sinks) the sinks'. */
  private readonly view: ReusedView;
  /** The kept entries the block begun has overwritten (a block of several tokens), put back if it is abandoned. */
  private readonly overwritten: SavedSlots[] = [];
  /** Why the window's entries are not to be trusted until reset(): an abandon whose restore threw (begin refuses until then). */
  private broken: string | undefined;

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
    this.view = new ReusedView(sinkCount > 0 ? 2 : 1);
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
    if (this.blockTokens !== undefined) throw new Error(`${this.constructor.name}.begin: the previous block was not ended`);
    if (this.broken !== undefined) throw new Error(`${this.constructor.name}.begin: ${this.broken}; reset() the cache`);
    const start = this.streamLength;
    const S = this.sinkCount;
    const W = this.windowSize;
    // A single token is written first and attends to the storage as it is
    // (slot order does not matter to attention). A block attends to a
    // stream-ordered copy: sinks, the window's older entries, then the block.
    const composed = T > 1;
    this.storage.reserve(start + T, S + W, Math.min(start, S + W));
    this.blockTokens = T;
    const entryCount = composed ? this.composedEntry(start + T - 1, start) + 1 : this.storage.slots; // (composed: up to the block's last token)
    const view = this.view.begin(start, T);
    const band = view.frames[0]!; // the window's frame: stream bandLo..t at distance t - j
    band.keyStart = 0;
    band.keyEnd = entryCount;
    const sinks = view.frames[1]; // the sinks' (S > 0): stream 0..sinksOutside-1, query at n - 1 of the re-encoded cache
    if (sinks !== undefined) {
      sinks.keyStart = 0;
      sinks.keyEnd = Math.min(S, entryCount);
    }
    for (let i = 0; i < T; i++) {
      const t = start + i;
      view.keyPositions[i] = t;
      const bandLo = Math.max(0, t - W + 1);
      band.queryPositions[i] = t;
      if (composed) {
        band.rowRanges[2 * i] = this.composedEntry(bandLo, start);
        band.rowRanges[2 * i + 1] = this.composedEntry(t, start) + 1;
      } else if (t < S) {
        // a sink: stream index j sits in slot j
        band.rowRanges[2 * i] = bandLo;
        band.rowRanges[2 * i + 1] = t + 1;
      } else {
        // in the ring every filled slot is in the window; sinks inside it precede the ring
        band.rowRanges[2 * i] = Math.min(bandLo, S);
        band.rowRanges[2 * i + 1] = S + Math.min(W, t - S + 1);
      }
      if (sinks === undefined) continue;
      const sinksOutside = Math.min(S, bandLo); // sinks not already in the window
      sinks.queryPositions[i] = sinksOutside + (t - bandLo + 1) - 1;
      sinks.rowRanges[2 * i] = 0;
      sinks.rowRanges[2 * i + 1] = sinksOutside;
    }
    return this.view.block;
  }

  /** Where stream index j (a sink, or j >= the window's oldest entry that a block from `start` needs) lies in that block's stream-ordered copy (composeEntries). */
  private composedEntry(j: number, start: number): number {
    const storedSinks = Math.min(this.sinkCount, start);
    const oldFrom = Math.max(this.sinkCount, start - this.windowSize + 1); // oldest window entry the block needs
    if (j < storedSinks) return j;
    if (j < start) return storedSinks + (j - oldFrom);
    return storedSinks + Math.max(0, start - oldFrom) + (j - start);
  }

  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    const T = this.blockTokens;
    if (T === undefined) throw new Error(`${this.constructor.name}.store: call begin() first`);
    if (T > 1) {
      // (composed: see begin)
      const entries = this.composeEntries(layer, keys, values);
      this.saveOverwritten(layer);
      this.writeBlock(layer, keys, values);
      return entries;
    }
    this.writeBlock(layer, keys, values);
    return this.storage.entries(layer);
  }

  /** A single token (never composed) goes where writeBlock would write it: its sink slot, or its ring slot. */
  place(layer: number): PlacedEntries | undefined {
    const T = this.blockTokens;
    if (T === undefined) throw new Error(`${this.constructor.name}.place: call begin() first`);
    if (T !== 1) return undefined;
    const j = this.streamLength;
    return this.storage.place(layer, j < this.sinkCount ? j : this.slotOf(j));
  }

  end(): void {
    if (this.blockTokens === undefined) throw new Error(`${this.constructor.name}.end: no block begun`);
    this.streamLength += this.blockTokens;
    this.blockTokens = undefined;
    this.overwritten.length = 0;
  }

  /**
   * The entries a block of several tokens overwrote go back (a later block
   * may see them again); a single token's slot held nothing yet, or the
   * entry that leaves the window as the token comes, which no later query
   * sees. Whatever a restore throws, the block is over (no longer begun);
   * where one threw, some of those entries are not back, so the cache
   * refuses to begin another block until reset().
   */
  abandon(): void {
    if (this.blockTokens === undefined) throw new Error(`${this.constructor.name}.abandon: no block begun`);
    try {
      for (const saved of this.overwritten) this.storage.restore(saved);
    } catch (e) {
      this.broken = 'an abandoned block overwrote kept entries that could not be put back';
      throw e;
    } finally {
      this.overwritten.length = 0;
      this.blockTokens = undefined;
    }
  }

  reset(): void {
    this.streamLength = 0;
    this.blockTokens = undefined;
    this.overwritten.length = 0;
    this.broken = undefined;
  }

  dispose(): void {
    this.storage.dispose();
  }

  /** Sinks, then the window's older entries in stream order, then the block: a copy (EntryStorage.join). */
  private composeEntries(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    const start = this.streamLength;
    const S = this.sinkCount;
    const slotRuns: SlotRuns = []; // [first slot, count], in stream order
    const storedSinks = Math.min(S, start);
    if (storedSinks > 0) slotRuns.push([0, storedSinks]);
    // ring slots of stream oldFrom..start-1
    this.eachRingRun(Math.max(S, start - this.windowSize + 1), start, (slot, run) => slotRuns.push([slot, run]));
    return this.storage.join(layer, slotRuns, keys, values);
  }

  /** Copy the stored ring entries that writeBlock is about to overwrite (slots past the stream's are not stored yet). */
  private saveOverwritten(layer: number): void {
    const start = this.streamLength;
    const S = this.sinkCount;
    const end = start + this.blockTokens!;
    const stored = Math.min(start, S + this.windowSize); // slots holding entries: 0..stored-1
    this.eachRingRun(Math.max(S, start, end - this.windowSize), end, (slot, run) => {
      const kept = Math.min(run, stored - slot);
      if (kept > 0) this.overwritten.push(this.storage.copySlots(layer, slot, kept));
    });
  }

  /** Write the block's entries that the cache keeps: sinks, and the last W of the rest. */
  private writeBlock(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): void {
    const start = this.streamLength;
    const S = this.sinkCount;
    const end = start + this.blockTokens!;
    if (start < S) this.storage.write(layer, keys, values, start, 0, Math.min(S, end) - start);
    this.eachRingRun(Math.max(S, start, end - this.windowSize), end, (slot, run, j) => this.storage.write(layer, keys, values, slot, j - start, run));
  }

  /** The ring slots of stream indices [from, to) (past the sinks, at most a window of them), run by run: one, or two where the ring wraps; `visit(slot, count, j)` each, j the run's first stream index. */
  private eachRingRun(from: number, to: number, visit: (slot: number, count: number, j: number) => void): void {
    for (let j = from; j < to;) {
      const slot = this.slotOf(j);
      const run = Math.min(to - j, this.sinkCount + this.windowSize - slot);
      visit(slot, run, j);
      j += run;
    }
  }
}
