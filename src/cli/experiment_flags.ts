// Flags the experiment commands (reproduce, attn, start) share. The
// experiments themselves, and the figure layer they need, are loaded only
// when one of those commands runs, so other commands start as fast as before.
import { DEFAULT_LENGTH, DEFAULT_SAMPLES } from '../eval/attention_maps.js';
import type { FlagSpec } from './args.js';

/** Flags of the experiments' sizes, shared with attn and start. */
export const sizeFlags: Record<'limit' | 'recomputeSamples' | 'samples' | 'length' | 'seed' | 'perHead', FlagSpec> = {
  limit: { name: 'limit', type: 'int', value: 'N', min: 2, help: 'tokens of the text each perplexity run scores (default: 32 x the trained length; pretraining 80 x)' },
  recomputeSamples: {
    name: 'recompute-samples',
    type: 'int',
    value: 'N',
    min: 1,
    help: 'recompute is scored at about N positions past the first window (default 512)',
  },
  samples: { name: 'samples', type: 'int', value: 'N', min: 1, default: DEFAULT_SAMPLES, help: 'attention maps: windows to average' },
  length: { name: 'length', type: 'int', value: 'L', min: 5, default: DEFAULT_LENGTH, help: 'attention maps: tokens per window' },
  seed: { name: 'seed', type: 'int', value: 'S', default: 0, help: 'attention maps: seed of the window offsets' },
  perHead: { name: 'per-head', type: 'bool', help: 'attention maps: one panel per head in the per-layer figures' },
};

