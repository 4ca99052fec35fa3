// The paper's Table 6: streaming perplexity against the cache size, from a
// small cache to the trained length W, always 4 initial tokens plus C-4
// recent ones. A bigger cache is not always better. Beside it, H2O (half
// recent) and TOVA at the same budget C: a query sees C entries in each.
import { type CachePolicy, DEFAULT_SINK_COUNT } from '../cache/index.js';
import { lineChart } from '../plot/index.js';
import type { FigureFile } from './report.js';
import { scoreWithProgress } from './score.js';
import { sourceLabel } from './text_source.js';
import { cacheWindow, type Experiment, type ExperimentContext, sinkCount, tokenBudget } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';

/** W/16, W/8, W/4, W/2, W, keeping those with room for a window beside the sinks (at least 2 x sinks). */
export function cacheSizes(W: number, sinks = DEFAULT_SINK_COUNT): number[] {
  const sizes = [16, 8, 4, 2, 1].map((d) => Math.round(W / d)).filter((c) => c >= 2 * sinks);
  return [...new Set(sizes.length ? sizes : [W])];
}

export interface CacheSizeResult {
  experiment: 'cache-size';
  model: string;
  text: string;
  tokens: number;
  trainedLength: number;
  /** ppl: streaming; h2oPpl, tovaPpl: the score-based evictions at the same budget. */
  rows: { cacheSize: number; sinks: number; window: number; ppl: number; h2oPpl: number; tovaPpl: number }[];
  figures: FigureFile[];
}

export const cacheSize: Experiment = {
  name: 'cache-size',
  title: EXPERIMENT_TITLES['cache-size'],
  run: runCacheSize,
};

export async function runCacheSize(ctx: ExperimentContext): Promise<CacheSizeResult> {
  const W = ctx.model.config.maxSeqLen;
  const largest = cacheWindow(ctx);
  const S = sinkCount(ctx, largest);
  const N = tokenBudget(ctx);
  const ids = ctx.ids.slice(0, N);
  const rows: CacheSizeResult['rows'] = [];
  for (const C of cacheSizes(largest, S)) {
    const policy: CachePolicy = { kind: 'streaming', sinkCount: S, windowSize: C - S };
    const r = await scoreWithProgress(ctx, ids, policy, `cache ${S}+${C - S}`);
    const h2o = await scoreWithProgress(ctx, ids, { kind: 'h2o', budget: C, recent: Math.floor(C / 2) });
    const tova = await scoreWithProgress(ctx, ids, { kind: 'tova', budget: C });
    rows.push({ cacheSize: C, sinks: S, window: C - S, ppl: r.ppl, h2oPpl: h2o.ppl, tovaPpl: tova.ppl });
  }
  ctx.report.heading(cacheSize.title);
  ctx.report.text(
    `Streaming perplexity over ${N} tokens of ${sourceLabel(ctx.source)}, ${S} initial tokens plus C-${S} recent ones; trained length ${W}. ` +
      `H2O (the C/2 most recent tokens plus heavy hitters) and TOVA at the same budget C score the same tokens.`,
  );
  ctx.report.table(
    'cache-size',
    ['cache size C', 'streaming cache', 'streaming PPL', 'H2O PPL', 'TOVA PPL'],
    rows.map((r) => [r.cacheSize, `${r.sinks}+${r.window}`, r.ppl, r.h2oPpl, r.tovaPpl]),
  );
  const figure = await lineChart({
    title: 'Streaming perplexity against KV cache size (paper Table 6)',
    subtitle: `${ctx.modelLabel}, ${N} tokens, ${S} initial + C-${S} recent tokens`,
    xLabel: 'cache size C (entries)',
    yLabel: 'perplexity',
    series: [
      { name: `StreamingLLM (${S}+C-${S})`, x: rows.map((r) => r.cacheSize), y: rows.map((r) => r.ppl) },
      { name: 'H2O (C/2 recent)', x: rows.map((r) => r.cacheSize), y: rows.map((r) => r.h2oPpl) },
      { name: 'TOVA', x: rows.map((r) => r.cacheSize), y: rows.map((r) => r.tovaPpl) },
    ],
    xScale: 'log2',
    markers: true,
    referenceLines: [{ x: W, label: `trained length ${W}` }],
  });
  const file = await ctx.report.figure('cache-size', figure, `Streaming perplexity by cache size, ${ctx.modelLabel}.`);
  const best = rows.reduce((a, b) => (b.ppl < a.ppl ? b : a));
  ctx.report.text(
    `The lowest streaming perplexity, ${best.ppl.toFixed(2)}, comes with C = ${best.cacheSize}${best.cacheSize === W ? ' (the trained length)' : ''}.`,
  );
  const result: CacheSizeResult = {
    experiment: 'cache-size',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    tokens: N,
    trainedLength: W,
    rows,
    figures: [file],
  };
  ctx.report.json('cache-size', result);
  return result;
}
