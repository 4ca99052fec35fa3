// What every experiment of `streamllm reproduce` gets and gives.
//
// An experiment runs on one model and one text (the pre-training ablation
// opens the zoo's models itself), writes its tables (Markdown and JSON) and
// figures through the Report, and returns the numbers it wrote, for
// callers such as `streamllm start` that print them.
import { DEFAULT_SINK_COUNT } from '../cache/index.js';
import type { Progress } from '../cli/progress.js';
import type { Placement } from '../model/pooled.js';
import type { Model } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { ExperimentName } from './names.js';
import type { Report } from './report.js';
import type { TextSource } from './text_source.js';
import type { TrainedOn } from '../zoo/trained_on.js';

export interface ExperimentSettings {
  /** Tokens of the text each perplexity run scores (default: 32 x the trained length; pretraining 80 x). */
  tokens?: number;
  /** Recompute is scored at about this many positions past the first window (default 512). */
  recomputeSamples?: number;
  /** Attention maps: windows averaged, tokens per window, seed. */
  samples?: number;
  length?: number;
  seed?: number;
  /** Attention maps: one panel per head. */
  perHead?: boolean;
  /** The zoo manifest (pre-training ablation). */
  manifest?: string;
  /** Pre-training ablation: these model directories instead of the manifest's models. */
  models?: string[];
  /** KV cache entries of every policy, and the sink measurement's window (default: the trained length). */
  window?: number;
  /** Initial tokens streaming keeps where an experiment uses one count (default DEFAULT_SINK_COUNT). */
  sinks?: number;
  /** Sink measurement: windows to average (default SINK_WINDOWS). */
  sinkWindows?: number;
  /** The model reads BOS first (attention windows, the text, the BOS-kept recompute): --bos-first or --bos-first=false; undefined: as it was trained (bos_first.ts). */
  bosFirst?: boolean;
}

export interface ExperimentContext {
  model: Model;
  /** The model as the report names it: its zoo name or its path. */
  modelLabel: string;
  tokenizer?: Tokenizer;
  /** What the model was trained on, when its manifest entry or run says (src/zoo/trained_on.ts). */
  trainedOn?: TrainedOn;
  source: TextSource;
  /** The text asked for, before the model's training data chose a default: pretraining picks each model's text from it. */
  givenSource?: TextSource;
  /** The text's tokens for this model (all of them; experiments take what they need). */
  ids: number[];
  settings: ExperimentSettings;
  /** Where the model's products run (undefined: the tfjs path); pretraining places each model it loads the same way. */
  placement?: Placement;
  report: Report;
  /** A progress bar on stderr. */
  progress(label: string, total: number, unit?: string): Progress;
  /** A line on stderr. */
  log(line: string): void;
}

export interface Experiment {
  name: ExperimentName;
  /** What it reproduces, for --help and the report's heading. */
  title: string;
  run(ctx: ExperimentContext): Promise<unknown>;
}

/**
 * Tokens each perplexity run scores unless --limit says otherwise: 32 times
 * the trained length (8192 for W = 256), long enough for 31 windows to slide
 * by, short enough that `reproduce all` stays within minutes here.
 */
export const DEFAULT_TOKENS_PER_WINDOW = 32;

/** W, the entries every cache holds: the setting, else the trained length. */
export function cacheWindow(ctx: ExperimentContext): number {
  return ctx.settings.window ?? ctx.model.config.maxSeqLen;
}

/** S, the initial tokens streaming keeps in experiments that use one count: the setting, else DEFAULT_SINK_COUNT, leaving room for a recent token. */
export function sinkCount(ctx: ExperimentContext, W = cacheWindow(ctx)): number {
  return Math.min(ctx.settings.sinks ?? DEFAULT_SINK_COUNT, W - 1);
}

/** Tokens scored per run: the setting, else DEFAULT_TOKENS_PER_WINDOW x W; never more than the text holds. */
export function tokenBudget(ctx: ExperimentContext, perWindow = DEFAULT_TOKENS_PER_WINDOW): number {
  const wanted = ctx.settings.tokens ?? perWindow * cacheWindow(ctx);
  return Math.min(wanted, ctx.ids.length);
}
