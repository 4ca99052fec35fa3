// The forward pass: token ids in, logits out, one block of tokens at a time,
// reading and writing keys and values through a KV cache.
//
//   x = embed(ids)                                      [T, dim]
//   for each layer:
//     x = x + attention(norm(x))   (keys/values through the cache)
//     x = x + mlp(norm(x))
//   logits = norm(x) @ classifier                       [T, vocab]
//
// GPT-NeoX's parallel residual computes both branches from the same x.
import * as tf from '@tensorflow/tfjs';
import { attention, type AttentionFrame, attentionProbabilities } from '../../kernels/attention.js';
import { causalAttention } from '../../kernels/causal_attention.js';
import { jsKernelsAvailable } from '../../kernels/js_kernel.js';
import { embed } from '../../kernels/embedding.js';
import { qkvHeads } from '../../kernels/qkv_heads.js';
import { type RopeAngles, ropeAngles } from '../../kernels/rope.js';
import { CausalBlock } from '../cache/causal_block.js';
import type { BlockView, KVCache } from '../cache/types.js';
import type { ModelConfig } from './config.js';
import { mlp, norm } from './parts.js';
import { classify, project } from './project.js';
import type { LayerWeights, Model } from './weights.js';

/** Stands for the learned sink token (sinkToken models) in an id list. */
export const SINK_TOKEN = -1;

/** The rotations one block needs, shared by all layers. */
interface BlockAngles {
  keys: RopeAngles;
  frames: RopeAngles[];
}

/** [n, T, headDim] -> [T, n * headDim] */
function mergeHeads(x: tf.Tensor3D): tf.Tensor2D {
  const [n, T, headDim] = x.shape;
  if (T === 1) return x.reshape([1, n * headDim]);
  return x.transpose([1, 0, 2]).reshape([T, n * headDim]);
}

/** Token embeddings [T, dim]; SINK_TOKEN entries take the learned sink embedding. */
export function embedTokens(model: Model, ids: readonly number[]): tf.Tensor2D {
  const { embedding, sinkEmbedding } = model.weights;
  const list = ids;
  // tf.gather would quietly return zeros (wasm) or garbage for a bad id.
  const vocab = model.config.vocabSize;
  for (const id of list) {
    if (id !== SINK_TOKEN && !(Number.isInteger(id) && id >= 0 && id < vocab)) throw new RangeError(`token id ${id} is outside the vocabulary 0..${vocab - 1}`);
  }
  if (!list.includes(SINK_TOKEN)) return embed(embedding, list);
  if (sinkEmbedding === undefined) throw new Error('embedTokens: SINK_TOKEN given to a model without a sink embedding');
  return tf.tidy(() => {
    const rows: tf.Tensor2D[] = [];
    for (let i = 0; i < list.length; ) {
      let j = i;
      if (list[i] === SINK_TOKEN) {
        rows.push(sinkEmbedding.reshape([1, -1]));
        j++;
      } else {
        while (j < list.length && list[j] !== SINK_TOKEN) j++;
        rows.push(embed(embedding, list.slice(i, j)));
      }
      i = j;
    }
    return tf.concat(rows, 0);
  });
}

/**
 * Sees the attention probabilities of every layer as they are computed, for
 * attention maps: `probs` is [heads, T, n] for sequence `sequence` of the
 * batch, its columns the cache entries in the view's frame order (for a
 * CausalBlock: key positions 0..T-1). The tensor lives only during the
 * call: read it (dataSync) or clone it. Without an observer the forward
 * pass does no extra work.
 */
export type AttentionObserver = (layer: number, sequence: number, probs: tf.Tensor3D) => void;

export interface ForwardOptions {
  onAttention?: AttentionObserver;
}

/** What one sequence of a batch attends through: its cache, its view, its rotations. */
interface SequenceState {
  cache: KVCache;
  view: BlockView;
  angles: BlockAngles;
}

/**
 * Self-attention of one layer; x: [B*T, dim] (already normalised), B
 * sequences of T tokens one after another -> [B*T, dim]. The projections run
 * on the whole batch; attention runs per sequence, through its own cache,
 * or, when every sequence is a fresh causal block (training), for the whole
 * batch in one op.
 */
