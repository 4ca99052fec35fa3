// The paper's Table 2: how many initial tokens must stay in the cache? The
// total cache is fixed at W = the trained length; S of it keeps the first
// S tokens (S = 0, 1, 2, 4, 8) and the rest the most recent ones. 0+W is
// window attention.
import { type CachePolicy } from '../cache/index.js';
import { barChart } from '../plot/index.js';
import type { FigureFile } from './report.js';
import { scoreWithProgress } from './score.js';
import { sourceLabel } from './text_source.js';
import { cacheWindow, type Experiment, type ExperimentContext, tokenBudget } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';

export const INITIAL_TOKEN_COUNTS = [0, 1, 2, 4, 8] as const;

export interface InitialTokensResult {
  experiment: 'initial-tokens';
  model: string;
  text: string;
  tokens: number;
  cacheSize: number;
  rows: { sinks: number; window: number; label: string; ppl: number }[];
  figures: FigureFile[];
}

export const initialTokens: Experiment = {
  name: 'initial-tokens',
  title: EXPERIMENT_TITLES['initial-tokens'],
  run: runInitialTokens,
};

export async function runInitialTokens(ctx: ExperimentContext): Promise<InitialTokensResult> {
  const W = cacheWindow(ctx);
  const N = tokenBudget(ctx);
  const ids = ctx.ids.slice(0, N);
  const rows: InitialTokensResult['rows'] = [];
  for (const sinks of INITIAL_TOKEN_COUNTS.filter((s) => s < W)) {
    const policy: CachePolicy = { kind: 'streaming', sinkCount: sinks, windowSize: W - sinks };
    const label = `${sinks}+${W - sinks}`;
    const r = await scoreWithProgress(ctx, ids, policy, `initial tokens ${label}`);
    rows.push({ sinks, window: W - sinks, label, ppl: r.ppl });
  }
  ctx.report.heading(initialTokens.title);
  ctx.report.text(
    `Streaming perplexity over ${N} tokens with a cache of ${W} entries (${W === ctx.model.config.maxSeqLen ? 'the trained length' : `trained length ${ctx.model.config.maxSeqLen}`}), S of them holding the first S tokens ` +
      `and ${W}-S the most recent ones. 0+${W} is window attention.`,
  );
  ctx.report.table(
    'initial-tokens',
    ['cache (initial + recent)', 'PPL'],
    rows.map((r) => [r.label, r.ppl]),
  );
  const spread = Math.max(...rows.map((r) => r.ppl)) / Math.min(...rows.map((r) => r.ppl));
  const figure = await barChart({
    title: 'Streaming perplexity against initial tokens kept (paper Table 2)',
    subtitle: `${ctx.modelLabel}, ${N} tokens of ${sourceLabel(ctx.source)}, total cache ${W}`,
    xLabel: 'KV cache (initial + recent tokens)',
    yLabel: 'perplexity',
    groups: rows.map((r) => r.label),
    series: [{ name: ctx.modelLabel, values: rows.map((r) => r.ppl) }],
    yScale: spread > 10 ? 'log' : 'linear',
    valueFormat: '.4~r',
  });
  const file = await ctx.report.figure('initial-tokens', figure, `Perplexity by number of initial tokens kept, ${ctx.modelLabel}.`);
  const first = rows[0]!;
  const four = rows.find((r) => r.sinks === 4);
  if (four && first.sinks === 0) {
    ctx.report.text(`Keeping 4 initial tokens takes perplexity from ${first.ppl.toFixed(2)} (window) to ${four.ppl.toFixed(2)}.`);
  }
  const result: InitialTokensResult = {
    experiment: 'initial-tokens',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    tokens: N,
    cacheSize: W,
    rows,
    figures: [file],
  };
  ctx.report.json('initial-tokens', result);
  return result;
}
