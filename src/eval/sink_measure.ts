// Does the model have an attention sink? A yes/no measurement per layer and
// head, on windows as long as the model's training samples.
//
// Each window is run from scratch like a training sample (see
// attention_maps.ts): a sink-token model's sink first, BOS first when the
// model was trained that way, then text. Per head and query position t the
// profile keeps, averaged over the windows:
//
//   key0[t]     the attention on key 0
//   logitGap[t] the sink's logit minus the mean content logit,
//               q·k0/sqrt(d) - mean_{k=1..t} q·kk/sqrt(d)
//
// The gap comes from the probabilities: every probability of a row shares
// the row's normaliser, so log p0 - mean log pk is exactly s0 - mean sk,
// for softmax and for the variants with an extra logit alike. A probability
// that underflowed to 0 (a logit more than ~100 below the row's largest) is
// taken as the smallest float32 and counted in `underflow`.
//
// The verdict (sinkVerdict) looks at queries in the second half of the
// window, t in [W/2, W), where uniform attention would give key 0 only
// mean 1/(t+1): a head has a sink when its mean attention on key 0 there is
// at least SINK_SHARE and at least SINK_RATIO times that uniform share. The
// logit gap at short range (t in [4, 16)) and long range says whether the
// sink holds as t grows: keeping a share of attention against t content
// keys needs a gap that grows like log t.
import type * as tf from '@tensorflow/tfjs';
import type { SoftmaxVariant } from '../../kernels/softmax.js';
import { UsageError } from '../errors.js';
import { checkTokenIds } from '../model/token_ids.js';
import { checkModelIds, SINK_TOKEN } from '../model/transformer.js';
import type { Model } from '../model/weights.js';
import { observeWindows, textWindow, windowOffsets, windowPrefix } from './attention_maps.js';

import { SINK_WINDOWS } from './attention_defaults.js';
export { SINK_WINDOWS };
/** A head is a sink when its mean attention on key 0 at long range is at least this... */
export const SINK_SHARE = 0.3;
/** ...and at least this many times the uniform share. */
export const SINK_RATIO = 5;
/** Short range: queries at positions [4, 16) (fewer when the window is shorter). */
export const SHORT_RANGE = [4, 16] as const;
/** The smallest window: a short range of at least one query below the long range [size/2, size). */
export const MIN_SINK_WINDOW = 2 * SHORT_RANGE[0] + 2;

/**
 * Bytes of attention tensors one window of W positions holds until its
 * forward pass ends: scores, mask and probabilities, [heads, W, W] float32
 * each, in every layer.
 */
export function sinkWindowBytes(layers: number, heads: number, size: number): number {
  return 3 * 4 * layers * heads * size * size;
}
/** What one batch of windows may hold in attention tensors; a window needing more is refused. */
export const SINK_BATCH_BYTES = 2 ** 30;

/** Windows per forward pass that keep within SINK_BATCH_BYTES (at most `wanted`); a UsageError when one window alone is too large. */
export function sinkBatchSize(layers: number, heads: number, size: number, wanted = 32): number {
  checkSize(size);
  const bytes = sinkWindowBytes(layers, heads, size);
  const fits = Math.floor(SINK_BATCH_BYTES / bytes);
  if (fits < 1) {
    const most = Math.floor(Math.sqrt(SINK_BATCH_BYTES / sinkWindowBytes(layers, heads, 1)));
    throw new UsageError(
      `window: a sink measurement window of ${size} positions holds ${(bytes / 2 ** 30).toFixed(1)} GiB of attention tensors (${layers} layers x ${heads} heads x ${size}^2 x 12 bytes), above the ${SINK_BATCH_BYTES / 2 ** 30} GiB limit; expected at most ${most}`,
    );
  }
  return Math.min(wanted, fits);
}

/** Log of the smallest positive float32: where an underflowed probability is floored. */
const LOG_FLOOR = Math.log(1.401298464324817e-45);

