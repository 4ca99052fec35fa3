// Window attention: only the last W tokens, evicted oldest first. It is the
// streaming cache with no sinks, and it is the paper's second failing
// baseline: perplexity explodes as soon as the first token is evicted.
import { StreamingCache } from './streaming.js';
import type { CacheShape } from './types.js';

export class WindowCache extends StreamingCache {
  constructor(windowSize: number, shape: CacheShape, initialSlots?: number) {
    super(0, windowSize, shape, initialSlots);
  }
}
