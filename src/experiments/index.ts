// The experiments of `streamllm reproduce`, in the order `all` runs them.
import { attention } from './attention.js';
import { cacheSize } from './cache_size.js';
import { curves } from './curves.js';
import { initialTokens } from './initial_tokens.js';
import { latency } from './latency.js';
import { newlineSinks } from './newline_sinks.js';
import { pretraining } from './pretraining.js';
import type { Experiment } from './types.js';

export const EXPERIMENTS: readonly Experiment[] = [attention, curves, initialTokens, newlineSinks, cacheSize, latency, pretraining];

export type { Experiment, ExperimentContext, ExperimentSettings } from './types.js';
