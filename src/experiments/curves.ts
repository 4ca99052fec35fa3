// The paper's Fig. 3: per-token log-perplexity along a long text for the four
// policies, every cache holding W = the trained length. Window attention
// collapses once the first tokens leave its cache (token W + 1), dense once
// the text outgrows the trained length, and StreamingLLM tracks the
// recompute baseline. Beside them, the two score-based evictions
// researchers compare StreamingLLM against, at the same budget W: H2O (half
// heavy hitters, half recent tokens) and TOVA.
//
// Dense, window, streaming, h2o and tova score every token (exact). Recompute
// costs a W-token forward pass per token, so it is scored on every position
// of the first window (where it is one causal pass) and at about
// `recomputeSamples` evenly spaced positions after it; the table compares
// all four on exactly those sampled positions too.
//
// For a model trained with BOS first in every sample (bos_first.ts),
// recompute runs twice: plain (the last W tokens) and with the stream's BOS
// kept at the front of every window (BOS + the last W-1), the baseline the
// model was trained for.
//
// The plot compares the four on the same tokens: each point is the mean NLL
// of the sampled positions in a bin of consecutive tokens (16 of them past
// the first window), for every policy alike. Per-token losses vary by
// nats, so curves drawn from different tokens would differ by noise alone;
// on the same tokens, what differs is the policy. The table also gives the
// cached policies' perplexity over every token.
import { type CachePolicy, policyLabel } from '../cache/index.js';
import { recomputeNllAt, sampledPositions } from '../eval/recompute_sampled.js';
import { type LineSeries, lineChart } from '../plot/index.js';
import type { FigureFile } from './report.js';
import { sourceLabel } from './text_source.js';
import { binnedCurve, pplAt, relative, scoreWithProgress } from './score.js';
import { cacheWindow, type Experiment, type ExperimentContext, sinkCount, tokenBudget } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';
import { bosKept } from './bos_first.js';
import { curvesSentence } from './curves_sentence.js';

export const DEFAULT_RECOMPUTE_SAMPLES = 512;
/** Sampled positions per point of the curves (past the first window). */
const SAMPLES_PER_BIN = 16;

export interface CurveRow {
  name: 'dense' | 'window' | 'streaming' | 'h2o' | 'tova' | 'recompute' | 'recompute-bos';
  label: string;
  policy: CachePolicy;
  /** PPL over every scored token (recompute: null unless it scored every token). */
  ppl: number | null;
  /** PPL over the sampled positions past the first window (null when the text is shorter). */
  pplSampled: number | null;
  seconds: number;
  /** Scored tokens per second. */
  tokensPerSecond: number;
  /** nll[i]: loss of token i + 1; null where not scored. */
  nll: (number | null)[];
}

export interface CurvesResult {
  experiment: 'curves';
  model: string;
  text: string;
  tokens: number;
  windowSize: number;
  sinkCount: number;
  /** Tokens per point of the curves (each point: the sampled positions among them). */
  binSize: number;
  recompute: { stride: number; positions: number; pastFirstWindow: number };
  /** The BOS the 'recompute-bos' row keeps first (a BOS-first model whose text starts with it); else null. */
  bosKept: number | null;
  policies: CurveRow[];
  figures: FigureFile[];
  /** The table as Markdown. */
  table: string;
}

export const curves: Experiment = {
  name: 'curves',
  title: EXPERIMENT_TITLES['curves'],
  run: runCurves,
};

export interface CurvesOptions {
  /** Also H2O and TOVA (default true). They run a token per pass once full, about 1/100 the speed of the others: `start` leaves them out. */
  scoreBased?: boolean;
  /** Name of its files in the report (default 'curves'): `start` shows two models in one report. */
  name?: string;
}

