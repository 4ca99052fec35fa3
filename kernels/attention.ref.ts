// Reference loop for kernels/attention.ts, in float64, written the way the
// paper describes a cache: keys kept before RoPE, the visible entries given
// positions, every key and the query rotated to theirs. Tests only.
import { ropeReference } from './rope.ref.js';
import type { RopeSpec } from './rope.js';
import { softmaxReference } from './softmax.ref.js';
import { extraLogitOf, type SoftmaxVariant } from './softmax.js';

export interface ReferenceEntry {
  key: ArrayLike<number>; // [kvHeads * headDim], before RoPE
  value: ArrayLike<number>; // [kvHeads * headDim]
  position: number;
}

export interface ReferenceDims {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** One query (all heads, [heads * headDim], before RoPE) at `position` over the entries. */
export function attentionReference(
  query: ArrayLike<number>,
  position: number,
  entries: ReferenceEntry[],
  dims: ReferenceDims,
  rope: RopeSpec,
  variant: SoftmaxVariant,
  sinkLogits?: ArrayLike<number>,
): Float64Array {
  const { heads, kvHeads, headDim } = dims;
  const group = heads / kvHeads;
  const out = new Float64Array(heads * headDim);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group);
    const q = ropeReference(Array.from(query).slice(h * headDim, (h + 1) * headDim), position, rope);
    const logits = entries.map((e) => {
      const k = ropeReference(Array.from(e.key).slice(g * headDim, (g + 1) * headDim), e.position, rope);
      let d = 0;
      for (let c = 0; c < headDim; c++) d += q[c]! * k[c]!;
      return d / Math.sqrt(headDim);
    });
    const extra = extraLogitOf(variant, h, sinkLogits);
    const sink = extra === -Infinity ? undefined : extra;
    const p = softmaxReference(logits, sink);
    for (let c = 0; c < headDim; c++) {
      let sum = 0;
      entries.forEach((e, j) => (sum += p[j]! * e.value[g * headDim + c]!));
      out[h * headDim + c] = sum;
    }
  }
  return out;
}
