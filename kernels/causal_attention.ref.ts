// Reference loop for kernels/causal_attention.ts, in float64. Tests only.
import type { CausalAttentionSpec } from './causal_attention.js';
import { ropeReference } from './rope.ref.js';
import { extraLogitOf } from './softmax.js';
import { softmaxReference } from './softmax.ref.js';

/** qkv: [B*T, (heads + 2 kvHeads) * headDim] row-major -> [B*T, heads * headDim]. */
export function causalAttentionReference(qkv: ArrayLike<number>, spec: CausalAttentionSpec, sinkLogits?: ArrayLike<number>): Float64Array {
  const { batch, heads, kvHeads, headDim, rope, variant } = spec;
  const C = (heads + 2 * kvHeads) * headDim;
  const T = qkv.length / C / batch;
  const group = heads / kvHeads;
  const out = new Float64Array(batch * T * heads * headDim);
  const vector = (row: number, col0: number) => Array.from({ length: headDim }, (_, c) => qkv[row * C + col0 + c]!);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const extra = extraLogitOf(variant, h, sinkLogits);
      const sink = extra === -Infinity ? undefined : extra;
      const keys = Array.from({ length: T }, (_, j) => ropeReference(vector(b * T + j, (heads + g) * headDim), j, rope));
      for (let i = 0; i < T; i++) {
        const q = ropeReference(vector(b * T + i, h * headDim), i, rope);
        const scores = keys.slice(0, i + 1).map((k) => k.reduce((s, kc, c) => s + kc * q[c]!, 0) / Math.sqrt(headDim));
        const p = softmaxReference(scores, sink);
        const row = (b * T + i) * heads * headDim + h * headDim;
        for (let j = 0; j <= i; j++) {
          const v = vector(b * T + j, (heads + kvHeads + g) * headDim);
          for (let c = 0; c < headDim; c++) out[row + c]! += p[j]! * v[c]!;
        }
      }
    }
  }
  return out;
}
