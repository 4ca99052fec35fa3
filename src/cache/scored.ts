// What the policies that evict by attention share (h2o.ts, tova.ts): a
// budget of C slots per layer and kv head, and the order of events for
// every token t, layer by layer:
//
//   1. t joins the kept entries (at most C, itself included);
//   2. t attends to them, at positions re-encoded in stream order: the n
//      kept entries sit at 0..n-1 and the query at n-1, as in StreamingLLM;
//   3. the policy reads t's attention probabilities (observeAttention), and
//      when C entries are kept it evicts one per kv head (its `victims`).
//
// So a query sees at most C entries and C - 1 are kept between tokens: the
// papers' "cache size C - 1", counted as streaming's S + W is.
//
// A slot freed by an eviction takes the next token, so after the first
// eviction the slots are no longer in stream order and each kv head may hold
// different tokens: keys are stored unrotated and the view gives each entry
// its position. Until the first eviction a block of up to C - held tokens is
// exact (nothing is evicted inside it); after it, one token per block.
import type * as tf from '@tensorflow/tfjs';
import { ArgumentError } from '../errors.js';
import { EntryStorage } from './storage.js';
import type { KVCachePolicy } from './policies.js';
import type { BlockView, CacheEntries, CacheShape, KVCache, LayerView, ViewFrame } from './types.js';

/** One layer's attention probabilities for a block: p(head h, row r, slot s) = probs[(h * T + r) * slots + s]. */
export interface ObservedAttention {
  probs: Float32Array;
  heads: number;
  T: number;
  slots: number;
}

export abstract class ScoredCache implements KVCache {
  abstract readonly policy: KVCachePolicy;
  private readonly storage: EntryStorage;
  /** [layer][g * budget + slot]: the stream index kept in the slot, -1 when free. */
  protected readonly tokens: Int32Array[];
  /** [layer][g]: the slot the last eviction freed, -1 before the first. */
  private readonly freed: Int32Array[];
  /** tokens and freed as the block begun found them: put back if it is abandoned. */
  private readonly tokensBefore: Int32Array[];
  private readonly freedBefore: Int32Array[];
  /** Entries kept per layer and kv head between blocks. */
  private held = 0;
  private evicted = false;
  private streamLength = 0;
  private block: { start: number; T: number; views: (LayerView | undefined)[]; observed: boolean[] } | undefined;
  /** A block ended without every layer observed: the scores are incomplete. */
  private broken = false;

  /** `label` names the cache in a too-large error. */
  constructor(
    readonly budget: number,
    protected readonly shape: CacheShape,
    label: string,
  ) {
    if (!Number.isInteger(budget) || budget < 1) throw new ArgumentError('budget', `expected an integer >= 1, got ${budget}`);
    this.storage = new EntryStorage(shape, budget, label);
    this.tokens = Array.from({ length: shape.layers }, () => new Int32Array(shape.kvHeads * budget).fill(-1));
    this.freed = Array.from({ length: shape.layers }, () => new Int32Array(shape.kvHeads).fill(-1));
    this.tokensBefore = this.tokens.map((t) => t.slice());
    this.freedBefore = this.freed.map((f) => f.slice());
  }

  /** Reset the policy's score of a slot that now holds a new token. */
  protected abstract placed(layer: number, kvHead: number, slot: number): void;
  /** Take in one layer's probabilities for the block (before any eviction). */
  protected abstract record(layer: number, attention: ObservedAttention): void;
  /** The slot to evict per kv head, the cache being full after token `newest`. */
  protected abstract victims(layer: number, attention: ObservedAttention, newest: number): Int32Array;
  /** Forget all scores. */
  protected abstract clearScores(): void;
  /** Copy the scores aside (a block begins). */
  protected abstract saveScores(): void;
  /** Put back the scores saveScores copied (the block is abandoned). */
  protected abstract restoreScores(): void;

  get length(): number {
    return this.streamLength;
  }

  get size(): number {
    return this.held;
  }

  get byteSize(): number {
    return this.storage.byteSize;
  }

  get blockLimit(): number {
    return this.budget - this.held;
  }

  /** The stream indices kv head g of a layer keeps now, in stream order (between blocks). */
  kept(layer: number, kvHead = 0): number[] {
    const C = this.budget;
    return Array.from(this.tokens[layer]!.subarray(kvHead * C, (kvHead + 1) * C))
      .filter((token) => token >= 0)
      .sort((a, b) => a - b);
  }

