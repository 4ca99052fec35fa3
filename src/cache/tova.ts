// TOVA, "token omission via attention" (Oren et al. 2024): when the cache is
// full, evict the entry the current query attends to least, its attention
// averaged over all query heads of the layer. Per layer: the heads of one
// layer keep the same tokens. No score outlives the query that made it.
//
// With budget C (ScoredCache gives the order of events): after token t
// attended, if C entries are kept, the one with the lowest
//
//   score(j) = mean over query heads h of p_t,h(j)
//
// is evicted, t itself included (ties: the older). Nothing is protected: an
// entry stays exactly as long as every query finds something less useful.
import { type ObservedAttention, ScoredCache } from './scored.js';
import type { KVCachePolicy } from './policies.js';
import type { CacheShape } from './types.js';

export class TovaCache extends ScoredCache {
  readonly policy: KVCachePolicy;

  constructor(budget: number, shape: CacheShape) {
    super(budget, shape, `tova(${budget})`);
    this.policy = { kind: 'tova', budget };
  }

  protected placed(): void {}

  protected record(): void {}

  protected victims(layer: number, { probs, heads, T, slots }: ObservedAttention): Int32Array {
    // the block's last row is the current query
    const score = (s: number) => {
      let sum = 0;
      for (let h = 0; h < heads; h++) sum += probs[(h * T + T - 1) * slots + s]!;
      return sum / heads;
    };
    return new Int32Array(this.shape.kvHeads).fill(this.lowest(layer, 0, score, () => true));
  }

  protected clearScores(): void {}

  protected saveScores(): void {}

  protected restoreScores(): void {}
}
