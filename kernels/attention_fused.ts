// The fused attention kernel: kernels/attention.ts's math as one loop over
// the queries against the cache, only over the entries each row sees, in
// plain JavaScript (float64 sums; the cpu backend and any headDim) or, for
// the softmax family, in WebAssembly SIMD (kernels/simd/loops.wat) on the
// wasm backend's tensors in place. No gradient: it runs with the tape off
// (kernels/paths.ts decides when).
import type * as tf from '@tensorflow/tfjs';
import type { AttentionFrame, SoftmaxSpec } from './attention.js';
import { type JsKernel, runJsKernel } from './js_kernel.js';
import { float32View, wasmScratch } from './paths.js';
import { simdLoops, type SimdLoops } from './simd/instance.js';
import { extraLogitOf, learnsExtraLogit, type SoftmaxVariant, softmaxRule } from './softmax.js';

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

/** The most scores any of the T query rows has: the length of a row's scores buffer. */
function maxRowCount(rowRanges: Int32Array[], T: number): number {
  let count = 0;
  for (let t = 0; t < T; t++) count = Math.max(count, rowCount(rowRanges, t));
  return count;
}

/** Whether the SIMD loop can run this attention: it computes the softmax family itself, four channels at a time; anything else runs the JS loop. */
function simdAttends(headDim: number, variant: SoftmaxVariant): boolean {
  return headDim % 4 === 0 && softmaxRule(variant).softmaxFamily;
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
  const scores = new Float64Array(maxRowCount(rowRanges, T)); // one query row's scores: [the most entries a row sees]
  const acc = new Float64Array(headDim); // one query row's output: [headDim]
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

/** Where attendSimd finds its operands: byte offsets into the wasm heap, and the sizes. */
interface SimdPlan {
  /** Frame f's queries [heads, T, headDim] at queriesAt[f]. */
  queriesAt: number[];
  keysAt: number;
  valuesAt: number;
  /** [heads, T, headDim] */
  outAt: number;
  heads: number;
  T: number;
  headDim: number;
  /** Entries a kv head's keys and values have room for. */
  capacity: number;
  /** Query heads per kv head. */
  group: number;
  /** Three int32 per frame: one query row's plan, which attendRow reads. */
  plan: Int32Array;
  /** Room for one query row's scores, all frames. */
  scoresAt: number;
}

/**
 * The same loop in WebAssembly SIMD (kernels/simd/loops.wat) for the softmax
 * family (kernels/softmax.ts), in place in the wasm heap: one call per head
 * and query row, its plan (per frame: the rotated query, the first key it
 * sees, how many) written first.
 */
function attendSimd(simd: SimdLoops, at: SimdPlan, rowRanges: Int32Array[], variant: SoftmaxVariant, sinks: Float32Array | undefined): void {
  const { queriesAt, keysAt, valuesAt, outAt, heads, T, headDim, capacity, group, plan, scoresAt } = at;
  const frameCount = queriesAt.length;
  const rowBytes = 4 * headDim;
  const scale = 1 / Math.sqrt(headDim);
  for (let h = 0; h < heads; h++) {
    const kvBase = keysAt + Math.floor(h / group) * capacity * rowBytes;
    const sink = extraLogitOf(variant, h, sinks);
    for (let t = 0; t < T; t++) {
      const qOff = (h * T + t) * rowBytes;
      for (let f = 0; f < frameCount; f++) {
        const lo = rowRanges[f]![2 * t]!;
        plan[3 * f] = queriesAt[f]! + qOff;
        plan[3 * f + 1] = kvBase + lo * rowBytes;
        plan[3 * f + 2] = rowRanges[f]![2 * t + 1]! - lo;
      }
      simd.attendRow(plan.byteOffset, frameCount, valuesAt - keysAt, headDim, scale, sink, scoresAt, outAt + qOff);
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
  scratchSize: ([q], { rowRanges }) => 3 * rowRanges.length + maxRowCount(rowRanges, q![1]!),
  run(inputs, shapes, out, attrs, scratch) {
    const { frameCount, rowRanges, variant } = attrs;
    const headDim = shapes[0]![2]!;
    const simd = simdAttends(headDim, variant) ? simdLoops([...inputs, out, scratch]) : undefined;
    if (simd === undefined) {
      attendJs(inputs, shapes, out, attrs);
      return;
    }
    const { heads, T, capacity, group, keys, values } = fusedOperands(inputs, shapes, frameCount);
    const plan = new Int32Array(scratch.buffer, scratch.byteOffset, 3 * frameCount);
    const queriesAt = inputs.slice(0, frameCount).map((q) => q.byteOffset);
    const at = {
      queriesAt,
      keysAt: keys.byteOffset,
      valuesAt: values.byteOffset,
      outAt: out.byteOffset,
      heads,
      T,
      headDim,
      capacity,
      group,
      plan,
      scoresAt: scratch.byteOffset + plan.byteLength,
    };
    attendSimd(simd, at, rowRanges, variant, inputs[frameCount + 2]);
  },
};

/**
 * Attention of the frames' queries over keys/values [kvHeads, n, headDim]
 * through the fused kernel: [heads, T, headDim].
 */
export function fusedAttention(frames: AttentionFrame[], keys: tf.Tensor3D, values: tf.Tensor3D, spec: SoftmaxSpec): tf.Tensor3D {
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

/**
 * The same loops without a kernel call, for a caller that holds the queries
 * as arrays (the pooled decode step, src/model/pooled_layers.ts): the
 * frames' queries (frame f's [heads, T, headDim] in queries[f], query row t
 * seeing entries rowRanges[f][2t]..rowRanges[f][2t+1]) against keys and
 * values [kvHeads, capacity, headDim], read in place, into out [heads, T,
 * headDim]. The numbers are fusedAttention's; a tfjs op costs more than this
 * whole loop at decode. Needs direct memory (kernels/paths.ts:
 * hasDirectMemory).
 */
export function attendDirect(
  queries: Float32Array[],
  rowRanges: Int32Array[],
  keys: tf.Tensor3D,
  values: tf.Tensor3D,
  spec: SoftmaxSpec,
  out: Float32Array,
): void {
  const [kvHeads, capacity, headDim] = keys.shape;
  const qSize = out.length; // heads * T * headDim
  const T = rowRanges[0]!.length / 2;
  const heads = qSize / (T * headDim);
  const frameCount = queries.length;
  const learns = learnsExtraLogit(spec.variant);
  if (learns && spec.sinkLogits === undefined) throw new Error(`attention: '${spec.variant}' needs sinkLogits`);
  if (simdAttends(headDim, spec.variant)) {
    // heap: the queries, the output, then the row's plan and scores (allocated before any view of a tensor is taken)
    const heap = wasmScratch((frameCount + 1) * qSize + 3 * frameCount + maxRowCount(rowRanges, T));
    const simd = heap === undefined ? undefined : simdLoops([heap]);
    if (heap !== undefined && simd !== undefined) {
      const queriesAt: number[] = [];
      for (let f = 0; f < frameCount; f++) {
        heap.set(queries[f]!, f * qSize);
        queriesAt.push(heap.byteOffset + 4 * f * qSize);
      }
      const outAt = heap.byteOffset + 4 * frameCount * qSize;
      const plan = new Int32Array(heap.buffer, outAt + 4 * qSize, 3 * frameCount);
      const keysAt = float32View(keys).byteOffset;
      const valuesAt = float32View(values).byteOffset;
      const at = { queriesAt, keysAt, valuesAt, outAt, heads, T, headDim, capacity, group: heads / kvHeads, plan, scoresAt: plan.byteOffset + plan.byteLength };
      attendSimd(simd, at, rowRanges, spec.variant, learns ? float32View(spec.sinkLogits!) : undefined);
      out.set(heap.subarray(frameCount * qSize, (frameCount + 1) * qSize));
      return;
    }
  }
  attendArrays(queries, rowRanges, float32View(keys), float32View(values), keys.shape, spec.variant, learns ? float32View(spec.sinkLogits!) : undefined, out);
}

/**
 * attendDirect's JavaScript loop (float64 sums) on keys and values held as
 * arrays [kvHeads, capacity, headDim] (shape), anywhere: any softmax
 * variant and headDim. `sinks` [heads]: a learned sink's logits.
 */
export function attendArrays(
  queries: Float32Array[],
  rowRanges: Int32Array[],
  keys: Float32Array,
  values: Float32Array,
  shape: [number, number, number],
  variant: SoftmaxVariant,
  sinks: Float32Array | undefined,
  out: Float32Array,
): void {
  const T = rowRanges[0]!.length / 2;
  const heads = out.length / (T * shape[2]);
  if (learnsExtraLogit(variant) && sinks === undefined) throw new Error(`attention: '${variant}' needs sinkLogits`);
  const attrs: FusedAttrs = { frameCount: queries.length, rowRanges, variant };
  const shapes = [...queries.map(() => [heads, T, shape[2]]), shape, shape, ...(sinks !== undefined ? [[heads]] : [])];
  attendJs([...queries, keys, values, ...(sinks !== undefined ? [sinks] : [])], shapes, out, attrs);
}
