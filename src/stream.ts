// A token stream: a model plus a cache policy, fed tokens block by block.
// Every policy but one is a KVCache; the stream realises the other,
// `recompute` (RecomputePolicy), which keeps token ids and re-runs the last
// W tokens from scratch for every new token.
import type * as tf from '@tensorflow/tfjs';
import * as tfc from '@tensorflow/tfjs';
import { createCache } from './cache/index.js';
import { DenseCache } from './cache/dense.js';
import { RecomputeWindow } from './cache/recompute.js';
import { INITIAL_SLOTS } from './cache/storage.js';
import { type CachePolicy, policyLabel } from './cache/policies.js';
import type { KVCache } from './cache/types.js';
import { firstNonFinite } from './finite.js';
import { inPoolMemory, pooledArgmax } from '../kernels/logits_argmax.js';
import { pickedArgmax } from '../kernels/split_products.js';
import { cacheShape } from './model/config.js';
import { checkSomeTokenIds } from './model/token_ids.js';
import { cacheMemory } from './model/pooled_layers.js';
import { checkModelIds, DecodeScratch, forward, forwardLastValues } from './model/transformer.js';
import { checkNotDisposed, type Model } from './model/weights.js';
import { argmax } from './sample/sampler.js';

/**
 * What greedy decoding takes from a token's logits: their argmax (the first
 * on ties) when every one is finite; otherwise the logits, for an error to
 * name one (a view that the next feed may overwrite: read it before then).
 */
export type GreedyChoice = { finite: true; id: number } | { finite: false; logits: Float32Array };

export class TokenStream {
  private readonly cache: KVCache;
  private readonly recompute: RecomputeWindow | undefined;
  /** A pooled model's decode step's scratch tensors (forwardLastValues). */
  private readonly scratch: DecodeScratch | undefined;

  constructor(
    readonly model: Model,
    readonly policy: CachePolicy,
  ) {
    checkNotDisposed(model);
    // a pooled model's caches keep their entries where its threads attend to them
    const shape = { ...cacheShape(model.config), entryMemory: cacheMemory(model) };
    if (policy.kind === 'recompute') {
      // A sink-token stream starts with the learned sink; it stays in every window.
      this.recompute = new RecomputeWindow(policy.windowSize, model.config.sinkToken);
      // scratch, reset per token; it grows to the longest window run
      this.cache = new DenseCache(shape, Math.min(INITIAL_SLOTS, policy.windowSize), policyLabel(policy));
    } else {
      this.cache = createCache(policy, shape);
    }
    this.scratch = this.recompute === undefined && model.pool !== undefined ? new DecodeScratch(model.config) : undefined;
  }

  /** Tokens fed so far. */
  get length(): number {
    return this.recompute?.length ?? this.cache.length;
  }

  /** Entries the cache holds now (recompute: the window it re-runs). */
  get cacheSize(): number {
    return this.recompute ? Math.min(this.recompute.length, this.recompute.windowSize) : this.cache.size;
  }

  /** Bytes of KV storage. */
  get cacheBytes(): number {
    return this.cache.byteSize;
  }

  /**
   * Feed a block of tokens; returns logits [T, vocab] for every token, or
   * [1, vocab] for the last one.
   */
  feed(ids: readonly number[], logits: 'all' | 'last' = 'all'): tf.Tensor2D {
    if (this.recompute === undefined) return forward(this.model, ids, this.cache, logits);
    checkModelIds(this.model, 'ids', ids); // before the window takes them
    checkSomeTokenIds('ids', ids);
    const window = this.recompute;
    // While the stream is no longer than the window, every window is the
    // whole stream: one causal pass, continuing the scratch cache, gives
    // exactly the re-computed logits. A feed that failed after it reset the
    // scratch cache left it without that stream: run it again first. Its
    // length tells: a failed block leaves a dense cache as it was (one block,
    // abandoned), so after a reset it holds 0 entries or a whole window of
    // W, never the shorter stream's count unless both are 0.
    if (window.length < window.windowSize && this.cache.length !== window.length) {
      this.cache.reset();
      if (window.length > 0) forward(this.model, window.window, this.cache, 'last').dispose();
    }
    const rows: tf.Tensor2D[] = [];
    // (a failed feed leaves the window as it was: the scratch cache abandons a failed block itself)
    const saved = window.save();
    try {
      const prefix = Math.max(0, Math.min(ids.length, window.windowSize - window.length));
      if (prefix > 0) {
        const head = ids.slice(0, prefix);
        head.forEach((id) => window.push(id));
        rows.push(forward(this.model, head, this.cache, logits === 'last' && prefix === ids.length ? 'last' : 'all'));
      }
      // Past that, each token re-runs its window from scratch at positions 0..W-1.
      for (let i = prefix; i < ids.length; i++) {
        const context = window.push(ids[i]!);
        if (logits === 'last' && i < ids.length - 1) continue;
        this.cache.reset();
        rows.push(forward(this.model, context, this.cache, 'last'));
      }
    } catch (e) {
      window.restore(saved);
      tfc.dispose(rows);
      throw e;
    }
    const all = rows.length === 1 ? rows[0]! : tfc.concat(rows, 0);
    if (rows.length > 1) tfc.dispose(rows);
    if (logits === 'all' || all.shape[0] === 1) return all;
    const last = all.slice([all.shape[0] - 1, 0], [1, all.shape[1]]);
    all.dispose();
    return last;
  }

  /**
   * Feed a block of tokens; the logits of the last one as an array [vocab],
   * to be read before the next feed (a pooled model's may be a view of the
   * pool's memory, which the next forward pass overwrites).
   */
  feedLastValues(ids: readonly number[]): Float32Array {
    if (this.recompute === undefined) return forwardLastValues(this.model, ids, this.cache, this.scratch);
    const logits = this.feed(ids, 'last'); // [1, vocab]
    const values = logits.dataSync() as Float32Array;
    logits.dispose();
    return values;
  }

  /**
   * Feed a block of tokens, for greedy decoding: feedLastValues' logits,
   * their argmax and whether they are all finite. A pooled classifier's
   * logits are searched and checked where it wrote them, in one SIMD pass
   * (kernels/logits_argmax.ts); any others by argmax and firstNonFinite.
   */
  feedLastGreedy(ids: readonly number[]): GreedyChoice {
    const logits = this.feedLastValues(ids); // [vocab]
    const pool = this.model.pool;
    // (a decode step's logits: the pick its program made, asked first, as
    // pooledArgmax would after checking again where the logits lie)
    const picked = pool === undefined ? undefined : pickedArgmax(pool, logits);
    const id = picked ?? (pool !== undefined && inPoolMemory(pool, logits) ? pooledArgmax(pool, logits) : firstNonFinite(logits) >= 0 ? -1 : argmax(logits));
    return id >= 0 ? { finite: true, id } : { finite: false, logits };
  }

  reset(): void {
    this.cache.reset();
    this.recompute?.reset();
  }

  dispose(): void {
    this.cache.dispose();
    this.scratch?.dispose();
  }
}
