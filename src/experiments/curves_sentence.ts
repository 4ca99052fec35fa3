// One sentence about a curves run, computed from its numbers: what evicting
// the first tokens costs (window against streaming, both over every token)
// and how far streaming is from the recompute baseline (the BOS-kept one for
// a model trained with BOS first, else plain; on the sampled positions past
// the first window). `npm start` prints it under each model's table. It
// claims a collapse only where the numbers show one: a ratio within
// EFFECT_THRESHOLD of 1 is said to be none.
import type { CurvesResult } from './curves.js';
import { EFFECT_THRESHOLD } from './paper_table3.js';

/** "+52.0%", "0.0%" (not "-0.0%"), or "x3.10 (+210%)" from twice on. */
function cost(ratio: number): string {
  const pct = (ratio - 1) * 100;
  const digits = pct.toFixed(Math.abs(pct) >= 100 ? 0 : 1);
  const signed = Number(digits) === 0 ? `${digits.replace('-', '')}%` : `${pct > 0 ? '+' : ''}${digits}%`;
  return ratio >= 2 ? `x${ratio.toFixed(2)} (${signed})` : signed;
}

export function curvesSentence(result: CurvesResult): string {
  const row = (name: string) => result.policies.find((r) => r.name === name);
  const window = row('window')?.ppl ?? null;
  const streaming = row('streaming');
  if (window === null || streaming === undefined || streaming.ppl === null) return `${result.model}: no window and streaming perplexities to compare.`;
  const S = result.sinkCount;
  const first = `the first ${S === 1 ? 'token' : `${S} tokens`}`;
  if (result.tokens <= result.windowSize + 1) {
    return `${result.model}: the ${result.tokens} tokens fit in the cache of ${result.windowSize}, so nothing is evicted and the policies agree.`;
  }
  const ratio = window / streaming.ppl;
  const parts = [
    `${result.model}: window / streaming PPL = ${ratio.toFixed(3)} over ${result.tokens - 1} tokens: ` +
      (ratio > 1 + EFFECT_THRESHOLD
        ? `evicting ${first} costs ${cost(ratio)}`
        : `evicting ${first} changes perplexity by ${cost(ratio)}, within the ${(EFFECT_THRESHOLD * 100).toFixed(0)}% counted as an effect: no collapse on this model`),
  ];
  const baseline = row('recompute-bos')?.pplSampled ?? null;
  const reference = baseline ?? row('recompute')?.pplSampled ?? null;
  if (reference !== null && streaming.pplSampled !== null) {
    parts.push(
      `streaming is ${cost(streaming.pplSampled / reference)} from recompute${baseline !== null ? ' with BOS kept' : ''} on ${result.recompute.pastFirstWindow} sampled positions`,
    );
  }
  return parts.join('; ') + '.';
}
