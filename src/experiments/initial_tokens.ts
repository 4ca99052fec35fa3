// The paper's Table 2: how many initial tokens must stay in the cache? The
// total cache is fixed at W = the trained length; S of it keeps the first
// S tokens (S = 0, 1, 2, 4, 8) and the rest the most recent ones. 0+W is
// window attention.
//
// For a model trained with BOS first in every sample (bos_first.ts), the
// table also gives the recompute baselines, plain and with the BOS kept at
// the front of every window, on sampled positions past the first window,
// and every S+(W-S) on the same positions beside them.
import { type CachePolicy } from '../cache/index.js';
import { barChart } from '../plot/index.js';
import type { FigureFile } from './report.js';
import { pplAt, relative, scoreWithProgress } from './score.js';
import { sourceLabel } from './text_source.js';
import { cacheWindow, type Experiment, type ExperimentContext, tokenBudget } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';
import { bosKept } from './bos_first.js';
import { DEFAULT_RECOMPUTE_SAMPLES } from './curves.js';
import { recomputeNllAt, sampledPositions } from '../eval/recompute_sampled.js';

export const INITIAL_TOKEN_COUNTS = [0, 1, 2, 4, 8] as const;

export interface InitialTokensResult {
  experiment: 'initial-tokens';
  model: string;
  text: string;
  tokens: number;
  cacheSize: number;
  rows: { sinks: number; window: number; label: string; ppl: number; pplSampled?: number | null }[];
  /** BOS-first models: recompute at sampled positions past the first window, plain and with BOS kept; the rows' pplSampled are on the same positions. */
  recompute?: { stride: number; positions: number; ppl: number | null; bosKeptPpl: number | null };
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
  const kept = bosKept(ctx, ids);
  const { stride, positions } = sampledPositions(N - 1, W, ctx.settings.recomputeSamples ?? DEFAULT_RECOMPUTE_SAMPLES);
  const past = kept.keepFirst === 1 ? positions.filter((p) => p >= W) : [];
  const rows: InitialTokensResult['rows'] = [];
  for (const sinks of INITIAL_TOKEN_COUNTS.filter((s) => s < W)) {
    const policy: CachePolicy = { kind: 'streaming', sinkCount: sinks, windowSize: W - sinks };
    const label = `${sinks}+${W - sinks}`;
    const r = await scoreWithProgress(ctx, ids, policy, `initial tokens ${label}`);
    rows.push({ sinks, window: W - sinks, label, ppl: r.ppl, ...(past.length ? { pplSampled: pplAt(r.nll, past) } : {}) });
  }
  let recompute: InitialTokensResult['recompute'];
  if (past.length) {
    const [plain, withBos] = [await recomputeAt(ctx, ids, W, past, 0), await recomputeAt(ctx, ids, W, past, 1)];
    recompute = { stride, positions: past.length, ppl: pplAt(plain), bosKeptPpl: pplAt(withBos) };
  } else if (kept.keepFirst === 0 && kept.why !== undefined) {
    ctx.log(`initial-tokens: no recompute (BOS kept): ${kept.why}`);
  }
  ctx.report.heading(initialTokens.title);
  ctx.report.text(
    `Streaming perplexity over ${N} tokens with a cache of ${W} entries (${W === ctx.model.config.maxSeqLen ? 'the trained length' : `trained length ${ctx.model.config.maxSeqLen}`}), S of them holding the first S tokens ` +
      `and ${W}-S the most recent ones. 0+${W} is window attention.`,
  );
  if (recompute === undefined) {
    ctx.report.table(
      'initial-tokens',
      ['cache (initial + recent)', 'PPL'],
      rows.map((r) => [r.label, r.ppl]),
    );
  } else {
    ctx.report.text(
      `The model was trained with BOS first in every sample, so beside the caches: recompute(${W}) at ${recompute.positions} sampled positions past the first ` +
        `window (every ${recompute.stride}th), plain (the last ${W} tokens) and with the text's BOS kept at the front of every window (BOS + the last ${W - 1}, as in training); ` +
        `the third column gives every cache on the same positions.`,
    );
    ctx.report.table(
      'initial-tokens',
      ['cache (initial + recent)', 'PPL', `PPL, ${recompute.positions} sampled positions > ${W}`],
      [
        ...rows.map((r) => [r.label, r.ppl, r.pplSampled ?? null]),
        [`recompute(${W})`, null, recompute.ppl],
        [`recompute(${W}), BOS kept`, null, recompute.bosKeptPpl],
      ],
    );
  }
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
  const one = rows.find((r) => r.sinks === 1);
  if (recompute?.bosKeptPpl && recompute.ppl && one?.pplSampled && four?.pplSampled) {
    const base = recompute.bosKeptPpl;
    ctx.report.text(
      `On the sampled positions, against recompute with BOS kept (${base.toFixed(2)}): 1+${W - 1} ${relative(one.pplSampled, base)}, ` +
        `4+${W - 4} ${relative(four.pplSampled, base)}, plain recompute ${relative(recompute.ppl, base)}.`,
    );
  }
  const result: InitialTokensResult = {
    experiment: 'initial-tokens',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    tokens: N,
    cacheSize: W,
    rows,
    ...(recompute !== undefined ? { recompute } : {}),
    figures: [file],
  };
  ctx.report.json('initial-tokens', result);
  return result;
}

/** Recompute(W) NLLs at the positions, keeping the first `keepFirst` tokens, with a progress bar. */
async function recomputeAt(ctx: ExperimentContext, ids: readonly number[], W: number, positions: number[], keepFirst: number): Promise<Float64Array> {
  const progress = ctx.progress(`recompute(${W})${keepFirst ? ', BOS kept' : ''} (${positions.length} positions)`, positions.length);
  const nll = await recomputeNllAt(ctx.model, ids, W, positions, { keepFirst, onProgress: (done) => progress.update(done) });
  progress.finish();
  return nll;
}
