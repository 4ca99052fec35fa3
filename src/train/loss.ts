// The training objective: mean next-token cross-entropy over a batch,
// computed with every sequence as its own causal block (no KV cache).
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../../kernels/cross_entropy.js';
import { CausalBlock } from '../cache/causal_block.js';
import type { Model } from '../model/weights.js';
import { forwardBatch } from '../model/transformer.js';
import type { Batch } from './batches.js';

/** Mean NLL of the batch's scored targets: a scalar tensor. */
export function batchLoss(model: Model, batch: Batch): tf.Scalar {
  return tf.tidy(() => {
    const logits = forwardBatch(
      model,
      batch.inputs,
      batch.inputs.map(() => new CausalBlock()),
    ); // [B*T, vocab]
    return crossEntropy(logits, batch.targets).sum().div<tf.Scalar>(batch.scored);
  });
}
