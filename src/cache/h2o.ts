// H2O, "heavy-hitter oracle" (Zhang et al. 2023): keep the most recent tokens
// plus the "heavy hitters", the entries with the largest attention summed
// over every query so far. Per layer and per kv head: each kv head ranks its
// entries by the attention of its group of query heads and evicts on its own,
// so the heads of one layer may keep different tokens.
//
// With budget C and recent R (ScoredCache gives the order of events): after
// token t attended, every kept entry j has its score
//
//   score(j) = sum over queries u in j..t that saw j, and the query heads of the group, of p_u(j)
//
// and when C entries are kept, the one with the lowest score among those
// older than the R most recent (j <= t - R) is evicted (ties: the older). So
// the R newest tokens always stay and the other C - R slots go to heavy
// hitters. A new entry starts from its own query's attention, behind
// entries that collected attention for longer: the recent window is what
// gives it time.
import { ArgumentError } from '../errors.js';
import { type ObservedAttention, ScoredCache } from './scored.js';
import type { KVCachePolicy } from './policies.js';
import type { CacheShape } from './types.js';

export class H2OCache extends ScoredCache {
  readonly policy: KVCachePolicy;
  /** [layer][g * budget + slot]: the accumulated attention of the entry in the slot. */
  private readonly scores: Float64Array[];
  /** scores as the block begun found them (saveScores). */
  private readonly scoresBefore: Float64Array[];

  constructor(
    budget: number,
    readonly recent: number,
    shape: CacheShape,
  ) {
    super(budget, shape, `h2o(${budget - recent}+${recent})`);
    if (!Number.isInteger(recent) || recent < 0 || recent >= budget) {
      throw new ArgumentError('recent', `expected an integer in 0..${budget - 1} (below the budget ${budget}), got ${recent}`);
    }
    this.policy = { kind: 'h2o', budget, recent };
    this.scores = Array.from({ length: shape.layers }, () => new Float64Array(shape.kvHeads * budget));
    this.scoresBefore = this.scores.map((s) => s.slice());
  }

  protected placed(layer: number, kvHead: number, slot: number): void {
    this.scores[layer]![kvHead * this.budget + slot] = 0;
  }

  protected record(layer: number, { probs, heads, T, slots }: ObservedAttention): void {
    const group = heads / this.shape.kvHeads;
    const scores = this.scores[layer]!;
    for (let h = 0; h < heads; h++) {
      const base = Math.floor(h / group) * this.budget;
      for (let r = 0; r < T; r++) {
        const row = (h * T + r) * slots;
        for (let s = 0; s < slots; s++) scores[base + s]! += probs[row + s]!;
      }
    }
  }

  protected victims(layer: number, _attention: ObservedAttention, newest: number): Int32Array {
    const scores = this.scores[layer]!;
    const victims = new Int32Array(this.shape.kvHeads);
    for (let g = 0; g < victims.length; g++) {
      victims[g] = this.lowest(
        layer,
        g,
        (s) => scores[g * this.budget + s]!,
        (token) => token <= newest - this.recent,
      );
    }
    return victims;
  }

  protected clearScores(): void {
    this.scores.forEach((s) => s.fill(0));
  }

  protected saveScores(): void {
    this.scores.forEach((s, l) => this.scoresBefore[l]!.set(s));
  }

  protected restoreScores(): void {
    this.scoresBefore.forEach((s, l) => this.scores[l]!.set(s));
  }
}
