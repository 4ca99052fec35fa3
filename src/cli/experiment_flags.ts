// Flags the experiment commands (reproduce, attn, start) share. The
// experiments themselves, and the figure layer they need, are loaded only
// when one of those commands runs, so other commands start as fast as before.
import { DEFAULT_LENGTH, DEFAULT_SAMPLES } from '../eval/attention_maps.js';
import { SINK_WINDOWS } from '../eval/sink_measure.js';
import type { FlagSpec } from './args.js';

/** Flags of the experiments' sizes, shared with attn and start. */
export const sizeFlags: Record<'limit' | 'recomputeSamples' | 'samples' | 'length' | 'seed' | 'perHead' | 'window' | 'sinks' | 'sinkWindows' | 'bosFirst', FlagSpec> = {
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
  window: {
    name: 'window',
    type: 'int',
    value: 'W',
    min: 2,
    help: 'KV cache entries W of every policy (streaming: S initial + W-S recent), and the sink measurement\'s window (default: the trained length)',
  },
  sinks: {
    name: 'sinks',
    type: 'int',
    value: 'S',
    min: 0,
    help: 'initial tokens streaming keeps, in the experiments that use one count: curves, cache-size, latency (default 4; S < W)',
  },
  sinkWindows: { name: 'sink-windows', type: 'int', value: 'N', min: 1, default: SINK_WINDOWS, help: 'sink measurement: windows of W positions to average' },
  bosFirst: {
    name: 'bos-first',
    type: 'bool',
    help: "attention maps and sink measurement: the tokenizer's BOS first in every window (for models trained with BOS first in every sample)",
  },
};

