// Causal attention over a KV cache's entries, with grouped-query heads and a
// pluggable softmax: the math, as tfjs ops (any backend, any T,
// differentiable), and the one entry point that picks the implementation
// (kernels/paths.ts says which runs where; kernels/attention_fused.ts is the
// fused loop, JS and SIMD, that computes the same numbers).
//
//   per head h (kv head g), query row t, entries j it sees, scale 1/sqrt(d):
//     s_j = scale q_t . k_j          p = normalise_variant(s)      out_t = sum_j p_j v_j
//
// The queries come in "frames" (see src/cache/types.ts): each frame holds the
// queries rotated to one query position and says which entries each query
// row sees through it. The softmax runs jointly over all frames of a row, so
// a streaming cache's sinks (one frame) and recent window (another) form one
// distribution, exactly as if they had been re-encoded into one cache.
//
// Heads are grouped: with kvHeads < heads, head h reads kv head
// floor(h / (heads / kvHeads)) (llama2.c's kv_mul, HF's repeat_kv).
import * as tf from '@tensorflow/tfjs';
import { batchMatMul, transposeLast } from './matmul.js';
import { fusedAttention } from './attention_fused.js';
import { attentionPath, pooledAttentionRuns } from './paths.js';
import { pooledAttention } from './pooled_attention.js';
import type { WorkerPool } from './pool.js';
import { simdAvailable } from './simd/instance.js';
import { extraLogitTensor, type SoftmaxVariant, softmaxRule } from './softmax.js';

export interface AttentionFrame {
  /** [heads, T, headDim], rotated to this frame's query positions. */
  queries: tf.Tensor3D;
  /** The frame's keys are entries [keyStart, keyEnd). */
  keyStart: number;
  keyEnd: number;
  /** [T * 2]: query row t sees entries [rowRanges[2t], rowRanges[2t+1]), inside the frame's keys. */
  rowRanges: Int32Array;
}

export interface SoftmaxSpec {
  variant: SoftmaxVariant;
  /** [heads]: the learned extra logits, for a variant that learns them ('learned-sink'). */
  sinkLogits?: tf.Tensor1D;
}

/** Scores of a masked-out entry: exp() of it is exactly 0 in float32. */
const MASKED = -1e30;

/** Additive mask [T, n] for one frame: 0 where row t sees entry keyStart + j, MASKED elsewhere. */
function frameMask(frame: AttentionFrame, T: number): tf.Tensor2D {
  const n = frame.keyEnd - frame.keyStart;
  const mask = new Float32Array(T * n).fill(MASKED);
  for (let t = 0; t < T; t++) {
    const lo = frame.rowRanges[2 * t]! - frame.keyStart;
    const hi = frame.rowRanges[2 * t + 1]! - frame.keyStart;
    mask.fill(0, t * n + lo, t * n + hi);
  }
  return tf.tensor2d(mask, [T, n]);
}

/** A frame's entries of keys or values: [kvHeads, n_f, headDim], sliced only when the frame covers part of them. */
function frameEntries(entries: tf.Tensor3D, f: AttentionFrame): tf.Tensor3D {
  const [kvHeads, n, headDim] = entries.shape;
  if (f.keyStart === 0 && f.keyEnd === n) return entries;
  return entries.slice([0, f.keyStart, 0], [kvHeads, f.keyEnd - f.keyStart, headDim]);
}

/**
 * Probabilities [kvHeads, group, T, sum of n_f]: each frame's scaled, masked
 * scores joined along the entries, then one softmax per row (with the
 * variant's extra logit), so all frames of a row form one distribution.
 */
function jointProbabilities(frames: AttentionFrame[], frameKeys: tf.Tensor3D[], spec: SoftmaxSpec): tf.Tensor4D {
  const [heads, T, headDim] = frames[0]!.queries.shape;
  const kvHeads = frameKeys[0]!.shape[0];
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  // scores: [kvHeads, group, T, n_f] per frame
  const scores = frames.map((f, i) => {
    const q = f.queries.reshape<tf.Tensor3D>([kvHeads, group * T, headDim]);
    const s = batchMatMul(q, transposeLast(frameKeys[i]!)).mul<tf.Tensor3D>(scale);
    return s.reshape([kvHeads, group, T, frameKeys[i]!.shape[1]]).add(frameMask(f, T));
  });
  const joined = scores.length === 1 ? scores[0]! : tf.concat(scores, 3);
  // the variant's extra logit per head, [kvHeads, group, 1, 1]
  return softmaxRule(spec.variant).normaliseOps(joined, extraLogitTensor(spec.variant, [kvHeads, group, 1, 1], spec.sinkLogits)) as tf.Tensor4D;
}

/** Attention with tfjs ops: any backend, any T, differentiable. */
function attentionOps(frames: AttentionFrame[], keys: tf.Tensor3D, values: tf.Tensor3D, spec: SoftmaxSpec): tf.Tensor3D {
  return tf.tidy(() => {
    const [heads, T, headDim] = frames[0]!.queries.shape;
    const kvHeads = keys.shape[0];
    const group = heads / kvHeads;
    const frameKeys = frames.map((f) => frameEntries(keys, f));
    const sizes = frames.map((f) => f.keyEnd - f.keyStart);
    const probs = jointProbabilities(frames, frameKeys, spec);
    const perFrame = frames.length === 1 ? [probs] : tf.split(probs, sizes, 3);
    // out: [kvHeads, group * T, headDim], summed over frames
    const outs = perFrame.map((p, i) => batchMatMul(p.reshape<tf.Tensor3D>([kvHeads, group * T, sizes[i]!]), frameEntries(values, frames[i]!)));
    const out = outs.length === 1 ? outs[0]! : tf.addN(outs);
    return out.reshape<tf.Tensor3D>([heads, T, headDim]);
  });
}

/**
 * The attention probabilities themselves, for attention maps: [heads, T, n]
 * where the n columns are the frames' entries one frame after another
 * ([keyStart, keyEnd) of frame 0, then of frame 1, ...); entries a row does
 * not see are exactly 0. Rows sum to 1 for 'softmax', to less for the
 * variants with an extra logit (the rest went to "nothing").
 */
export function attentionProbabilities(frames: AttentionFrame[], keys: tf.Tensor3D, spec: SoftmaxSpec): tf.Tensor3D {
  return tf.tidy(() => {
    const [heads, T] = frames[0]!.queries.shape;
    const probs = jointProbabilities(
      frames,
      frames.map((f) => frameEntries(keys, f)),
      spec,
    );
    return probs.reshape<tf.Tensor3D>([heads, T, probs.shape[3]]);
  });
}

/**
 * Attention of the frames' queries over keys/values: [kvHeads, n, headDim]
 * (keys already rotated to their positions). Returns [heads, T, headDim].
 * With a worker pool of several threads, a large block runs on them
 * (kernels/paths.ts says when).
 */
export function attention(frames: AttentionFrame[], keys: tf.Tensor3D, values: tf.Tensor3D, spec: SoftmaxSpec, pool?: WorkerPool): tf.Tensor3D {
  const [, T, headDim] = frames[0]!.queries.shape;
  if (pooledAttentionRuns(pool, T, headDim, spec.variant, simdAvailable)) {
    const out = pooledAttention(pool!, frames, keys, values, spec);
    if (out !== undefined) return out;
  }
  if (attentionPath(T, simdAvailable) === 'fused') return fusedAttention(frames, keys, values, spec);
  return attentionOps(frames, keys, values, spec);
}
