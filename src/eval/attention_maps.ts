// Attention maps: the attention probabilities of every layer and head,
// averaged over many short windows of a text, as in the paper's Fig. 2 (256
// sentences of 16 tokens on Llama-2-7B). Each window is run on its own, from
// scratch, at positions 0..n-1 (a CausalBlock per window), so row q of a map
// is what the query at position q gives each key 0..q, and the sink shows as
// a bright first column.
//
// Sink-token models see their learned sink first, as in training: position 0
// of every window is the sink, followed by the L text tokens (maps are L+1
// wide). Models trained with BOS first in every sample can be given BOS
// first in every window too (`bosId`; after a sink-token model's sink), as
// in their training samples. The probabilities are the model's own softmax variant: with
// softmax1 or a learned sink a row sums to less than 1, the rest having gone
// to "nothing".
import type * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import type { SoftmaxVariant } from '../../kernels/softmax.js';
import { CausalBlock } from '../cache/causal_block.js';
import { UsageError } from '../errors.js';
import { checkHostFits } from '../memory.js';
import { checkTokenIds } from '../model/token_ids.js';
import { checkModelIds, forwardBatch, SINK_TOKEN } from '../model/transformer.js';
import type { Model } from '../model/weights.js';
import { DEFAULT_LENGTH, DEFAULT_SAMPLES, MAX_WINDOWS } from './attention_defaults.js';

/** Queries before this position are left out of the sink scores: they have few keys to choose from. */
export const FIRST_SCORED_QUERY = 4;

