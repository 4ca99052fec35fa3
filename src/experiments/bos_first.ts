// Models trained with BOS first in every sample (Backcopy, mix, train
// --bos-first) are evaluated as they were trained: BOS first in every
// attention window, BOS first in the text, and a second recompute baseline
// that keeps that BOS at the front of every window ("recompute (BOS kept)",
// as recompute already keeps a sink-token model's sink). Plain recompute
// stays beside it: how much the first token matters when the window slides
// past it is the paper's Table 1 question.
//
// Whether a model is BOS-first: --bos-first / --bos-first=false when given,
// else what its manifest entry or run says (src/zoo/trained_on.ts).
import type { ExperimentContext } from './types.js';

/** The model reads BOS first: the flag when given, else its training record. */
export function bosFirstOf(ctx: Pick<ExperimentContext, 'settings' | 'trainedOn'>): boolean {
  return ctx.settings.bosFirst ?? ctx.trainedOn?.bosFirst ?? false;
}

/** The BOS a BOS-first model reads first (its tokenizer's); undefined for other models. */
export function firstBos(ctx: Pick<ExperimentContext, 'settings' | 'trainedOn' | 'tokenizer'>): number | undefined {
  return bosFirstOf(ctx) ? ctx.tokenizer?.bosId : undefined;
}

export type BosKept = { keepFirst: 1; bos: number } | { keepFirst: 0; why: string | undefined };

/**
 * Whether the BOS-kept recompute applies: the model is BOS-first and the
 * text starts with its BOS (token ids given as they are may not). `why`
 * says why not, for the report, where it is worth saying.
 */
export function bosKept(ctx: Pick<ExperimentContext, 'settings' | 'trainedOn' | 'tokenizer'>, ids: readonly number[]): BosKept {
  const bos = firstBos(ctx);
  if (bos === undefined) return { keepFirst: 0, why: undefined };
  if (ids[0] !== bos) return { keepFirst: 0, why: `the text does not start with BOS (${bos}), so recompute has no BOS to keep` };
  return { keepFirst: 1, bos };
}
