// Making caches from policies, and the policies' defaults.
import { ArgumentError } from '../errors.js';
import { DenseCache } from './dense.js';
import { H2OCache } from './h2o.js';
import { StreamingCache } from './streaming.js';
import { TovaCache } from './tova.js';
import { CACHE_KINDS, type CacheKind, type CachePolicy, type CacheShape, type KVCache, type KVCachePolicy } from './types.js';
import { WindowCache } from './window.js';

export { CACHE_KIND_SUMMARIES, CACHE_KINDS, isKVCachePolicy, policyLabel, policySpan } from './types.js';
export type { CacheKind, CachePolicy, CacheShape, KVCache, KVCachePolicy, RecomputePolicy } from './types.js';

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

export const DEFAULT_SINK_COUNT = 4;

/** The settings a policy may take; each defaults as policyFromName says. */
export interface PolicyOptions {
  sinkCount?: number;
  windowSize?: number;
  budget?: number;
  recent?: number;
}

function checkInteger(name: keyof PolicyOptions, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min)) throw new ArgumentError(name, `expected an integer >= ${min}, got ${value}`);
}

export function isCacheKind(kind: string): kind is CacheKind {
  return (CACHE_KINDS as readonly string[]).includes(kind);
}

/**
 * A policy from its name and optional settings. Every policy lets a query
 * see the trained length by default, so they compare at equal cache size:
 * window and recompute keep windowSize = trainedLength; streaming keeps
 * sinkCount = 4 and windowSize = trainedLength - sinkCount; h2o and tova a
 * budget of trainedLength, h2o's recent half of it. Errors name the
 * argument (`kind`, `sinkCount`, `windowSize`, `budget`, `recent`).
 */
export function policyFromName(kind: string, trainedLength: number, options: PolicyOptions = {}): CachePolicy {
  const { sinkCount, windowSize, budget, recent } = options;
  checkInteger('sinkCount', sinkCount, 0);
  checkInteger('windowSize', windowSize, 1);
  checkInteger('budget', budget, 1);
  checkInteger('recent', recent, 0);
  if (!isCacheKind(kind)) throw new ArgumentError('kind', `unknown policy '${kind}' (expected one of ${CACHE_KINDS.join(', ')})`);
  switch (kind) {
    case 'dense':
      return { kind: 'dense' };
    case 'window':
      return { kind: 'window', windowSize: windowSize ?? trainedLength };
    case 'recompute':
      return { kind: 'recompute', windowSize: windowSize ?? trainedLength };
    case 'streaming': {
      const sinks = sinkCount ?? DEFAULT_SINK_COUNT;
      const window = windowSize ?? trainedLength - sinks;
      if (window < 1) throw new ArgumentError('sinkCount', `${sinks} sinks leave no window in a trained length of ${trainedLength}; give windowSize`);
      return { kind: 'streaming', sinkCount: sinks, windowSize: window };
    }
    case 'h2o': {
      const size = budget ?? trainedLength;
      const newest = recent ?? Math.floor(size / 2);
      if (newest >= size) throw new ArgumentError('recent', `expected fewer than the budget ${size}, got ${newest}`);
      return { kind: 'h2o', budget: size, recent: newest };
    }
    case 'tova':
      return { kind: 'tova', budget: budget ?? trainedLength };
  }
}
