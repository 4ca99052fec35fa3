// Flags the experiment commands (reproduce, attn, start) share: the model and
// text they run on, and the experiments' sizes. The experiments themselves,
// and the figure layer they need, are loaded only when one of those commands
// runs, so that --help and argument errors answer at once.
import { DEFAULT_LENGTH, DEFAULT_SAMPLES, MAX_WINDOWS, SINK_WINDOWS } from '../eval/attention_defaults.js';
import { defineFlag, defineFlags, type Flags } from './args.js';

/** The model and text (see model_inputs.ts). */
export const modelInputFlags = defineFlags([
  { name: 'model', type: 'string', value: 'PATH', help: "llama2.c checkpoint or model directory (default: the zoo's default model)" },
  { name: 'manifest', type: 'string', value: 'FILE', help: 'model zoo manifest (default: weights/manifest.json of this package)' },
  { name: 'text', type: 'string', value: 'FILE', help: 'text file to run on (default: the held-out Brown corpus texts)' },
  { name: 'tokens', type: 'string', value: 'IDS.json', help: 'or a JSON array of token ids' },
  { name: 'backcopy', type: 'bool', help: 'or a held-out Bigram-Backcopy stream (the default for models the zoo trained on Backcopy)' },
  { name: 'tokenizer', type: 'string', value: 'TOK', help: 'tokenizer (default: the one in the model directory)' },
]);

/** Flags of the experiments' sizes, shared with attn and start. */
export const sizeFlags = {
  limit: defineFlag({
    name: 'limit',
    type: 'int',
    value: 'N',
    min: 2,
    help: 'tokens of the text each perplexity run scores (default: 32 x the trained length; pretraining 80 x)',
  }),
  recomputeSamples: defineFlag({
    name: 'recompute-samples',
    type: 'int',
    value: 'N',
    min: 1,
    help: 'recompute is scored at about N positions past the first window (default 512)',
  }),
  samples: defineFlag({
    name: 'samples',
    type: 'int',
    value: 'N',
    min: 1,
    max: MAX_WINDOWS,
    default: DEFAULT_SAMPLES,
    help: 'attention maps: windows to average',
  }),
  length: defineFlag({ name: 'length', type: 'int', value: 'L', min: 5, default: DEFAULT_LENGTH, help: 'attention maps: tokens per window' }),
  seed: defineFlag({ name: 'seed', type: 'int', value: 'S', default: 0, help: 'attention maps: seed of the window offsets' }),
  perHead: defineFlag({ name: 'per-head', type: 'bool', help: 'attention maps: one panel per head in the per-layer figures' }),
  window: defineFlag({
    name: 'window',
    type: 'int',
    value: 'W',
    min: 2,
    help: "KV cache entries W of every policy (streaming: S initial + W-S recent), and the sink measurement's window (default: the trained length)",
  }),
  sinks: defineFlag({
    name: 'sinks',
    type: 'int',
    value: 'S',
    min: 0,
    help: 'initial tokens streaming keeps, in the experiments that use one count: curves, cache-size, latency (default 4; S < W)',
  }),
  sinkWindows: defineFlag({
    name: 'sink-windows',
    type: 'int',
    value: 'N',
    min: 1,
    max: MAX_WINDOWS,
    default: SINK_WINDOWS,
    help: 'sink measurement: windows of W positions to average',
  }),
  bosFirst: defineFlag({
    name: 'bos-first',
    type: 'bool',
    help: "the model reads BOS first (--bos-first=false: it does not): the tokenizer's BOS first in every attention window, at the start of the text, and a recompute baseline that keeps it (default: as the model trained, from its manifest entry or train_state.json)",
  }),
  models: defineFlag({
    name: 'models',
    type: 'strings',
    value: 'DIR,DIR',
    help: "pretraining: compare these model directories instead of the manifest's models",
  }),
};

/** The flags of an experiment command, as parsed: whichever of the above it takes. */
export type ExperimentFlags = Partial<Flags<typeof modelInputFlags> & Flags<(typeof sizeFlags)[keyof typeof sizeFlags][]>>;
