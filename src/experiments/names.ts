// The experiments' names and titles, in the order `reproduce all` runs them.
// Kept apart from the experiments themselves so that the CLI can list them
// without loading the figure layer.
export const EXPERIMENT_TITLES = {
  attention: 'Attention maps averaged over many windows: the attention sink (Fig. 2)',
  curves: 'Per-token log-perplexity of dense, window, recompute and streaming attention (Fig. 3)',
  'initial-tokens': 'Initial tokens kept: 0, 1, 2, 4, 8 with the same total cache (Table 2)',
  'newline-sinks': 'The first four tokens replaced by newlines (Table 1)',
  'cache-size': 'Streaming perplexity against cache size (Table 6)',
  latency: 'Per-token decode latency and memory, recompute vs streaming (Fig. 10)',
  pretraining: 'Pre-training with attention sinks: the zoo ablation (Table 3)',
} as const;

export type ExperimentName = keyof typeof EXPERIMENT_TITLES;
export const EXPERIMENT_NAMES = Object.keys(EXPERIMENT_TITLES) as ExperimentName[];

/** The experiments whose streaming cache keeps one number of initial tokens, which --sinks sets (the others vary it or fix it by design). */
export const SINKS_EXPERIMENTS: readonly ExperimentName[] = ['curves', 'cache-size', 'latency'];
