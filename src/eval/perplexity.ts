// Scoring a token sequence under a cache policy: nll[i] = -log p(ids[i+1] |
// what the policy lets token i see). Two ways that give the same numbers:
//
//   blocked   (default) a block of tokens per forward pass, each query with
//             its own view of the cache: matrix-matrix speed
//   stepwise  one token per forward pass, as the reference implementation
//             decodes: the check on the blocked path
import * as tf from '@tensorflow/tfjs';
import { tokenNll } from '../../kernels/token_nll.js';
import { type CachePolicy, policyLabel, policySpan } from '../cache/index.js';
import { ArgumentError, NonFiniteError } from '../errors.js';
import { yieldToEventLoop } from '../event_loop.js';
import { firstNonFinite } from '../finite.js';
import { checkTokenIds } from '../model/token_ids.js';
import { withSinkToken } from '../model/transformer.js';
import type { Model } from '../model/weights.js';
import { TokenStream } from '../stream.js';
import { perplexity } from './nll.js';

export interface ScoreOptions {
  mode?: 'blocked' | 'stepwise';
  /** Tokens per forward pass in blocked mode (default: 256, at most the policy's span). */
  blockSize?: number;
  /** Called after each block with tokens scored so far. */
  onProgress?: (done: number, total: number) => void;
}

export interface ScoreResult {
  policy: CachePolicy;
  mode: 'blocked' | 'stepwise';
  /** nll[i] = -log p(ids[i+1] | ids[..i]); length ids.length - 1. */
  nll: Float64Array;
  ppl: number;
  meanNll: number;
  tokens: number;
  seconds: number;
}

export const DEFAULT_BLOCK_SIZE = 256;

/** The message for a NaN or infinite NLL: the logits it came from were not finite. */
export function nonFiniteOutput(position: number, policy: CachePolicy | string, nll: number): string {
  const label = typeof policy === 'string' ? policy : policyLabel(policy);
  return `${label}: the model's logits predicting token ${position + 1} are not finite (NLL ${nll}): NaN or overflow in the weights or activations`;
}

export async function scoreTokens(model: Model, ids: readonly number[], policy: CachePolicy, options: ScoreOptions = {}): Promise<ScoreResult> {
  // every id, the last too (a target only, never fed), before the first block runs
  checkTokenIds('ids', ids, model.config.vocabSize);
  // (the first is context only: with fewer, nothing is scored, and the result was ppl NaN)
  if (ids.length < 2) throw new ArgumentError('ids', `expected at least 2 token ids (the first is context only), got ${ids.length}`);
  const mode = options.mode ?? 'blocked';
  const block = mode === 'stepwise' ? 1 : Math.max(1, Math.min(options.blockSize ?? DEFAULT_BLOCK_SIZE, policySpan(policy)));
  // A sink-token model sees its learned sink first; its prediction of ids[0] is not scored.
  const input = withSinkToken(model.config, ids);
  const skip = model.config.sinkToken ? 1 : 0;
  const total = Math.max(0, ids.length - 1);
  const nll = new Float64Array(total);
  const stream = new TokenStream(model, policy);
  const started = performance.now();
  try {
    // The last token predicts nothing, so it is never fed.
    for (let start = 0; start < input.length - 1; start += block) {
      const chunk = input.slice(start, Math.min(start + block, input.length - 1));
      const logits = stream.feed(chunk); // [chunk, vocab]
      // row r predicts input[start + r + 1] = ids[start + r + 1 - skip]
      const firstRow = Math.max(0, skip - start);
      const targets = input.slice(start + 1 + firstRow, start + 1 + chunk.length);
      // scored where the logits are: only the NLLs come back
      const rows = tokenNll(logits, targets, firstRow, model.pool);
      const values = rows.dataSync();
      tf.dispose([logits, rows]);
      const bad = firstNonFinite(values);
      if (bad >= 0) throw new NonFiniteError(nonFiniteOutput(start + firstRow - skip + bad, policy, values[bad]!));
      nll.set(values, start + firstRow - skip);
      options.onProgress?.(Math.min(total, start + chunk.length - skip), total);
      await yieldToEventLoop();
    }
  } finally {
    stream.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const ppl = perplexity(nll);
  return { policy, mode, nll, ppl, meanNll: Math.log(ppl), tokens: ids.length, seconds };
}
