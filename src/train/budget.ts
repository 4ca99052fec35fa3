// Refusing, before a weight is drawn or a file written, a training run that
// cannot fit: a sample longer than the corpus, or weights, optimizer state
// and activations beyond what the backend holds. The activation count is
// an estimate (what the backward pass keeps per token and layer), enough to
// turn an absurd --seq-len or --batch into one line instead of a RangeError.
import { UsageError } from '../errors.js';
import { checkFits } from '../memory.js';
import type { ModelConfig } from '../model/config.js';
import { weightBytes } from '../model/load.js';
import type { TrainOptions } from './options.js';

/** A sample (seqLen + 1 tokens, with its last target) must fit in each corpus part. */
export function checkSamplesFit(options: TrainOptions, trainTokens: number, heldoutTokens: number): void {
  const T = options.seqLen;
  if (trainTokens < T + 1) throw new UsageError(`train --seq-len ${T}: the training text has only ${trainTokens} tokens`);
  if (heldoutTokens < T + 1) throw new UsageError(`train --seq-len ${T}: the held-out text has only ${heldoutTokens} tokens`);
}

/** Weights, optimizer state and activations must fit the backend. */
export function checkTrainingFits(options: TrainOptions, config: ModelConfig): void {
  const T = options.seqLen;
  const B = options.batchSize;
  const flags = `train --dim ${config.dim} --layers ${config.layers} --heads ${config.heads} --seq-len ${T} --batch ${B}`;
  // weights, gradients and AdamW's two moments
  const state = 4 * weightBytes(config);
  const { dim, hiddenDim, heads, layers, vocabSize } = config;
  // per token: each layer's saved inputs and projections, its scores and probabilities; the logits and their gradient
  const perToken = layers * (8 * dim + 4 * hiddenDim + 2 * heads * T) + 3 * vocabSize;
  const activations = 4 * B * T * perToken;
  const largest = 4 * Math.max(B * heads * T * T, B * T * vocabSize, vocabSize * dim, dim * 2 * hiddenDim);
  checkFits(flags, state + activations, largest);
}
