// Validation loss: mean next-token NLL over fixed windows of the held-out
// stream, each window a sample exactly like a training sample (a sink-token
// model gets its sink at position 0), scored without a gradient tape.
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, IGNORE_TARGET } from '../../kernels/cross_entropy.js';
import { CausalBlock } from '../cache/causal_block.js';
import { forwardBatch } from '../model/transformer.js';
import type { Model } from '../model/weights.js';
import { sampleAt } from './batches.js';

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

/** Mean NLL (nats per token) of the windows at `offsets`. */
export function validationLoss(model: Model, tokens: ArrayLike<number>, offsets: readonly number[]): number {
  const T = model.config.maxSeqLen;
  const batchSize = Math.max(1, Math.floor(VALIDATION_TOKENS / T));
  let sum = 0;
  let count = 0;
  for (let i = 0; i < offsets.length; i += batchSize) {
    const samples = offsets.slice(i, i + batchSize).map((o) => sampleAt(tokens, o, T, model.config.sinkToken));
    const targets = samples.flatMap((s) => s.targets);
    sum += tf.tidy(() => {
      const logits = forwardBatch(model, samples.map((s) => s.inputs), samples.map(() => new CausalBlock())); // [B*T, vocab]
      return crossEntropy(logits, targets).sum().dataSync()[0]!;
    });
    count += targets.filter((t) => t !== IGNORE_TARGET).length;
  }
  return sum / count;
}
