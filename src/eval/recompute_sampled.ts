// The recompute baseline at chosen positions only. Recompute(W) re-runs the
// last W tokens from scratch for every scored token: a full W-token forward
// pass each, so scoring every token of a long text costs hours where the
// cached policies take seconds. Scoring a sample of positions (every k-th)
// gives exact recompute NLLs there, to compare with the other policies on
// the same positions.
//
// Token i (predicting ids[i+1]) sees the text tokens ids[i-W+1..i] at
// positions 0..W-1. A sink-token model keeps its learned sink at position 0,
// as in training, and so sees the sink plus the last W-1 tokens. (TokenStream's
// recompute lets the window slide past the sink; the two agree for every
// other model.) With `keepFirst` k, the stream's first k tokens stay at the
// front of every window too (k + the last W-k tokens): what a model trained
// with BOS first in every sample saw in training, and the question of the
// paper's Table 1 (does the first token matter as a sink, or its content?).
// While i is inside the first window the context is the whole prefix, and
// one causal pass over the first window scores all of those.
import { CausalBlock } from '../cache/causal_block.js';
import { NonFiniteError, UsageError } from '../errors.js';
import { yieldToEventLoop } from '../event_loop.js';
import { firstNonFinite } from '../finite.js';
import { checkTokenIds } from '../model/token_ids.js';
import { forwardBatch, withSinkToken } from '../model/transformer.js';
import type { Model } from '../model/weights.js';
import { nllOfRows } from './nll.js';
import { nonFiniteOutput } from './perplexity.js';

export interface RecomputeOptions {
  /** Full windows per forward pass (default 4). */
  batchSize?: number;
  /** Stream tokens kept at the front of every window (default 0; e.g. 1 keeps a BOS). */
  keepFirst?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Positions 0..total-1 on a stride that keeps at most `samples` of those past the first window; the whole first window is kept. */
export function sampledPositions(total: number, windowSize: number, samples: number): { stride: number; positions: number[] } {
  const past = Math.max(0, total - windowSize);
  const stride = Math.max(1, Math.ceil(past / Math.max(1, samples)));
  const positions: number[] = [];
  for (let i = 0; i < Math.min(total, windowSize); i++) positions.push(i);
  for (let i = windowSize; i < total; i += stride) positions.push(i);
  return { stride, positions };
}

/** nll[j] = -log p(ids[positions[j] + 1] | the recompute window ending at positions[j]). */
export async function recomputeNllAt(
  model: Model,
  ids: readonly number[],
  windowSize: number,
  positions: readonly number[],
  options: RecomputeOptions = {},
): Promise<Float64Array> {
  const sink = model.config.sinkToken;
  const textSpan = windowSize - (sink ? 1 : 0);
  const keepFirst = options.keepFirst ?? 0;
  if (!Number.isInteger(windowSize) || textSpan < 1) throw new UsageError(`recompute: window ${windowSize} is too small`);
  if (!Number.isInteger(keepFirst) || keepFirst < 0 || keepFirst >= textSpan) {
    throw new UsageError(`recompute: keepFirst must be an integer in 0..${textSpan - 1} (the window holds ${textSpan} tokens), got ${keepFirst}`);
  }
  positions.forEach((p, j) => {
    if (!Number.isInteger(p) || p < 0 || p >= ids.length - 1 || (j > 0 && p <= positions[j - 1]!)) {
      throw new UsageError(`recompute: positions must ascend within 0..${ids.length - 2}; got ${p} at ${j}`);
    }
  });
  const vocab = model.config.vocabSize;
  checkTokenIds('ids', ids, vocab); // the targets too: nllOfRows would read another row's logit
  const nll = new Float64Array(positions.length);
  const run = (contexts: number[][], last: boolean): Float32Array => {
    const logits = forwardBatch(
      model,
      contexts,
      contexts.map(() => new CausalBlock()),
      last ? 'last' : 'all',
    );
    const values = logits.dataSync() as Float32Array;
    logits.dispose();
    return values;
  };

  // 1. positions inside the first window: one causal pass over the prefix
  const early = positions.filter((p) => p < textSpan);
  if (early.length > 0) {
    const end = early[early.length - 1]!;
    const values = run([withSinkToken(model.config, ids.slice(0, end + 1))], false);
    const offset = sink ? 1 : 0; // row r + offset predicts ids[r + 1]
    early.forEach((p, j) => nllOfRows(values.subarray((p + offset) * vocab), vocab, [ids[p + 1]!], nll, j));
  }
  // 2. the rest: a full window each, a few windows per forward pass
  const batchSize = options.batchSize ?? 4;
  const total = positions.length;
  options.onProgress?.(early.length, total);
  for (let j = early.length; j < total; j += batchSize) {
    const chunk = positions.slice(j, j + batchSize);
    const first = ids.slice(0, keepFirst);
    const values = run(
      chunk.map((p) => withSinkToken(model.config, [...first, ...ids.slice(p - textSpan + keepFirst + 1, p + 1)])),
      true,
    );
    nllOfRows(
      values,
      vocab,
      chunk.map((p) => ids[p + 1]!),
      nll,
      j,
    );
    options.onProgress?.(j + chunk.length, total);
    await yieldToEventLoop();
  }
  const bad = firstNonFinite(nll);
  if (bad >= 0) throw new NonFiniteError(nonFiniteOutput(positions[bad]!, `recompute(${windowSize})`, nll[bad]!));
  return nll;
}
