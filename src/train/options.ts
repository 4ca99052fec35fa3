// What a training run is asked to do: everything `streamllm train` sets,
// stored in the run's train_state.json so a resumed run continues exactly.
import type { ModelShape, Variant } from './variants.js';

export interface TrainOptions {
  variant: Variant;
  shape: ModelShape;
  /** Context length: tokens per training sample (the sink token included). */
  seqLen: number;
  batchSize: number;
  /** Updates to run; undefined when `minutes` sets the length instead. */
  steps?: number;
  /** Time budget: the number of steps is fixed after timing the first few. */
  minutes?: number;
  peakLr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Global gradient-norm limit (0: no clipping). */
  clip: number;
  seed: number;
  /** Steps between validation losses (0: only at the end). */
  evalEvery: number;
  /** Held-out windows in each periodic validation. */
  evalWindows: number;
  /** Held-out windows in the final validation (undefined: every window of the held-out stream). */
  finalEvalWindows?: number;
  /** Steps between checkpoints (0: only at the end). */
  checkpointEvery: number;
  /** The tokenizer.json the corpus is encoded with. */
  tokenizer: string;
  /** What samples are made of (src/train/data.ts); absent in runs from before it existed: brown. */
  data?: DataKind;
  /** Backcopy's trigger tokens (default DEFAULT_TRIGGERS). */
  triggers?: number;
  /** Put BOS first in every Brown window (default: only for mix). */
  bosFirst?: boolean;
  /** Keep a copy of the model at every checkpoint in DIR/steps/<step>/ (for plots across training). */
  snapshots?: boolean;
}

export const TRAIN_DEFAULTS = {
  seqLen: 256,
  batchSize: 8,
  peakLr: 3e-3,
  minLr: 3e-4,
  warmupSteps: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  clip: 1,
  seed: 0,
  evalEvery: 200,
  evalWindows: 64,
  checkpointEvery: 200,
} as const;

/** What samples are made of (src/train/data.ts). */
export const DATA_KINDS = ['brown', 'backcopy', 'mix'] as const;
export type DataKind = (typeof DATA_KINDS)[number];

/** Trigger tokens of the Backcopy rule (Guo et al. use a few: the 3 most frequent tokens here). */
export const DEFAULT_TRIGGERS = 3;

/** A run's data kind (runs from before data kinds existed trained on plain Brown windows). */
export function dataKind(options: TrainOptions): DataKind {
  return options.data ?? 'brown';
}

/**
 * Whether every training sample starts with BOS: Backcopy samples always do;
 * Brown windows when --bos-first says so, which it does by default for mix
 * only. (Evaluation reads this back from train_state.json or the manifest:
 * src/zoo/trained_on.ts.)
 */
export function samplesStartWithBos(data: string | undefined, bosFirst: boolean | undefined): boolean {
  const kind = data ?? 'brown';
  return kind === 'backcopy' || (bosFirst ?? kind === 'mix');
}
