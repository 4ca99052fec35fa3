// Refusing, before any work, a run whose cache (and attention scores) would
// grow past memory, naming the flag the size comes from. The caches and the
// forward pass check again as they grow; this is the same check made up
// front, where the flags are known.
import { type CachePolicy, policyBound, policyLabel, policySpan } from '../cache/policies.js';
import { flagOf } from './cache_flags.js';
import { checkFits } from '../memory.js';
import type { ModelConfig } from '../model/config.js';

/** Bytes of keys and values one cache entry takes, all layers. */
export function entryBytes(c: ModelConfig): number {
  return 2 * c.layers * c.kvHeads * c.headDim * 4;
}

export interface StreamPlan {
  /** Tokens the run feeds (Infinity: until stopped). */
  tokens: number;
  /** The flag that sets that length, e.g. "--steps" or "--text". */
  tokensFlag: string;
  /** Tokens per forward pass, and whether --block set it. */
  block: number;
  blockGiven: boolean;
  /** The window (or h2o/tova budget) came from --window (--budget), not the trained length. */
  windowGiven: boolean;
}

export function checkCacheBudget(policy: CachePolicy, config: ModelConfig, plan: StreamPlan): void {
  const span = policySpan(policy);
  const entries = Math.min(span, plan.tokens);
  if (!Number.isFinite(entries)) return; // dense until stopped: it grows, and says so when it no longer can
  const label = policyLabel(policy);
  const cacheBytes = entries * entryBytes(config);
  // the last block's scores [heads, T, entries]; scores, softmax and mask live
  // together. Recompute re-runs a whole window per token.
  const T = Math.min(policy.kind === 'recompute' ? span : plan.block, span, plan.tokens);
  const scoreBytes = 4 * config.heads * T * Math.min(entries + T, plan.tokens);
  const largest = Math.max(config.kvHeads * entries * config.headDim * 4, scoreBytes);
  let what: string;
  if (plan.blockGiven && 3 * scoreBytes > cacheBytes) {
    what = `--block ${plan.block}: attention of ${T} tokens at a time over a ${label} cache of ${entries} entries`;
  } else if (policy.kind !== 'dense' && span <= plan.tokens) {
    const bound = policyBound(policy)!; // every policy but dense has one
    const flag = `--${flagOf(bound.setting)}`;
    what = plan.windowGiven
      ? `${flag} ${bound.value}: a ${label} cache of ${entries} entries`
      : `the default ${flagOf(bound.setting)} (the model's trained length ${config.maxSeqLen}): a ${label} cache of ${entries} entries; give a smaller ${flag}`;
  } else {
    what = `${plan.tokensFlag}: ${plan.tokens} tokens through a ${label} cache`;
  }
  checkFits(what, cacheBytes + 3 * scoreBytes, largest);
}
