// Autoregressive generation through a cache policy: prefill the prompt, then
// one token per step, for as long as asked (or forever).
import { type CachePolicy, policyLabel } from './cache/policies.js';
import { ArgumentError, NonFiniteError } from './errors.js';
import { yieldToEventLoop } from './event_loop.js';
import { firstNonFinite } from './finite.js';
import { checkTokenIds } from './model/token_ids.js';
import { withSinkToken } from './model/transformer.js';
import type { Model } from './model/weights.js';
import type { Sampler } from './sample/sampler.js';
import { type GreedyChoice, TokenStream } from './stream.js';

export interface GenerateOptions {
  /** Tokens to generate; 0 means until stopped. */
  steps: number;
  /** Stop when the model emits one of these (run.c stops on BOS and EOS). */
  stopIds?: readonly number[];
  /** Checked before every step: return true to stop (Ctrl-C). */
  shouldStop?: () => boolean;
}

export interface GenerateStep {
  id: number;
  /** Tokens generated so far, this one included. */
  generated: number;
  stream: TokenStream;
}

/**
 * Generate after `prompt` (at least one token). Yields each new token as it
 * is produced; the caller owns nothing and the stream is disposed at the end.
 */
export async function* generate(
  model: Model,
  policy: CachePolicy,
  prompt: readonly number[],
  sample: Sampler,
  options: GenerateOptions,
): AsyncGenerator<GenerateStep> {
  if (prompt.length === 0) throw new ArgumentError('prompt', 'expected at least one token id, got none');
  checkTokenIds('prompt', prompt, model.config.vocabSize);
  const stream = new TokenStream(model, policy);
  try {
    const first = withSinkToken(model.config, prompt);
    // The logits as an array, read before the next feed: no tensor for a
    // pooled model. A greedy sampler's pick, and the check, where they lie.
    const feed = (ids: readonly number[]): GreedyChoice | Float32Array => (sample.greedy === true ? stream.feedLastGreedy(ids) : stream.feedLastValues(ids));
    // Each step feeds the token before it (the prompt, first): the last
    // token generated is never fed, so that no forward pass computes logits
    // that nobody reads.
    let ids: readonly number[] = first;
    for (let n = 1; options.steps === 0 || n <= options.steps; n++) {
      const id = nextToken(feed(ids), sample, policy, n);
      if (options.stopIds?.includes(id)) return;
      yield { id, generated: n, stream };
      if (options.shouldStop?.()) return;
      if (n % 16 === 0) await yieldToEventLoop(); // so that a signal handler can run
      ids = [id];
    }
  } finally {
    stream.dispose();
  }
}

/** Generated token n, sampled from a feed's result (feedLastGreedy's choice, or the logits [vocab]); NonFiniteError when a logit is NaN or infinite. */
function nextToken(fed: GreedyChoice | Float32Array, sample: Sampler, policy: CachePolicy, n: number): number {
  if (!(fed instanceof Float32Array) && fed.finite) return fed.id;
  const values = fed instanceof Float32Array ? fed : fed.logits;
  const bad = firstNonFinite(values);
  if (bad >= 0) {
    throw new NonFiniteError(
      `${policyLabel(policy)}: the model's logits for generated token ${n} are not finite (token ${bad}: ${values[bad]}): NaN or overflow in the weights or activations`,
    );
  }
  // (unreachable unless the two checks disagree: the pool's SIMD pass saw a NaN or infinity that firstNonFinite does not find)
  if (!(fed instanceof Float32Array)) throw new Error('generate: the greedy pick found a non-finite logit where firstNonFinite finds none');
  return sample(values);
}
