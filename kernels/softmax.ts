// The softmax variants of the attention-sink ablations, each one object: its
// extra logit, its row normaliser (as a loop and as tfjs ops) and its row
// gradient. Every attention path takes them from here: the ops path and the
// fused JS loop (kernels/attention.ts), the training kernel and its gradient
// (kernels/causal_attention.ts), and the reference loops (*.ref.ts).
//
//   softmax       exp(x_i) / sum_j exp(x_j)
//   softmax1      exp(x_i) / (1 + sum_j exp(x_j))       ("off by one", zero sink)
//   learned-sink  exp(x_i) / (exp(s_h) + sum_j exp(x_j)) one learned logit s_h per head
//
// softmax1 and learned-sink are a softmax over [x, s] with the extra entry's
// probability thrown away: attention may then put mass on "nothing".
//
// Adding a variant is one entry in SOFTMAX_RULES (plus its tests). One of
// the softmax family (`softmaxFamily: true`: a softmax with some extra logit)
// runs everywhere as is, the SIMD loop (kernels/simd/loops.wat) included,
// which computes that family itself from the extra logit. Any other
// normaliser (sigmoid attention, a gated softmax) sets `softmaxFamily: false`
// and gives its own normaliseRow, rowGradient and normaliseOps: the fused
// attention kernel then runs its JavaScript loop instead of the SIMD one, and
// the training kernel and the ops path call the variant's functions.
import * as tf from '@tensorflow/tfjs';

/** The extra logit in every row's normaliser: none, a zero, or one learned per head (the model's `sinkLogits`). */
export type ExtraLogit = 'none' | 'zero' | 'learned';

export interface SoftmaxRule {
  readonly extraLogit: ExtraLogit;
  /** A softmax over the row and the extra logit, the extra dropped: what the SIMD loop computes. */
  readonly softmaxFamily: boolean;
  /**
   * Row normaliser: scores[0..n) -> probabilities, in place, in float64;
   * `extra` is the row's extra logit (-Infinity for none).
   */
  normaliseRow(scores: Float64Array, n: number, extra: number): void;
  /**
   * Row gradient: with p and dp (the gradient of the probabilities) of a
   * row of n, writes the gradient of the row's scores to ds and returns the
   * gradient of its extra logit.
   */
  rowGradient(p: ArrayLike<number>, dp: ArrayLike<number>, n: number, ds: Float64Array): number;
  /**
   * The normaliser as tfjs ops over the last axis (differentiable): logits
   * [..., n], extra broadcastable to [..., 1] or undefined for none.
   */
  normaliseOps(logits: tf.Tensor, extra: tf.Tensor | undefined): tf.Tensor;
}

/** exp(x - m) / (exp(e - m) + sum exp(x - m)), m the row's maximum (e included) so exp() stays finite. */
function softmaxRow(scores: Float64Array, n: number, extra: number): void {
  let max = extra;
  for (let j = 0; j < n; j++) if (scores[j]! > max) max = scores[j]!;
  let z = extra === -Infinity ? 0 : Math.exp(extra - max);
  for (let j = 0; j < n; j++) z += scores[j] = Math.exp(scores[j]! - max);
  for (let j = 0; j < n; j++) scores[j]! /= z;
}

/**
 * ds_j = p_j (dp_j - sum_k p_k dp_k); the dropped extra entry, p_e = 1 - sum p,
 * has no dp of its own, so d e = -p_e sum_k p_k dp_k.
 */
function softmaxRowGradient(p: ArrayLike<number>, dp: ArrayLike<number>, n: number, ds: Float64Array): number {
  let dot = 0;
  let mass = 0;
  for (let j = 0; j < n; j++) {
    dot += p[j]! * dp[j]!;
    mass += p[j]!;
  }
  for (let j = 0; j < n; j++) ds[j] = p[j]! * (dp[j]! - dot);
  return -(1 - mass) * dot;
}

function softmaxOps(logits: tf.Tensor, extra: tf.Tensor | undefined): tf.Tensor {
  if (extra === undefined) return tf.softmax(logits);
  return tf.tidy(() => {
    // sink: [..., 1], the extra logit repeated for every row
    const sink = extra.add(tf.zeros([...logits.shape.slice(0, -1), 1]));
    // Subtracting the row maximum keeps exp() finite; it cancels in the ratio.
    const m = tf.concat([logits, sink], -1).max(-1, true);
    const e = logits.sub(m).exp();
    const z = e.sum(-1, true).add(sink.sub(m).exp());
    return e.div(z);
  });
}

const softmaxFamily = (extraLogit: ExtraLogit): SoftmaxRule => ({
  extraLogit,
  softmaxFamily: true,
  normaliseRow: softmaxRow,
  rowGradient: softmaxRowGradient,
  normaliseOps: softmaxOps,
});

export const SOFTMAX_RULES = {
  softmax: softmaxFamily('none'),
  softmax1: softmaxFamily('zero'),
  'learned-sink': softmaxFamily('learned'),
} as const satisfies Record<string, SoftmaxRule>;

export type SoftmaxVariant = keyof typeof SOFTMAX_RULES;
export const SOFTMAX_VARIANTS = Object.keys(SOFTMAX_RULES) as readonly SoftmaxVariant[];

export function softmaxRule(variant: SoftmaxVariant): SoftmaxRule {
  return SOFTMAX_RULES[variant];
}

/** True when the variant has a learned logit per head (a model weight, `sinkLogits`). */
export function learnsExtraLogit(variant: SoftmaxVariant): boolean {
  return SOFTMAX_RULES[variant].extraLogit === 'learned';
}

/** The extra logit of head h as a number: -Infinity (none), 0, or the learned one. */
export function extraLogitOf(variant: SoftmaxVariant, h: number, learned?: ArrayLike<number>): number {
  switch (SOFTMAX_RULES[variant].extraLogit) {
    case 'none':
      return -Infinity;
    case 'zero':
      return 0;
    case 'learned':
      if (learned === undefined) throw new Error(`softmax variant '${variant}' needs its learned logits (sinkLogits)`);
      return learned[h]!;
  }
}

/**
 * The extra logit of every head as a tensor of `shape` (heads laid out in
 * it in order, e.g. [kvHeads, group, 1, 1]), or undefined for none.
 */
export function extraLogitTensor(variant: SoftmaxVariant, shape: number[], learned?: tf.Tensor1D): tf.Tensor | undefined {
  switch (SOFTMAX_RULES[variant].extraLogit) {
    case 'none':
      return undefined;
    case 'zero':
      return tf.zeros(shape);
    case 'learned':
      if (learned === undefined) throw new Error(`softmax variant '${variant}' needs its learned logits (sinkLogits)`);
      return learned.reshape(shape);
  }
}

/**
 * Softmax over the last axis of logits: [..., n], with an optional extra
 * logit (broadcastable to [..., 1]) that takes probability mass and is then
 * dropped, so rows sum to less than 1.
 */
export function softmaxWithSink(logits: tf.Tensor, sinkLogit?: tf.Tensor): tf.Tensor {
  return softmaxOps(logits, sinkLogit);
}
