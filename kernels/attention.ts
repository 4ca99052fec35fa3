// Causal attention over a KV cache's entries, with grouped-query heads and a
// pluggable softmax.
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
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';
import { simdAvailable, simdLoops, type SimdLoops } from './simd/instance.js';
import { extraLogitOf, extraLogitTensor, learnsExtraLogit, type SoftmaxVariant, softmaxRule } from './softmax.js';

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
    const probs = jointProbabilities(frames, frames.map((f) => frameEntries(keys, f)), spec);
    return probs.reshape<tf.Tensor3D>([heads, T, probs.shape[3]]);
  });
}

interface FusedAttrs {
  frameCount: number;
  rowRanges: Int32Array[];
  variant: SoftmaxVariant;
}

/** sum_c a[ai + c] * b[bi + c] for c < n (n a multiple of 4 or not). */
function dot(a: Float32Array, ai: number, b: Float32Array, bi: number, n: number): number {
  let d0 = 0;
  let d1 = 0;
  let d2 = 0;
  let d3 = 0;
  let c = 0;
  for (; c + 3 < n; c += 4) {
    d0 += a[ai + c]! * b[bi + c]!;
    d1 += a[ai + c + 1]! * b[bi + c + 1]!;
    d2 += a[ai + c + 2]! * b[bi + c + 2]!;
    d3 += a[ai + c + 3]! * b[bi + c + 3]!;
  }
  for (; c < n; c++) d0 += a[ai + c]! * b[bi + c]!;
  return d0 + d1 + d2 + d3;
}

/** acc[c] += p * v[vi + c] for c < n. */
function axpy(acc: Float64Array, p: number, v: Float32Array, vi: number, n: number): void {
  let c = 0;
  for (; c + 3 < n; c += 4) {
    acc[c]! += p * v[vi + c]!;
    acc[c + 1]! += p * v[vi + c + 1]!;
    acc[c + 2]! += p * v[vi + c + 2]!;
    acc[c + 3]! += p * v[vi + c + 3]!;
  }
  for (; c < n; c++) acc[c]! += p * v[vi + c]!;
}

/** Entries query row t sees through each frame, added up: the row's number of scores. */
function rowCount(rowRanges: Int32Array[], t: number): number {
  let n = 0;
  for (const r of rowRanges) n += r[2 * t + 1]! - r[2 * t]!;
  return n;
}

/** The fused kernel's operands: each frame's queries [heads, T, headDim], then keys and values [kvHeads, capacity, headDim]. */
function fusedOperands(inputs: Float32Array[], shapes: number[][], frameCount: number) {
  const [heads, T, headDim] = shapes[0] as [number, number, number];
  const [kvHeads, capacity] = shapes[frameCount] as [number, number];
  const keys = inputs[frameCount]!;
  const values = inputs[frameCount + 1]!;
  return { heads, T, headDim, capacity, group: heads / kvHeads, scale: 1 / Math.sqrt(headDim), keys, values };
}

/** The decode loop in plain JavaScript (float64 sums): the cpu backend, and any headDim. */
function attendJs(inputs: Float32Array[], shapes: number[][], out: Float32Array, attrs: FusedAttrs): void {
  const { frameCount, rowRanges, variant } = attrs;
  const rule = softmaxRule(variant);
  const { heads, T, headDim, capacity, group, scale, keys, values } = fusedOperands(inputs, shapes, frameCount);
  let count = 0;
  for (let t = 0; t < T; t++) count = Math.max(count, rowCount(rowRanges, t));
  const scores = new Float64Array(count);
  const acc = new Float64Array(headDim);
  for (let h = 0; h < heads; h++) {
    const kvBase = Math.floor(h / group) * capacity;
    for (let t = 0; t < T; t++) {
      const qOff = (h * T + t) * headDim;
      // 1. scaled scores of every visible entry, frame after frame
      let s = 0;
      for (let f = 0; f < frameCount; f++) {
        const q = inputs[f]!;
        for (let j = rowRanges[f]![2 * t]!; j < rowRanges[f]![2 * t + 1]!; j++) {
          scores[s++] = dot(q, qOff, keys, (kvBase + j) * headDim, headDim) * scale;
        }
      }
      // 2. the variant's normaliser, with its extra logit
      rule.normaliseRow(scores, s, extraLogitOf(variant, h, inputs[frameCount + 2]));
      // 3. probability-weighted sum of the values
      acc.fill(0);
      s = 0;
      for (let f = 0; f < frameCount; f++) {
        for (let j = rowRanges[f]![2 * t]!; j < rowRanges[f]![2 * t + 1]!; j++) {
          axpy(acc, scores[s++]!, values, (kvBase + j) * headDim, headDim);
        }
      }
      for (let c = 0; c < headDim; c++) out[qOff + c] = acc[c]!;
    }
  }
}

