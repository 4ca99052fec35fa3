// The softmax variants of the attention-sink ablations.
//
//   softmax       exp(x_i) / sum_j exp(x_j)
//   softmax1      exp(x_i) / (1 + sum_j exp(x_j))       ("off by one", zero sink)
//   learned-sink  exp(x_i) / (exp(s_h) + sum_j exp(x_j)) one learned logit s_h per head
//
// softmax1 and learned-sink are a softmax over [x, s] with the extra entry's
// probability thrown away: attention may then put mass on "nothing".
import * as tf from '@tensorflow/tfjs';

export const SOFTMAX_VARIANTS = ['softmax', 'softmax1', 'learned-sink'] as const;
export type SoftmaxVariant = (typeof SOFTMAX_VARIANTS)[number];

/**
 * Softmax over the last axis of logits: [..., n], with an optional extra
 * logit (broadcastable to [..., 1]) that takes probability mass and is then
 * dropped, so rows sum to less than 1.
 */
export function softmaxWithSink(logits: tf.Tensor, sinkLogit?: tf.Tensor): tf.Tensor {
  if (sinkLogit === undefined) return tf.softmax(logits);
  return tf.tidy(() => {
    // sink: [..., 1], the extra logit repeated for every row
    const sink = sinkLogit.add(tf.zeros([...logits.shape.slice(0, -1), 1]));
    // Subtracting the row maximum keeps exp() finite; it cancels in the ratio.
    const m = tf.concat([logits, sink], -1).max(-1, true);
    const e = logits.sub(m).exp();
    const z = e.sum(-1, true).add(sink.sub(m).exp());
    return e.div(z);
  });
}