function selfAttention(
  config: ModelConfig,
  w: LayerWeights,
  x: tf.Tensor2D,
  layer: number,
  batch: SequenceState[],
  causal: RopeAngles | undefined,
  onAttention: AttentionObserver | undefined,
): tf.Tensor2D {
  const { heads, kvHeads, headDim } = config;
  const T = x.shape[0] / batch.length;
  // qkv: [B*T, (heads + 2 kvHeads) * headDim]
  const qkv = project(x, w.qkv);
  if (causal !== undefined) {
    const spec = { batch: batch.length, heads, kvHeads, headDim, rope: config.rope, variant: config.softmax };
    return project(causalAttention(qkv, causal, spec, w.sinkLogits), w.out);
  }
  const outs = batch.map(({ cache, view, angles }, b) => {
    // Keys are rotated once, at their own position, and stored that way;
    // queries once per frame of the view.
    const { queries, keys, values } = qkvHeads(qkv, b * T, T, config, angles.keys, angles.frames, config.rope);
    const entries = cache.store(layer, keys, values);
    const frames: AttentionFrame[] = view.frames.map((f, i) => ({
      queries: queries[i]!, // [heads, T, headDim]
      keyStart: f.keyStart,
      keyEnd: f.keyEnd,
      rowRanges: f.rowRanges,
    }));
    const spec = { variant: config.softmax, sinkLogits: w.sinkLogits };
    if (onAttention !== undefined) onAttention(layer, b, attentionProbabilities(frames, entries.keys, spec));
    const out = attention(frames, entries.keys, entries.values, spec);
    return mergeHeads(out); // [T, heads * headDim]
  });
  return project(outs.length === 1 ? outs[0]! : tf.concat(outs, 0), w.out);
}

/** One transformer layer; x: [B*T, dim] -> [B*T, dim]. */
function transformerLayer(
  config: ModelConfig,
  w: LayerWeights,
  x: tf.Tensor2D,
  layer: number,
  batch: SequenceState[],
  causal: RopeAngles | undefined,
  onAttention: AttentionObserver | undefined,
): tf.Tensor2D {
  const attend = (h: tf.Tensor2D) => selfAttention(config, w, h, layer, batch, causal, onAttention);
  if (config.parallelResidual) {
    return x.add<tf.Tensor2D>(attend(norm(config, w.attnNorm, x))).add<tf.Tensor2D>(mlp(config, w, norm(config, w.mlpNorm, x)));
  }
  const h = x.add<tf.Tensor2D>(attend(norm(config, w.attnNorm, x)));
  return h.add<tf.Tensor2D>(mlp(config, w, norm(config, w.mlpNorm, h)));
}

/**
 * Run B sequences of T tokens each through the model, each at its own
 * cache's stream position. Returns logits [B*T, vocab] (sequence after
 * sequence), or [B, vocab] for the last token of each.
 */
export function forwardBatch(
  model: Model,
  batch: readonly (readonly number[])[],
  caches: readonly KVCache[],
  logits: 'all' | 'last' = 'all',
  options: ForwardOptions = {},
): tf.Tensor2D {
  const { config, weights } = model;
  const T = batch[0]!.length;
  if (batch.some((ids) => ids.length !== T)) throw new Error('forwardBatch: sequences must have equal length');
  if (caches.length !== batch.length) throw new Error('forwardBatch: one cache per sequence');
  const views = caches.map((c) => c.begin(T));
  try {
    return tf.tidy(() => {
      const states: SequenceState[] = caches.map((cache, b) => ({
        cache,
        view: views[b]!,
        angles: {
          keys: ropeAngles(views[b]!.keyPositions, config.rope),
          frames: views[b]!.frames.map((f) => ropeAngles(f.queryPositions, config.rope)),
        },
      }));
      // Fresh causal blocks (training, scoring windows) take the batched path
      // where the backend has JS kernels; its angles are those of 0..T-1. An
      // attention observer needs the probabilities, which only the general
      // path computes.
      const causal =
        options.onAttention === undefined && jsKernelsAvailable() && caches.every((c) => c instanceof CausalBlock)
          ? states[0]!.angles.frames[0]
          : undefined;
      let x = embedTokens(model, batch.flat()); // [B*T, dim]
      for (let l = 0; l < config.layers; l++) x = transformerLayer(config, weights.layers[l]!, x, l, states, causal, options.onAttention);
      if (logits === 'last' && T > 1) {
        x = tf.concat(batch.map((_, b) => x.slice([b * T + T - 1, 0], [1, config.dim])), 0);
      }
      return classify(norm(config, weights.finalNorm, x), weights); // [rows, vocab]
    });
  } finally {
    caches.forEach((c) => c.end());
  }
}

/** One sequence: logits [T, vocab], or [1, vocab] for the last token only. */
export function forward(
  model: Model,
  ids: readonly number[],
  cache: KVCache,
  logits: 'all' | 'last' = 'all',
  options: ForwardOptions = {},
): tf.Tensor2D {
  return forwardBatch(model, [ids], [cache], logits, options);
}
