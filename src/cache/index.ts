// Making a KV cache from its policy (what each policy is: policies.ts).
import { DenseCache } from './dense.js';
import { H2OCache } from './h2o.js';
import { StreamingCache } from './streaming.js';
import { TovaCache } from './tova.js';
import type { KVCachePolicy } from './policies.js';
import type { CacheShape, KVCache } from './types.js';
import { WindowCache } from './window.js';

export {
  CACHE_KIND_SUMMARIES,
  CACHE_KINDS,
  DEFAULT_SINK_COUNT,
  isCacheKind,
  isKVCachePolicy,
  policyBound,
  policyFromName,
  policyLabel,
  policySpan,
} from './policies.js';
export type { CacheKind, CachePolicy, KVCachePolicy, PolicyOptions, RecomputePolicy } from './policies.js';
export type { CacheShape, KVCache } from './types.js';

/** The KV cache that realises the policy (recompute keeps no KV cache: see RecomputeWindow). */
export function createCache(policy: KVCachePolicy, shape: CacheShape): KVCache {
  switch (policy.kind) {
    case 'dense':
      return new DenseCache(shape);
    case 'window':
      return new WindowCache(policy.windowSize, shape);
    case 'streaming':
      return new StreamingCache(policy.sinkCount, policy.windowSize, shape);
    case 'h2o':
      return new H2OCache(policy.budget, policy.recent, shape);
    case 'tova':
      return new TovaCache(policy.budget, shape);
  }
}