export interface SinkProfileOptions {
  /** Windows to average (default SINK_WINDOWS). */
  windows?: number;
  /** Positions per window, prefix included (default: the model's trained length). */
  size?: number;
  /** Seed of the window offsets (default 0). */
  seed?: number | string;
  /** BOS first in every window (after a sink-token model's sink). */
  bosId?: number;
  /** Windows per forward pass (default 32). */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SinkProfile {
  layers: number;
  heads: number;
  /** Positions per window, prefix included: key 0 is the prefix's first id, or the text's first token. */
  size: number;
  windows: number;
  sinkToken: boolean;
  softmax: SoftmaxVariant;
  /** The ids before each window's text (-1: the learned sink token); for windows given by the caller, the sink token if first. */
  prefix: number[];
  /** Start of each window's text in the token list (empty for windows given by the caller). */
  offsets: number[];
  /** Per layer, [heads * size]: mean attention of query t on key 0 at [h * size + t]. */
  key0: Float64Array[];
  /** Per layer, [heads * size]: mean of (logit of key 0 - mean logit of keys 1..t) at [h * size + t]; 0 at t = 0. */
  logitGap: Float64Array[];
  /** Probabilities that were exactly 0 (floored before the log). */
  underflow: number;
}

/** Accumulates one window's probabilities [heads, size, size] into the profile's sums. */
function accumulate(p: ArrayLike<number>, heads: number, size: number, key0: Float64Array, gap: Float64Array): number {
  let underflow = 0;
  const log = (x: number) => {
    if (x > 0) return Math.log(x);
    underflow++;
    return LOG_FLOOR;
  };
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < size; t++) {
      const row = (h * size + t) * size;
      const at = h * size + t;
      key0[at] = key0[at]! + p[row]!;
      if (t === 0) continue;
      let content = 0;
      for (let k = 1; k <= t; k++) content += log(p[row + k]!);
      gap[at] = gap[at]! + log(p[row]!) - content / t;
    }
  }
  return underflow;
}

/** Attention on key 0 and the sink's logit gap per layer, head and query position, over windows of the text. */
export function sinkProfile(model: Model, tokens: ArrayLike<number>, options: SinkProfileOptions = {}): SinkProfile {
  const windows = options.windows ?? SINK_WINDOWS;
  const size = options.size ?? model.config.maxSeqLen;
  checkSize(size);
  checkTokenIds('tokens', tokens, model.config.vocabSize);
  const prefix = windowPrefix(model.config.sinkToken, options.bosId);
  const length = size - prefix.length;
  if (length > tokens.length) throw new UsageError(`window: windows of ${size} positions need ${length} text tokens; the text has ${tokens.length}`);
  const offsets = windowOffsets(tokens.length, windows, length, options.seed ?? 0, 'windows');
  const profile = profileOf(model, offsets.length, (i) => textWindow(tokens, offsets[i]!, length, prefix), options);
  return { ...profile, prefix, offsets };
}

/**
 * The profile of windows the caller made (each run from scratch as given:
 * put the sink token, -1, or BOS first where the model expects them). All
 * windows must have the same length.
 */
export function sinkProfileOf(
  model: Model,
  windows: readonly (readonly number[])[],
  options: Pick<SinkProfileOptions, 'batchSize' | 'onProgress'> = {},
): SinkProfile {
  if (windows.length === 0) throw new UsageError('windows: expected at least one window');
  const size = windows[0]!.length;
  if (windows.some((w) => w.length !== size)) throw new UsageError(`windows: expected windows of equal length (${size})`);
  windows.forEach((w, i) => checkModelIds(model, `windows[${i}]`, w)); // all before the first pass
  return profileOf(model, windows.length, (i) => windows[i]!, options);
}

/** The profile of `count` windows of one length, window i made by `windowAt(i)` when its batch runs. */
function profileOf(
  model: Model,
  count: number,
  windowAt: (window: number) => readonly number[],
  options: Pick<SinkProfileOptions, 'batchSize' | 'onProgress'>,
): SinkProfile {
  const first = windowAt(0);
  const size = first.length;
  checkSize(size);
  const { layers, heads, sinkToken, softmax } = model.config;
  const batchSize = sinkBatchSize(layers, heads, size, options.batchSize);
  const key0 = Array.from({ length: layers }, () => new Float64Array(heads * size));
  const logitGap = Array.from({ length: layers }, () => new Float64Array(heads * size));
  let underflow = 0;
  const observe = (layer: number, _window: number, probs: tf.Tensor3D) => {
    // probs: [heads, size, size]
    underflow += accumulate(probs.dataSync(), heads, size, key0[layer]!, logitGap[layer]!);
  };
  observeWindows(model, count, windowAt, observe, { batchSize, onProgress: options.onProgress });
  for (const a of [...key0, ...logitGap]) for (let i = 0; i < a.length; i++) a[i]! /= count;
  const prefix = sinkToken && first[0] === SINK_TOKEN ? [SINK_TOKEN] : [];
  return { layers, heads, size, windows: count, sinkToken, softmax, prefix, offsets: [], key0, logitGap, underflow };
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < MIN_SINK_WINDOW)
    throw new UsageError(`window: sink scores need windows of at least ${MIN_SINK_WINDOW} positions, got ${size}`);
}