  begin(T: number): BlockView {
    const name = this.constructor.name;
    if (this.block !== undefined) throw new Error(`${name}.begin: the previous block was not ended`);
    if (this.broken) throw new Error(`${name}.begin: a block ended without its attention observed in every layer; reset() the cache`);
    if (!(Number.isInteger(T) && T >= 1 && T <= this.blockLimit)) {
      throw new Error(`${name}.begin: a block of ${T} tokens would cross an eviction; at most ${this.blockLimit} now (forward() splits blocks)`);
    }
    const { layers, kvHeads } = this.shape;
    const C = this.budget;
    const start = this.streamLength;
    // (what begin and observeAttention change: abandon puts it back; storage only gains entries in free slots)
    for (let l = 0; l < layers; l++) {
      this.tokensBefore[l]!.set(this.tokens[l]!);
      this.freedBefore[l]!.set(this.freed[l]!);
    }
    this.saveScores();
    for (let l = 0; l < layers; l++) {
      for (let g = 0; g < kvHeads; g++) {
        for (let i = 0; i < T; i++) {
          const slot = this.evicted ? this.freed[l]![g]! : this.held + i;
          this.tokens[l]![g * C + slot] = start + i;
          this.placed(l, g, slot);
        }
      }
    }
    // Row i sees the kept entries and the block's first i + 1: slots
    // [0, held + i + 1), in stream order until the first eviction and all C
    // slots after it.
    const queryPositions = new Int32Array(T);
    const rowRanges = new Int32Array(2 * T);
    for (let i = 0; i < T; i++) {
      queryPositions[i] = this.held + i;
      rowRanges[2 * i + 1] = this.held + i + 1;
    }
    const frames: ViewFrame[] = [{ queryPositions, keyStart: 0, keyEnd: C, rowRanges }];
    const keyPositions = new Int32Array(T); // stored unrotated
    const views: (LayerView | undefined)[] = new Array<LayerView | undefined>(layers);
    this.block = { start, T, views, observed: new Array<boolean>(layers).fill(false) };
    return {
      start,
      selfContained: false,
      layer: (l) => (views[l] ??= { keyPositions, frames, entryPositions: this.entryPositions(l), wantsAttention: true }),
    };
  }

  /** [kvHeads * C]: each slot's rank in stream order among the kept slots (0 for free slots). */
  private entryPositions(layer: number): Int32Array {
    const { kvHeads } = this.shape;
    const C = this.budget;
    const tokens = this.tokens[layer]!;
    const positions = new Int32Array(kvHeads * C);
    if (!this.evicted) {
      for (let g = 0; g < kvHeads; g++) for (let s = 0; s < C; s++) positions[g * C + s] = s; // slot s holds token s
      return positions;
    }
    const order = Array.from({ length: C }, (_, s) => s);
    for (let g = 0; g < kvHeads; g++) {
      order.sort((a, b) => tokens[g * C + a]! - tokens[g * C + b]!);
      let rank = 0;
      for (const s of order) if (tokens[g * C + s]! >= 0) positions[g * C + s] = rank++;
    }
    return positions;
  }

  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    if (this.block === undefined) throw new Error(`${this.constructor.name}.store: call begin() first`);
    if (this.evicted) this.storage.writePerHead(layer, keys, values, this.freed[layer]!);
    else this.storage.write(layer, keys, values, this.held);
    return this.storage.entries(layer);
  }

  observeAttention(layer: number, probs: tf.Tensor3D): void {
    const block = this.block;
    if (block === undefined) throw new Error(`${this.constructor.name}.observeAttention: no block begun`);
    const [heads, T, slots] = probs.shape;
    const attention: ObservedAttention = { probs: probs.dataSync() as Float32Array, heads, T, slots };
    this.record(layer, attention);
    block.observed[layer] = true;
    if (this.held + block.T < this.budget) return;
    const victims = this.victims(layer, attention, block.start + block.T - 1);
    const C = this.budget;
    for (let g = 0; g < this.shape.kvHeads; g++) {
      this.tokens[layer]![g * C + victims[g]!] = -1;
      this.freed[layer]![g] = victims[g]!;
    }
  }

  end(): void {
    const block = this.block;
    if (block === undefined) throw new Error(`${this.constructor.name}.end: no block begun`);
    this.block = undefined;
    if (block.observed.includes(false)) this.broken = true;
    this.streamLength += block.T;
    this.held += block.T;
    if (this.held === this.budget) {
      this.held--;
      this.evicted = true;
    }
  }

  /** The slots, evictions and scores as begin found them; the block's entries stay in slots that are free again. */
  abandon(): void {
    if (this.block === undefined) throw new Error(`${this.constructor.name}.abandon: no block begun`);
    this.block = undefined;
    for (let l = 0; l < this.shape.layers; l++) {
      this.tokens[l]!.set(this.tokensBefore[l]!);
      this.freed[l]!.set(this.freedBefore[l]!);
    }
    this.restoreScores();
  }

  reset(): void {
    this.streamLength = 0;
    this.held = 0;
    this.evicted = false;
    this.block = undefined;
    this.broken = false;
    this.tokens.forEach((t) => t.fill(-1));
    this.freed.forEach((f) => f.fill(-1));
    this.clearScores();
  }

  dispose(): void {
    this.storage.dispose();
  }

  /** The slot of kv head g with the lowest score among those holding an eligible token; ties go to the older token. */
  protected lowest(layer: number, g: number, score: (slot: number) => number, eligible: (token: number) => boolean): number {
    const C = this.budget;
    const tokens = this.tokens[layer]!;
    let best = -1;
    let bestScore = Infinity;
    for (let s = 0; s < C; s++) {
      const token = tokens[g * C + s]!;
      if (token < 0 || !eligible(token)) continue;
      const v = score(s);
      if (best < 0 || v < bestScore || (v === bestScore && token < tokens[g * C + best]!)) {
        best = s;
        bestScore = v;
      }
    }
    if (best < 0) throw new Error(`${this.constructor.name}: no entry may be evicted`);
    return best;
  }
}