export interface AttentionMapOptions {
  /** Windows to average over (default 256). */
  samples?: number;
  /** Text tokens per window (default 16). */
  length?: number;
  /** Seed of the window offsets (default 0). */
  seed?: number | string;
  /** Windows per forward pass (default 32). */
  batchSize?: number;
  /** Put this token (BOS) first in every window, before its text (after a sink-token model's sink). */
  bosId?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The ids every window starts with before its text: a sink-token model's sink, then BOS when given. */
export function windowPrefix(sinkToken: boolean, bosId?: number): number[] {
  return [...(sinkToken ? [SINK_TOKEN] : []), ...(bosId !== undefined ? [bosId] : [])];
}

/** The window of `length` text tokens at `offset`, after the prefix. */
export function textWindow(tokens: ArrayLike<number>, offset: number, length: number, prefix: readonly number[]): number[] {
  return [...prefix, ...Array.from({ length }, (_, i) => tokens[offset + i]!)];
}

/** An observer of one window's attention: probs [heads, size, size] of layer `layer` for window `window` (valid during the call). */
export type WindowObserver = (layer: number, window: number, probs: tf.Tensor3D) => void;

/**
 * Run `count` windows, each on its own, from scratch at positions 0..size-1
 * (a CausalBlock each), `batchSize` windows per forward pass, and show the
 * observer every layer's attention probabilities. `windowAt(i)` makes window
 * i when its batch runs (a million windows of a long text are not all held
 * at once); its ids are checked before that batch's pass. Windows must have
 * equal length.
 */
export function observeWindows(
  model: Model,
  count: number,
  windowAt: (window: number) => readonly number[],
  observe: WindowObserver,
  options: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): void {
  const batchSize = options.batchSize ?? 32;
  for (let start = 0; start < count; start += batchSize) {
    const batch = Array.from({ length: Math.min(batchSize, count - start) }, (_, b) => windowAt(start + b));
    batch.forEach((w, b) => checkModelIds(model, `windows[${start + b}]`, w));
    const caches = batch.map(() => new CausalBlock());
    forwardBatch(model, batch, caches, 'last', { onAttention: (layer, b, probs) => observe(layer, start + b, probs) }).dispose();
    options.onProgress?.(start + batch.length, count);
  }
}

export interface AttentionMaps {
  layers: number;
  heads: number;
  /** Positions per window: length, plus 1 for a sink-token model's sink. */
  size: number;
  /** Text tokens per window. */
  length: number;
  sinkToken: boolean;
  /** The ids before each window's text (the sink token as SINK_TOKEN, BOS). */
  prefix: number[];
  softmax: SoftmaxVariant;
  /** Start of each window in the token list. */
  offsets: number[];
  /** Per layer, [heads, size, size] flattened: mean probability of query q on key k in head h at [(h * size + q) * size + k]. */
  probs: Float64Array[];
}

/** `samples` window starts, seeded, uniform over the places a whole window fits; `argument` names the option that asked for them. */
export function windowOffsets(textLength: number, samples: number, length: number, seed: number | string = 0, argument = 'samples'): number[] {
  if (!(Number.isInteger(samples) && samples >= 1 && samples <= MAX_WINDOWS))
    throw new UsageError(`${argument}: expected an integer in 1..${MAX_WINDOWS}, got ${samples}`);
  if (!Number.isInteger(length) || length < 1) throw new UsageError(`length: expected an integer >= 1, got ${length}`);
  if (length > textLength) throw new UsageError(`length: windows of ${length} tokens do not fit in a text of ${textLength} tokens`);
  const rng = seedrandom(`attention-windows:${seed}`);
  return Array.from({ length: samples }, () => Math.floor(rng() * (textLength - length + 1)));
}

export function attentionMaps(model: Model, tokens: ArrayLike<number>, options: AttentionMapOptions = {}): AttentionMaps {
  const samples = options.samples ?? DEFAULT_SAMPLES;
  const length = options.length ?? DEFAULT_LENGTH;
  const { layers, heads, sinkToken, softmax } = model.config;
  checkTokenIds('tokens', tokens, model.config.vocabSize);
  const offsets = windowOffsets(tokens.length, samples, length, options.seed ?? 0);
  const prefix = windowPrefix(sinkToken, options.bosId);
  const size = length + prefix.length;
  const cells = heads * size * size;
  checkHostFits(`--length ${length}: attention maps of ${size} x ${size} per head and layer`, 8 * layers * cells, 8 * cells);
  const sums = Array.from({ length: layers }, () => new Float64Array(cells));
  const onAttention = (layer: number, _window: number, probs: tf.Tensor3D) => {
    // probs: [heads, size, size], keys in position order (one CausalBlock frame)
    const p = probs.dataSync();
    const sum = sums[layer]!;
    for (let i = 0; i < cells; i++) sum[i]! += p[i]!;
  };
  observeWindows(model, offsets.length, (i) => textWindow(tokens, offsets[i]!, length, prefix), onAttention, options);
  for (const sum of sums) for (let i = 0; i < cells; i++) sum[i]! /= samples;
  return { layers, heads, size, length, sinkToken, prefix, softmax, offsets, probs: sums };
}

/** One layer's map as rows [query][key]: one head's, or the mean over heads. */
export function layerMatrix(maps: AttentionMaps, layer: number, head?: number): number[][] {
  const { size, heads } = maps;
  const p = maps.probs[layer]!;
  const chosen = head === undefined ? Array.from({ length: heads }, (_, h) => h) : [head];
  return Array.from({ length: size }, (_, q) =>
    Array.from({ length: size }, (_, k) => chosen.reduce((s, h) => s + p[(h * size + q) * size + k]!, 0) / chosen.length),
  );
}

/** Attention a head's queries (from FIRST_SCORED_QUERY on) give, on average. */
export interface SinkStat {
  /** To key 0: the first token (or a sink-token model's sink). */
  key0: number;
  /** To keys 0..3 together. */
  keys0to3: number;
  /** To all keys together: 1 for softmax, less where an extra logit takes mass. */
  rowMass: number;
}

export interface SinkScores {
  /** Queries at positions firstQuery..size-1 are averaged. */
  firstQuery: number;
  /** What uniform attention over keys 0..q would give, averaged over the same queries. */
  uniform: { key0: number; keys0to3: number };
  layers: { layer: number; mean: SinkStat; heads: SinkStat[] }[];
}

/** Sink statistics of every layer and head; needs windows longer than FIRST_SCORED_QUERY. */
export function sinkScores(maps: AttentionMaps): SinkScores {
  const { size, heads } = maps;
  const firstQuery = FIRST_SCORED_QUERY;
  if (size <= firstQuery) throw new UsageError(`length: sink scores need windows of more than ${firstQuery} positions, got ${size}`);
  const queries = size - firstQuery;
  let u0 = 0;
  let u4 = 0;
  for (let q = firstQuery; q < size; q++) {
    u0 += 1 / (q + 1);
    u4 += 4 / (q + 1);
  }
  const layers = maps.probs.map((p, layer) => {
    const stats = Array.from({ length: heads }, (_, h): SinkStat => {
      let key0 = 0;
      let keys0to3 = 0;
      let rowMass = 0;
      for (let q = firstQuery; q < size; q++) {
        const row = (h * size + q) * size;
        key0 += p[row]!;
        for (let k = 0; k <= q; k++) {
          if (k < 4) keys0to3 += p[row + k]!;
          rowMass += p[row + k]!;
        }
      }
      return { key0: key0 / queries, keys0to3: keys0to3 / queries, rowMass: rowMass / queries };
    });
    const mean = (f: (s: SinkStat) => number) => stats.reduce((a, s) => a + f(s), 0) / heads;
    return { layer, mean: { key0: mean((s) => s.key0), keys0to3: mean((s) => s.keys0to3), rowMass: mean((s) => s.rowMass) }, heads: stats };
  });
  return { firstQuery, uniform: { key0: u0 / queries, keys0to3: u4 / queries }, layers };
}
