// Making caches from policies, and the policies' defaults.
import { UsageError } from '../errors.js';
import { DenseCache } from './dense.js';
import { StreamingCache } from './streaming.js';
import { type CacheKind, CACHE_KINDS, type CachePolicy, type CacheShape, type KVCache } from './types.js';
import { WindowCache } from './window.js';

export { CACHE_KINDS, policyLabel } from './types.js';
export type { CacheKind, CachePolicy, CacheShape, KVCache } from './types.js';

/** A KV cache for the policy; `recompute` keeps no KV cache (see RecomputeWindow). */
export function createCache(policy: Exclude<CachePolicy, { kind: 'recompute' }>, shape: CacheShape): KVCache {
  switch (policy.kind) {
    case 'dense':
      return new DenseCache(shape);
    case 'window':
      return new WindowCache(policy.windowSize, shape);
    case 'streaming':
      return new StreamingCache(policy.sinkCount, policy.windowSize, shape);
  }
}

export const DEFAULT_SINK_COUNT = 4;

/**
 * A policy from its name and the optional --sinks/--window. Defaults: 4 sinks;
 * a window of the trained length for window and recompute, and the trained
 * length minus the sinks for streaming, so every policy holds the same number
 * of entries.
 */
export function policyFromName(
  kind: string,
  trainedLength: number,
  options: { sinkCount?: number; windowSize?: number } = {},
): CachePolicy {
  const { sinkCount, windowSize } = options;
  if (sinkCount !== undefined && (!Number.isInteger(sinkCount) || sinkCount < 0)) {
    throw new UsageError(`--sinks: expected an integer >= 0, got ${sinkCount}`);
  }
  if (windowSize !== undefined && (!Number.isInteger(windowSize) || windowSize < 1)) {
    throw new UsageError(`--window: expected an integer >= 1, got ${windowSize}`);
  }
  switch (kind as CacheKind) {
    case 'dense':
      return { kind: 'dense' };
    case 'window':
      return { kind: 'window', windowSize: windowSize ?? trainedLength };
    case 'recompute':
      return { kind: 'recompute', windowSize: windowSize ?? trainedLength };
    case 'streaming': {
      const sinks = sinkCount ?? DEFAULT_SINK_COUNT;
      const window = windowSize ?? trainedLength - sinks;
      if (window < 1) throw new UsageError(`--sinks ${sinks} leaves no window in a trained length of ${trainedLength}; give --window`);
      return { kind: 'streaming', sinkCount: sinks, windowSize: window };
    }
    default:
      throw new UsageError(`--cache: unknown policy '${kind}' (expected one of ${CACHE_KINDS.join(', ')})`);
  }
}

/** Entries a query may see under the policy (Infinity for dense). */
export function policySpan(p: CachePolicy): number {
  switch (p.kind) {
    case 'dense':
      return Infinity;
    case 'streaming':
      return p.sinkCount + p.windowSize;
    case 'window':
    case 'recompute':
      return p.windowSize;
  }
}