export interface SinkRule {
  /** Minimum mean attention on key 0 at long range. */
  share: number;
  /** Minimum multiple of the uniform share. */
  ratio: number;
}

export interface HeadSink {
  layer: number;
  head: number;
  /** Mean attention on key 0, queries at long range. */
  key0: number;
  /** key0 / the uniform share at long range. */
  overUniform: number;
  /** Mean attention on key 0, queries at short range. */
  key0Short: number;
  /** Mean logit gap (key 0 minus the mean content logit) at short and at long range. */
  gapShort: number;
  gapLong: number;
  /** The rule's verdict. */
  sink: boolean;
}

export interface SinkVerdict {
  /** The rule in words. */
  rule: string;
  share: number;
  ratio: number;
  size: number;
  windows: number;
  /** Query positions [from, to) of each range. */
  shortRange: [number, number];
  longRange: [number, number];
  /** Mean of 1/(t+1) over each range: what uniform attention gives key 0. */
  uniformShort: number;
  uniformLong: number;
  /** Per layer: every head, and the index of the one with most attention on key 0 at long range. */
  layers: { layer: number; strongest: number; heads: HeadSink[] }[];
  /** The head with most attention on key 0 at long range, over all layers. */
  strongest: HeadSink;
  /** How many heads have a sink by the rule. */
  sinkHeads: number;
  /** Whether any head has one. */
  sink: boolean;
  underflow: number;
}

/** Mean of values[h * size + t] over t in [from, to). */
function rangeMean(values: Float64Array, h: number, size: number, [from, to]: readonly [number, number]): number {
  let s = 0;
  for (let t = from; t < to; t++) s += values[h * size + t]!;
  return s / (to - from);
}

/** The yes/no reading of a profile: per head, per layer, and for the model. */
export function sinkVerdict(profile: SinkProfile, rule: SinkRule = { share: SINK_SHARE, ratio: SINK_RATIO }): SinkVerdict {
  const { size, heads } = profile;
  const longRange: [number, number] = [Math.floor(size / 2), size];
  const shortRange: [number, number] = [SHORT_RANGE[0], Math.min(SHORT_RANGE[1], longRange[0])];
  if (shortRange[1] <= shortRange[0]) throw new UsageError(`window: sink scores need windows of at least ${MIN_SINK_WINDOW} positions, got ${size}`);
  const uniform = ([from, to]: [number, number]) => {
    let s = 0;
    for (let t = from; t < to; t++) s += 1 / (t + 1);
    return s / (to - from);
  };
  const uniformShort = uniform(shortRange);
  const uniformLong = uniform(longRange);
  const layers = profile.key0.map((key0, layer) => {
    const gap = profile.logitGap[layer]!;
    const list = Array.from({ length: heads }, (_, head): HeadSink => {
      const long = rangeMean(key0, head, size, longRange);
      return {
        layer,
        head,
        key0: long,
        overUniform: long / uniformLong,
        key0Short: rangeMean(key0, head, size, shortRange),
        gapShort: rangeMean(gap, head, size, shortRange),
        gapLong: rangeMean(gap, head, size, longRange),
        sink: long >= rule.share && long >= rule.ratio * uniformLong,
      };
    });
    const strongest = list.reduce((best, h, i) => (h.key0 > list[best]!.key0 ? i : best), 0);
    return { layer, strongest, heads: list };
  });
  const all = layers.flatMap((l) => l.heads);
  const strongest = all.reduce((best, h) => (h.key0 > best.key0 ? h : best), all[0]!);
  const sinkHeads = all.filter((h) => h.sink).length;
  return {
    rule: `a head has a sink when queries at t in [${longRange[0]}, ${longRange[1]}) put on average at least ${rule.share} of their attention on key 0 and at least ${rule.ratio}x the uniform share (${uniformLong.toFixed(4)})`,
    share: rule.share,
    ratio: rule.ratio,
    size,
    windows: profile.windows,
    shortRange,
    longRange,
    uniformShort,
    uniformLong,
    layers,
    strongest,
    sinkHeads,
    sink: sinkHeads > 0,
    underflow: profile.underflow,
  };
}