/**
 * The same loop in WebAssembly SIMD (kernels/simd/loops.wat) for the softmax
 * family (kernels/softmax.ts), on the tensors in place: one call per head and query row, which takes byte
 * offsets into the wasm heap. Scratch holds the row's plan (per frame: the
 * rotated query, the first key it sees, how many) and then its scores.
 */
function attendSimd(simd: SimdLoops, inputs: Float32Array[], shapes: number[][], out: Float32Array, attrs: FusedAttrs, scratch: Float32Array): void {
  const { frameCount, rowRanges, variant } = attrs;
  const { heads, T, headDim, capacity, group, scale, keys, values } = fusedOperands(inputs, shapes, frameCount);
  const rowBytes = 4 * headDim;
  const plan = new Int32Array(scratch.buffer, scratch.byteOffset, 3 * frameCount);
  const scores = scratch.byteOffset + plan.byteLength;
  for (let h = 0; h < heads; h++) {
    const kvBase = keys.byteOffset + Math.floor(h / group) * capacity * rowBytes;
    const sink = extraLogitOf(variant, h, inputs[frameCount + 2]);
    for (let t = 0; t < T; t++) {
      const qOff = (h * T + t) * rowBytes;
      for (let f = 0; f < frameCount; f++) {
        const lo = rowRanges[f]![2 * t]!;
        plan[3 * f] = inputs[f]!.byteOffset + qOff;
        plan[3 * f + 1] = kvBase + lo * rowBytes;
        plan[3 * f + 2] = rowRanges[f]![2 * t + 1]! - lo;
      }
      simd.attendRow(plan.byteOffset, frameCount, values.byteOffset - keys.byteOffset, headDim, scale, sink, scores, out.byteOffset + qOff);
    }
  }
}

// One loop for the queries against the cache, only over the entries each row
// sees: the decode step, and with SIMD any block (blocked scoring). Inputs
// are the frames' queries, then keys, values and (learned-sink) the sink logits.
const fusedKernel: JsKernel<FusedAttrs> = {
  name: 'StreamllmAttention',
  outputShape: ([q]) => q!,
  // room for one query row's plan (three int32 per frame) and scores, all frames
  scratchSize: ([q], { rowRanges }) => {
    let count = 0;
    for (let t = 0; t < q![1]!; t++) count = Math.max(count, rowCount(rowRanges, t));
    return 3 * rowRanges.length + count;
  },
  run(inputs, shapes, out, attrs, scratch) {
    const headDim = shapes[0]![2]!;
    // the SIMD loop computes the softmax family itself; any other normaliser runs the JS loop
    const simd = headDim % 4 === 0 && softmaxRule(attrs.variant).softmaxFamily ? simdLoops([...inputs, out, scratch]) : undefined;
    if (simd !== undefined) attendSimd(simd, inputs, shapes, out, attrs, scratch);
    else attendJs(inputs, shapes, out, attrs);
  },
};

/**
 * Largest query block for which the fused JavaScript loop beats matrix
 * products. The SIMD loop takes any block: it computes only the scores each
 * row sees, in place, where the op path slices heads apart (copies on wasm),
 * scores every entry, masks and softmaxes the lot.
 */
const FUSED_MAX_QUERIES = 4;

/**
 * Attention of the frames' queries over keys/values: [kvHeads, n, headDim]
 * (keys already rotated to their positions). Returns [heads, T, headDim].
 */
export function attention(frames: AttentionFrame[], keys: tf.Tensor3D, values: tf.Tensor3D, spec: SoftmaxSpec): tf.Tensor3D {
  const T = frames[0]!.queries.shape[1];
  if (jsKernelsAvailable() && !tf.engine().isTapeOn() && (T <= FUSED_MAX_QUERIES || simdAvailable())) {
    const inputs = [...frames.map((f) => f.queries), keys, values];
    if (learnsExtraLogit(spec.variant)) {
      if (spec.sinkLogits === undefined) throw new Error(`attention: '${spec.variant}' needs sinkLogits`);
      inputs.push(spec.sinkLogits as unknown as tf.Tensor3D);
    }
    const attrs: FusedAttrs = {
      frameCount: frames.length,
      rowRanges: frames.map((f) => f.rowRanges),
      variant: spec.variant,
    };
    return runJsKernel(fusedKernel, inputs, attrs) as tf.Tensor3D;
  }
  return attentionOps(frames, keys, values, spec);
}
