// Validation loss: mean next-token NLL over fixed held-out samples, each
// exactly like a training sample (a sink-token model gets its sink at
// position 0; see data.ts for where they come from), scored without a
// gradient tape.
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, IGNORE_TARGET } from '../../kernels/cross_entropy.js';
import { CausalBlock } from '../cache/causal_block.js';
import { forwardBatch } from '../model/transformer.js';
import type { Model } from '../model/weights.js';
import type { Sample } from './batches.js';

/**
 * Start offsets of `count` windows of seqLen + 1 tokens spread evenly over
 * the stream (all non-overlapping windows when count is undefined or larger).
 */
export function validationOffsets(streamLength: number, seqLen: number, count?: number): number[] {
  const all = Math.floor((streamLength - 1) / seqLen);
  const n = count === undefined ? all : Math.min(count, all);
  const last = streamLength - seqLen - 1;
  if (n <= 1) return n === 1 ? [0] : [];
  return Array.from({ length: n }, (_, k) => Math.round((k * last) / (n - 1)));
}

/** Tokens per validation forward pass: enough to amortise each pass, few enough that [tokens, vocab] logits stay small. */
const VALIDATION_TOKENS = 4096;

/** Mean NLL (nats per token) of the samples' scored targets. */
export function validationLoss(model: Model, samples: readonly Sample[]): number {
  const T = model.config.maxSeqLen;
  const batchSize = Math.max(1, Math.floor(VALIDATION_TOKENS / T));
  let sum = 0;
  let count = 0;
  for (let i = 0; i < samples.length; i += batchSize) {
    const batch = samples.slice(i, i + batchSize);
    const targets = batch.flatMap((s) => s.targets);
    sum += tf.tidy(() => {
      const logits = forwardBatch(
        model,
        batch.map((s) => s.inputs),
        batch.map(() => new CausalBlock()),
      ); // [B*T, vocab]
      return crossEntropy(logits, targets).sum().dataSync()[0]!;
    });
    count += targets.filter((t) => t !== IGNORE_TARGET).length;
  }
  return sum / count;
}
