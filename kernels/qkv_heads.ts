// From the fused q|k|v projection to the heads attention works on, with RoPE
// applied on the way:
//
//   qkv: [rows, (heads + 2 kvHeads) * headDim], the block's T rows from rowStart
//     keys     [kvHeads, T, headDim]  rotated to the keys' own positions (stored so)
//     values   [kvHeads, T, headDim]
//     queries  [heads, T, headDim]    one per frame, rotated to its query positions
//
// As tfjs ops that is a split, three head transposes and one rotation per
// frame plus one for the keys: eight ops or more, each with the fixed
// dispatch cost that dominates a decode step. With the tape off on wasm/cpu
// it is one kernel that reads each channel once. With the tape on (training)
// the ops run, and tfjs differentiates them.
import * as tf from '@tensorflow/tfjs';
import { type JsMultiKernel, runJsMultiKernel } from './js_kernel.js';
import { fusedInference } from './paths.js';
import { applyRope, type RopeAngles, type RopeSpec, rotateHeads } from './rope.js';

export interface HeadCounts {
  heads: number;
  kvHeads: number;
  headDim: number;
}

export interface QkvHeads {
  /** [heads, T, headDim] per frame, rotated to the frame's query positions. */
  queries: tf.Tensor3D[];
  /** [kvHeads, T, headDim], rotated to the key positions. */
  keys: tf.Tensor3D;
  /** [kvHeads, T, headDim] */
  values: tf.Tensor3D;
}

interface QkvAttrs extends HeadCounts {
  rowStart: number;
  T: number;
  pairs: boolean;
  rotaryDim: number;
  frameCount: number;
}

/** How qkvHeadsInto rotates: the rope layout and the rotated channels. */
export interface QkvRotation {
  pairs: boolean;
  rotaryDim: number;
}

/**
 * The loop of the fused kernel, on plain arrays: rows [rowStart, rowStart +
 * T) of qkv ([rows, (heads + 2 kvHeads) * headDim]) into keys and values
 * ([kvHeads, T, headDim]) and, per frame, queries ([heads, T, headDim]),
 * keys rotated by keyCos/keySin and frame f's queries by frameAngles[2f],
 * frameAngles[2f + 1] (all [T, rotaryDim/2]). Keys and values may be
 * larger, with kv head g's row t at entryOffset + g * entryStride + t *
 * headDim: rows of a cache's storage [kvHeads, slots, headDim], entryOffset
 * the first row's slot times headDim and entryStride slots * headDim.
 */
export function qkvHeadsInto(
  qkv: Float32Array,
  rowStart: number,
  T: number,
  counts: HeadCounts,
  rope: QkvRotation,
  keyCos: Float32Array,
  keySin: Float32Array,
  frameAngles: Float32Array[],
  keys: Float32Array,
  values: Float32Array,
  queries: Float32Array[],
  entryOffset = 0,
  entryStride = T * counts.headDim,
): void {
  const { heads, kvHeads, headDim } = counts;
  const { pairs, rotaryDim } = rope;
  const width = (heads + 2 * kvHeads) * headDim;
  // a head's row t lies at (h T + t) headDim in queries (and in keys and values at their stride)
  const headStride = T * headDim;
  for (let t = 0; t < T; t++) {
    const row = (rowStart + t) * width;
    // One row's values, all kv heads, lie as values [kvHeads, 1, headDim]
    // wants them: one copy (a subarray, one allocation, where a loop of a
    // float a step took 1 µs of 768 floats at 110M); for T > 1, or rows of
    // a cache, a loop (a subarray a kv head was an allocation each).
    if (T === 1 && entryStride === headDim) values.set(qkv.subarray(row + (heads + kvHeads) * headDim, row + width), entryOffset);
    else {
      for (let g = 0; g < kvHeads; g++) {
        const v = row + (heads + kvHeads + g) * headDim;
        const at = entryOffset + g * entryStride + t * headDim;
        for (let c = 0; c < headDim; c++) values[at + c] = qkv[v + c]!;
      }
    }
    rotateHeads(qkv, row + heads * headDim, headDim, keys, entryOffset + t * headDim, entryStride, kvHeads, keyCos, keySin, t, pairs, rotaryDim, headDim);
    for (let f = 0; f < queries.length; f++) {
      rotateHeads(qkv, row, headDim, queries[f]!, t * headDim, headStride, heads, frameAngles[2 * f]!, frameAngles[2 * f + 1]!, t, pairs, rotaryDim, headDim);
    }
  }
}

// Inputs: qkv, then cos and sin of the keys, then cos and sin of each frame.
// Outputs: keys, values, then the queries of each frame.
const qkvHeadsKernel: JsMultiKernel<QkvAttrs> = {
  name: 'StreamllmQkvHeads',
  outputShapes: (_, { heads, kvHeads, headDim, T, frameCount }) => [
    [kvHeads, T, headDim],
    [kvHeads, T, headDim],
    ...Array.from({ length: frameCount }, () => [heads, T, headDim]),
  ],
  run([qkv, keyCos, keySin, ...frameAngles], _, [keys, values, ...queries], a) {
    qkvHeadsInto(qkv!, a.rowStart, a.T, a, a, keyCos!, keySin!, frameAngles, keys!, values!, queries);
  },
};

/** [T, n * headDim] -> [n, T, headDim] */
function splitHeads(x: tf.Tensor2D, n: number, headDim: number): tf.Tensor3D {
  const T = x.shape[0];
  if (T === 1) return x.reshape([n, 1, headDim]); // no copy needed for one token
  return x.reshape([T, n, headDim]).transpose([1, 0, 2]);
}

/**
 * The heads of rows [rowStart, rowStart + T) of qkv, keys rotated by
 * `keyAngles` and the queries by each of `frameAngles` (all [T, rotaryDim/2]).
 */
export function qkvHeads(
  qkv: tf.Tensor2D,
  rowStart: number,
  T: number,
  counts: HeadCounts,
  keyAngles: RopeAngles,
  frameAngles: RopeAngles[],
  rope: RopeSpec,
): QkvHeads {
  const { heads, kvHeads, headDim } = counts;
  if (fusedInference()) {
    const inputs = [qkv, keyAngles.cos, keyAngles.sin];
    for (const a of frameAngles) inputs.push(a.cos, a.sin);
    const attrs: QkvAttrs = { heads, kvHeads, headDim, rowStart, T, pairs: rope.layout === 'pairs', rotaryDim: rope.rotaryDim, frameCount: frameAngles.length };
    const [keys, values, ...queries] = runJsMultiKernel(qkvHeadsKernel, inputs, attrs) as tf.Tensor3D[];
    return { queries, keys: keys!, values: values! };
  }
  return tf.tidy(() => {
    const rows = rowStart === 0 && T === qkv.shape[0] ? qkv : qkv.slice([rowStart, 0], [T, qkv.shape[1]]);
    const [q, k, v] = tf.split<tf.Tensor2D>(rows, [heads * headDim, kvHeads * headDim, kvHeads * headDim], 1);
    const queries = splitHeads(q!, heads, headDim);
    return {
      queries: frameAngles.map((angles) => applyRope(queries, angles, rope)),
      keys: applyRope(splitHeads(k!, kvHeads, headDim), keyAngles, rope),
      values: splitHeads(v!, kvHeads, headDim),
    };
  });
}