export async function runCurves(ctx: ExperimentContext, options: CurvesOptions = {}): Promise<CurvesResult> {
  const W = cacheWindow(ctx);
  const S = sinkCount(ctx, W);
  const N = tokenBudget(ctx);
  const ids = ctx.ids.slice(0, N);
  if (N <= W + 1) ctx.log(`curves: ${N} tokens never overflow the cache of ${W}: the policies will agree (give a longer text or --tokens)`);
  const total = N - 1; // scored tokens
  const { stride, positions } = sampledPositions(total, W, ctx.settings.recomputeSamples ?? DEFAULT_RECOMPUTE_SAMPLES);
  const past = positions.filter((p) => p >= W);

  const rows: CurveRow[] = [];
  const cached: [CurveRow['name'], CachePolicy][] = [
    ['dense', { kind: 'dense' }],
    ['window', { kind: 'window', windowSize: W }],
    ['streaming', { kind: 'streaming', sinkCount: S, windowSize: W - S }],
    ['h2o', { kind: 'h2o', budget: W, recent: Math.floor(W / 2) }],
    ['tova', { kind: 'tova', budget: W }],
  ];
  const scoreBased = options.scoreBased !== false;
  if (!scoreBased) cached.splice(3, 2);
  for (const [name, policy] of cached) {
    const r = await scoreWithProgress(ctx, ids, policy);
    rows.push({
      name,
      label: policyLabel(policy),
      policy,
      ppl: r.ppl,
      pplSampled: past.length ? pplAt(r.nll, past) : null,
      seconds: r.seconds,
      tokensPerSecond: total / r.seconds,
      nll: Array.from(r.nll),
    });
  }
  const recomputePolicy: CachePolicy = { kind: 'recompute', windowSize: W };
  const kept = bosKept(ctx, ids);
  if (kept.keepFirst === 0 && kept.why !== undefined) ctx.log(`curves: no recompute (BOS kept): ${kept.why}`);
  const pastIdx = positions
    .map((p, j) => [p, j] as const)
    .filter(([p]) => p >= W)
    .map(([, j]) => j);
  const sampledRows: { keepFirst: number; sampled: Float64Array }[] = [];
  for (const keepFirst of kept.keepFirst === 1 ? [0, 1] : [0]) {
    const label = `${policyLabel(recomputePolicy)}${keepFirst ? ', BOS kept' : ''}`;
    const progress = ctx.progress(`${label} (${positions.length} positions)`, positions.length);
    const started = performance.now();
    const sampled = await recomputeNllAt(ctx.model, ids, W, positions, { keepFirst, onProgress: (done) => progress.update(done) });
    const seconds = (performance.now() - started) / 1000;
    progress.finish();
    const nll: (number | null)[] = new Array<number | null>(total).fill(null);
    positions.forEach((p, j) => (nll[p] = sampled[j]!));
    sampledRows.push({ keepFirst, sampled });
    rows.push({
      name: keepFirst ? 'recompute-bos' : 'recompute',
      label,
      policy: recomputePolicy,
      ppl: positions.length === total ? pplAt(sampled) : null,
      pplSampled: past.length ? pplAt(sampled, pastIdx) : null,
      seconds,
      tokensPerSecond: positions.length / seconds,
      nll,
    });
  }

  // The figure: binned mean NLL against position.
  const binSize = Math.max(Math.ceil(W / 4), SAMPLES_PER_BIN * stride);
  const names: Record<CurveRow['name'], string> = {
    dense: 'dense',
    window: `window (${W})`,
    streaming: `StreamingLLM (${S}+${W - S})`,
    h2o: `H2O (${W - Math.floor(W / 2)}+${Math.floor(W / 2)})`,
    tova: `TOVA (${W})`,
    recompute: `sliding window w/ recompute (${W})`,
    'recompute-bos': `sliding window w/ recompute, BOS kept (1+${W - 1})`,
  };
  const series: LineSeries[] = rows.map((row) => {
    const recomputed = sampledRows.find((r) => (r.keepFirst === 1) === (row.name === 'recompute-bos'));
    const values = row.name.startsWith('recompute') ? recomputed!.sampled : positions.map((p) => row.nll[p]!);
    const curve = binnedCurve(values, binSize, positions);
    return { name: names[row.name], x: curve.x, y: curve.y, dashed: row.name.startsWith('recompute') };
  });
  const figure = await lineChart({
    title: 'Per-token log-perplexity along the text (paper Fig. 3)',
    subtitle: `${ctx.modelLabel}, ${N} tokens of ${sourceLabel(ctx.source)}; each point: mean NLL of the same sampled positions in ${binSize} tokens`,
    xLabel: 'token position',
    yLabel: 'log-perplexity (mean NLL, nats)',
    series,
    referenceLines: [{ x: W + 0.5, label: W === ctx.model.config.maxSeqLen ? `cache full = trained length ${W}` : `cache full (${W})` }],
    legendTitle: 'KV cache',
    downsample: false,
  });
  ctx.report.heading(options.name !== undefined ? `${curves.title}: ${ctx.modelLabel}` : curves.title);
  ctx.report.text(
    `Every cache lets a query see ${W} entries (${W === ctx.model.config.maxSeqLen ? 'the trained length' : `trained length ${ctx.model.config.maxSeqLen}`}); streaming keeps ${S} initial tokens and ${W - S} recent ones` +
      (scoreBased
        ? `, H2O the ${Math.floor(W / 2)} most recent and the heavy hitters by accumulated attention, TOVA what the current query attends to most. `
        : '. ') +
      `${scoreBased ? 'Dense, window, streaming, H2O and TOVA' : 'Dense, window and streaming'} score all ${total} tokens; recompute re-runs a ${W}-token window per scored token, so it is scored on ` +
      `the first window and then ${stride === 1 ? 'every position' : `every ${stride}th position`} (${past.length} positions past the first window); ` +
      `the third column compares all of them on those positions, and so does the figure. The dashed line marks where the caches first fill.` +
      (kept.keepFirst === 1
        ? ` The model was trained with BOS first in every sample: "BOS kept" recomputes with the text's BOS (${kept.bos}) at the front of every window and its last ${W - 1} tokens, as in training; plain recompute slides past it.`
        : ''),
  );
  const name = options.name ?? 'curves';
  const table = ctx.report.table(
    name,
    ['policy', 'PPL, all tokens', `PPL, ${past.length} sampled positions > ${W}`, 'tokens/s'],
    rows.map((r) => [r.label, r.ppl, r.pplSampled, Math.round(r.tokensPerSecond)]),
  );
  const figureFile = await ctx.report.figure(
    name,
    figure,
    `Per-token log-perplexity, ${ctx.modelLabel}: mean NLL of the positions recompute was scored at, per bin of ${binSize} tokens, for every policy; dashed vertical line at ${W} tokens.`,
  );
  const by = (n: CurveRow['name']) => rows.find((r) => r.name === n)!.pplSampled;
  const [dense, window, streaming, recompute] = [by('dense'), by('window'), by('streaming'), by('recompute')];
  if (dense !== null && window !== null && streaming !== null && recompute !== null) {
    ctx.report.text(
      `On the sampled positions past the first window, against recompute (PPL ${recompute.toFixed(2)}): streaming ${streaming.toFixed(2)} ` +
        `(${relative(streaming, recompute)}), window ${window.toFixed(2)} (${relative(window, recompute)}), dense ${dense.toFixed(2)} (${relative(dense, recompute)}).`,
    );
    const withBos = rows.find((r) => r.name === 'recompute-bos')?.pplSampled;
    if (withBos !== undefined && withBos !== null) {
      ctx.report.text(
        `Against recompute with BOS kept (PPL ${withBos.toFixed(2)}; plain recompute ${relative(recompute, withBos)}): streaming ${relative(streaming, withBos)}, window ${relative(window, withBos)}.`,
      );
    }
  }
  const result: CurvesResult = {
    experiment: 'curves',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    tokens: N,
    windowSize: W,
    sinkCount: S,
    binSize,
    recompute: { stride, positions: positions.length, pastFirstWindow: past.length },
    bosKept: kept.keepFirst === 1 ? kept.bos : null,
    policies: rows,
    figures: [figureFile],
    table,
  };
  ctx.report.text(curvesSentence(result));
  ctx.report.json(name, result);
  return result;
}
