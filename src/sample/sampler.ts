// Choosing the next token from logits, as llama2.c's run.c does:
//   temperature 0        greedy: the argmax (the first one on ties);
//   topP 1               sample from softmax(logits / temperature);
//   topP in (0, 1)       nucleus sampling: sample from the smallest set of most
//                        probable tokens whose probability exceeds topP,
//                        renormalised (run.c's sample_topp).
// Randomness comes from a seedrandom generator owned by the sampler, so a
// given seed and the same logits give the same tokens on every machine.
import seedrandom from 'seedrandom';
import { UsageError } from '../errors.js';

export interface SamplerOptions {
  /** 0 = greedy; 1 = the model's distribution; default 1 (run.c's default). */
  temperature?: number;
  /** Nucleus mass in (0, 1]; 1 turns nucleus sampling off; default 0.9 (run.c's default). */
  topP?: number;
  /** Seed of the random generator; default 0, so runs repeat unless asked otherwise. */
  seed?: number | string;
}

/**
 * Picks a token id from one position's logits ([vocab]). A sampler that
 * declares itself `greedy` picks the argmax (the first on ties), nothing
 * else: generate() may then find it where the logits lie without calling it
 * (TokenStream.feedLastGreedy).
 */
export type Sampler = ((logits: ArrayLike<number>) => number) & { readonly greedy?: boolean };

export function createSampler(options: SamplerOptions = {}): Sampler {
  const { temperature = 1, topP = 0.9, seed = 0 } = options;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw new UsageError(`temperature: expected a finite number >= 0 (0 = greedy), got ${temperature}`);
  }
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) {
    throw new UsageError(`topP: expected a number in (0, 1] (1 = off), got ${topP}`);
  }
  if (!(typeof seed === 'string' || (typeof seed === 'number' && Number.isFinite(seed)))) {
    throw new UsageError(`seed: expected a finite number or a string, got ${String(seed)}`);
  }
  if (temperature === 0) {
    const greedy = (logits: ArrayLike<number>) => {
      if (logits.length === 0) throw new UsageError('logits: expected at least one value');
      return argmax(logits);
    };
    return Object.assign(greedy, { greedy: true });
  }
  const random = seedrandom(String(seed));
  return (logits) => {
    if (logits.length === 0) throw new UsageError('logits: expected at least one value');
    const probs = softmax(logits, temperature);
    return topP < 1 ? sampleTopP(probs, topP, random()) : sample(probs, random());
  };
}

/** Index of the largest value, the first on ties (run.c's argmax); as a Sampler, greedy. */
export function argmax(values: ArrayLike<number>): number {
  if (values instanceof Float32Array) return argmaxFloat32(values); // the logits of a decode step: a loop of its own (see firstNonFinite)
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
argmax.greedy = true as const;

function argmaxFloat32(values: Float32Array): number {
  const n = values.length;
  let best = 0;
  let top = values[0]!;
  let i = 1;
  // Four at a time, looked into only when one of them is larger: a branch
  // that is almost never taken. (Math.max of the four was 5x slower on a
  // model's logits, 110 µs for 32,000: its NaN and -0 rules branch on the
  // data, and logits are random to a branch predictor.) A NaN loses every
  // comparison, as in the plain loop.
  for (; i + 3 < n; i += 4) {
    if (values[i]! > top || values[i + 1]! > top || values[i + 2]! > top || values[i + 3]! > top) {
      for (let j = i; j < i + 4; j++) {
        if (values[j]! > top) {
          top = values[j]!;
          best = j;
        }
      }
    }
  }
  for (; i < n; i++) {
    if (values[i]! > top) {
      top = values[i]!;
      best = i;
    }
  }
  return best;
}

/** softmax(logits / temperature), in float64, shifted by the max for stability. */
export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (Number.isNaN(v)) throw new UsageError(`logits: value ${i} is NaN`);
    if (v > max) max = v;
  }
  if (max === -Infinity || max === Infinity) throw new UsageError(`logits: the largest value is ${max}`);
  const probs = new Float64Array(logits.length);
  let sum = 0;
  // (logit - max) / T, not logit / T - max / T: exact at max, and no inf - inf for tiny T.
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i]! - max) / temperature);
  for (let i = 0; i < probs.length; i++) probs[i]! /= sum;
  return probs;
}

/** Inverse-CDF draw from `probs` (summing to 1) with `r` in [0, 1) (run.c's sample). */
export function sample(probs: ArrayLike<number>, r: number): number {
  let cdf = 0;
  for (let i = 0; i < probs.length; i++) {
    cdf += probs[i]!;
    if (r < cdf) return i;
  }
  return probs.length - 1; // rounding left the total just under r
}

/**
 * Nucleus sampling, run.c's sample_topp: keep the most probable tokens until
 * their total exceeds topP (the token that crosses it included), then draw
 * from them in proportion. The cutoff trick: unless the nucleus is just the
 * top token (whose probability p is at least (1 - p) / (n - 1) anyway), the
 * token that closes it is the most probable of the tokens from it on, which
 * number at most n - 1 and sum to at least 1 - topP; so every nucleus token
 * has probability >= (1 - topP) / (n - 1). Tokens below that are dropped
 * before the sort, which keeps the sort small for a large vocabulary. Ties in
 * probability keep index order (run.c's qsort leaves them unspecified).
 */
export function sampleTopP(probs: ArrayLike<number>, topP: number, r: number): number {
  const n = probs.length;
  if (n === 1) return 0;
  const cutoff = (1 - topP) / (n - 1);
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (probs[i]! >= cutoff) candidates.push(i);
  candidates.sort((a, b) => probs[b]! - probs[a]! || a - b);
  let total = 0;
  let last = candidates.length - 1; // when rounding keeps the total <= topP, keep them all
  for (let i = 0; i < candidates.length; i++) {
    total += probs[candidates[i]!]!;
    if (total > topP) {
      last = i;
      break;
    }
  }
  const target = r * total;
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf += probs[candidates[i]!]!;
    if (target < cdf) return candidates[i]!;
  }
  return candidates[last]!;
}
