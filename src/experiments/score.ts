// Scoring helpers the experiments share: one policy over the text with a
// progress bar, perplexity over a subset of positions, and binned curves.
import { type CachePolicy, policyLabel } from '../cache/index.js';
import { type ScoreResult, scoreTokens } from '../eval/perplexity.js';
import type { ExperimentContext } from './types.js';

/** Score the tokens under one policy, blocked, with a progress bar. */
export async function scoreWithProgress(
  ctx: ExperimentContext,
  ids: readonly number[],
  policy: CachePolicy,
  label = policyLabel(policy),
): Promise<ScoreResult> {
  const progress = ctx.progress(label, ids.length - 1);
  const result = await scoreTokens(ctx.model, ids, policy, { onProgress: (done) => progress.update(done) });
  progress.finish(`ppl ${result.ppl.toFixed(3)}`);
  return result;
}

/** exp(mean of nll[i]) over the given indices (all when omitted); NaN when there are none. */
export function pplAt(nll: ArrayLike<number>, indices?: readonly number[]): number {
  let sum = 0;
  let count: number;
  if (indices === undefined) {
    for (let i = 0; i < nll.length; i++) sum += nll[i]!;
    count = nll.length;
  } else {
    for (const i of indices) sum += nll[i]!;
    count = indices.length;
  }
  return count === 0 ? NaN : Math.exp(sum / count);
}

/**
 * Mean NLL per bin of `bin` consecutive token positions. nll[i] is the loss of
 * token i + 1, so it sits at position i + 1; `at[j]` gives the index of
 * values[j] when only some positions were scored. x is the bin's middle.
 */
export function binnedCurve(values: ArrayLike<number>, bin: number, at?: readonly number[]): { x: number[]; y: number[] } {
  const sums = new Map<number, [number, number]>();
  for (let j = 0; j < values.length; j++) {
    const position = (at ? at[j]! : j) + 1;
    const b = Math.floor((position - 1) / bin);
    const s = sums.get(b) ?? [0, 0];
    s[0] += values[j]!;
    s[1] += 1;
    sums.set(b, s);
  }
  const bins = [...sums.keys()].sort((a, b) => a - b);
  return { x: bins.map((b) => b * bin + (bin + 1) / 2), y: bins.map((b) => sums.get(b)![0] / sums.get(b)![1]) };
}

/** "+3.2%" or "x12.4": `value` against `reference`. */
export function relative(value: number, reference: number): string {
  const ratio = value / reference;
  if (ratio >= 2) return `x${ratio.toFixed(1)}`;
  const pct = (ratio - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
}
