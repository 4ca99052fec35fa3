// The paper's Table 3 (StreamingLLM, Xiao et al. 2024): 160M-parameter
// models pre-trained from scratch, perplexity on 7 PG19 books with a cache
// of 1024 entries, S of them holding the first S tokens. Our pre-training
// ablation sets each miniature model against the paper's model of its
// variant and says whether it moves in the same direction.
//
// Two effects are read off each row: evicting every initial token hurts
// (0+W against 1+(W-1)), and one initial token is not enough (1+(W-1)
// against 4+(W-4)). The paper: eviction hurts all three models (x1.5 for
// vanilla, x1468 with softmax1, x69 with a sink token); one token is not
// enough for vanilla (+2.4%) or softmax1 (+10%) but is for the sink-token
// model (-0.06%), which is the point of pre-training with a sink.

/** The paper's setting, for the report. */
export const PAPER_TABLE3_SETTING = '160M models, PG19, cache 0+1024, 1+1023, 2+1022, 4+1020';

export interface PaperRow {
  /** The paper's name for the model. */
  paper: string;
  /** Perplexity with 0, 1, 2 and 4 initial tokens kept (cache 1024). */
  ppl: { 0: number; 1: number; 2: number; 4: number };
}

/** Table 3 of the paper, keyed by this project's variant names; learned-sink has no counterpart there. */
export const PAPER_TABLE3: Readonly<Record<string, PaperRow>> = {
  softmax: { paper: 'vanilla', ppl: { 0: 27.87, 1: 18.49, 2: 18.05, 4: 18.05 } },
  softmax1: { paper: 'zero sink (softmax1)', ppl: { 0: 29214, 1: 19.9, 2: 18.27, 4: 18.01 } },
  'sink-token': { paper: 'learnable sink token', ppl: { 0: 1235, 1: 18.01, 2: 18.01, 4: 18.02 } },
};

/** A ratio counts as an effect when it moves perplexity by more than this (1%). */
export const EFFECT_THRESHOLD = 0.01;

export interface Effects {
  /** 0+W / 1+(W-1): what evicting the first token costs. */
  evictFirst: number | null;
  /** 1+(W-1) / 4+(W-4): what keeping one initial token instead of four costs. */
  oneNotFour: number | null;
}

export type Verdict = 'agrees' | 'partly' | 'disagrees' | 'no paper row' | 'incomplete';

export interface PaperComparison {
  name: string;
  variant: string;
  /** The miniature's perplexity per kept initial tokens (null where not run). */
  ppl: { 0: number | null; 1: number | null; 2: number | null; 4: number | null };
  recompute: number | null;
  /** Recompute with the BOS kept first, for models trained with BOS first in every sample; else null. */
  recomputeBosKept: number | null;
  effects: Effects;
  /** The paper's row for this variant, and its effects. */
  paper: PaperRow | null;
  paperEffects: Effects | null;
  verdict: Verdict;
}

export function effectsOf(ppl: { 0: number | null; 1: number | null; 4: number | null }): Effects {
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
  return { evictFirst: ratio(ppl[0], ppl[1]), oneNotFour: ratio(ppl[1], ppl[4]) };
}

const present = (ratio: number) => ratio > 1 + EFFECT_THRESHOLD;

/** Both effects present or absent as in the paper: agrees; one of them: partly; neither: disagrees. */
export function verdictOf(mine: Effects, paper: Effects | null): Verdict {
  if (paper === null) return 'no paper row';
  if (mine.evictFirst === null || mine.oneNotFour === null) return 'incomplete';
  const matches = [present(mine.evictFirst) === present(paper.evictFirst!), present(mine.oneNotFour) === present(paper.oneNotFour!)].filter(Boolean).length;
  return matches === 2 ? 'agrees' : matches === 1 ? 'partly' : 'disagrees';
}

export function compareWithPaper(
  models: { name: string; variant: string; ppl: (sinks: number) => number | undefined; recompute: number | null; recomputeBosKept?: number | null }[],
): PaperComparison[] {
  return models.map((m) => {
    const ppl = { 0: m.ppl(0) ?? null, 1: m.ppl(1) ?? null, 2: m.ppl(2) ?? null, 4: m.ppl(4) ?? null };
    const paper = PAPER_TABLE3[m.variant] ?? null;
    const effects = effectsOf(ppl);
    const paperEffects = paper ? effectsOf(paper.ppl) : null;
    return {
      name: m.name,
      variant: m.variant,
      ppl,
      recompute: m.recompute,
      recomputeBosKept: m.recomputeBosKept ?? null,
      effects,
      paper,
      paperEffects,
      verdict: verdictOf(effects, paperEffects),
    };
  });
}

export const COMPARISON_HEADER = [
  'model',
  '0+W',
  '1+(W-1)',
  '2+(W-2)',
  '4+(W-4)',
  'recompute*',
  'recompute, BOS kept*',
  '0+W / 1+(W-1)',
  '1+(W-1) / 4+(W-4)',
  'verdict',
];

/** Two rows per model: the miniature, then the paper's model of its variant (cache 1024). */
export function comparisonRows(comparison: PaperComparison[]): (string | number | null)[][] {
  const ratio = (r: number | null) => (r === null ? null : `x${r.toFixed(r >= 100 ? 0 : r >= 10 ? 1 : 3)}`);
  return comparison.flatMap((c) => {
    const mine = [
      `${c.name} (${c.variant})`,
      c.ppl[0],
      c.ppl[1],
      c.ppl[2],
      c.ppl[4],
      c.recompute,
      c.recomputeBosKept,
      ratio(c.effects.evictFirst),
      ratio(c.effects.oneNotFour),
      c.verdict,
    ];
    if (c.paper === null) return [mine];
    const p = c.paper.ppl;
    return [mine, [`paper: ${c.paper.paper}`, p[0], p[1], p[2], p[4], null, null, ratio(c.paperEffects!.evictFirst), ratio(c.paperEffects!.oneNotFour), '']];
  });
}
