// The paper's Fig. 2: attention maps averaged over many short windows of the
// text, one per layer (heads averaged, or one panel per head), and the sink
// statistics per layer and head; then the yes/no sink measurement
// (src/eval/sink_measure.ts) on windows of W positions, as long as the
// model's training samples. `streamllm attn` runs this alone.
//
// Files: attention-layers.{svg,png} (every layer in one grid, as Fig. 2),
// attention-layer-L.{svg,png} per layer, sink-scores.json (the short-window
// statistics and, under "measurement", the verdict per layer and head),
// sink-profile.json (key-0 attention and logit gap per query position), and
// attention-maps.json with the averaged probabilities themselves.
import { DEFAULT_LENGTH, DEFAULT_SAMPLES } from '../eval/attention_defaults.js';
import { attentionMaps, type AttentionMaps, layerMatrix, type SinkScores, sinkScores } from '../eval/attention_maps.js';
import { SINK_WINDOWS, sinkBatchSize, type SinkProfile, sinkProfile, type SinkVerdict, sinkVerdict } from '../eval/sink_measure.js';
import { heatmapGrid, markdownTable } from '../plot/index.js';
import type { FigureFile } from './report.js';
import { sourceLabel } from './text_source.js';
import { cacheWindow, type Experiment, type ExperimentContext } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';
import { firstBos } from './bos_first.js';

export interface AttentionResult {
  experiment: 'attention';
  model: string;
  text: string;
  samples: number;
  length: number;
  seed: number;
  scores: SinkScores;
  /** The per-layer table as printed (plain text). */
  table: string;
  /** The sink measurement on windows of W positions, and its per-layer table and one-line verdict as printed. */
  sink: SinkVerdict;
  sinkTable: string;
  sinkSummary: string;
  figures: FigureFile[];
}

export const attention: Experiment = {
  name: 'attention',
  title: EXPERIMENT_TITLES['attention'],
  run: runAttention,
};

/** Rows of the per-layer table: heads averaged, and the head with the strongest sink. */
export function sinkTableRows(scores: SinkScores): (string | number)[][] {
  return scores.layers.map((l) => {
    const strongest = l.heads.reduce((best, h, i) => (h.key0 > l.heads[best]!.key0 ? i : best), 0);
    return [l.layer, l.mean.key0, l.mean.keys0to3, l.heads[strongest]!.key0, strongest, l.mean.rowMass];
  });
}

export const SINK_TABLE_HEADER = ['layer', 'to key 0', 'to keys 0-3', 'max head, key 0', 'that head', 'row mass'];

export async function runAttention(ctx: ExperimentContext): Promise<AttentionResult> {
  const samples = ctx.settings.samples ?? DEFAULT_SAMPLES;
  const length = ctx.settings.length ?? DEFAULT_LENGTH;
  const seed = ctx.settings.seed ?? 0;
  // the measurement's window is checked before the maps run, so a bad --window fails at once
  sinkBatchSize(ctx.model.config.layers, ctx.model.config.heads, cacheWindow(ctx));
  const progress = ctx.progress('attention maps', samples, 'windows');
  const bosId = firstBos(ctx); // a BOS-first model (--bos-first, or as it was trained) sees BOS first in every window
  const maps = attentionMaps(ctx.model, ctx.ids, { samples, length, seed, bosId, onProgress: (done) => progress.update(done) });
  progress.finish();
  const scores = sinkScores(maps);

  const { firstQuery, uniform } = scores;
  ctx.report.heading(attention.title);
  ctx.report.text(
    `Attention probabilities of ${ctx.modelLabel}, averaged over ${samples} windows of ${length} tokens at seeded random offsets ` +
      `(seed ${seed}) in ${sourceLabel(ctx.source)}${prefixNote(maps.sinkToken, bosId)}. The table gives the ` +
      `mean attention that queries at positions ${firstQuery}..${maps.size - 1} put on key 0 and on keys 0-3, over all heads and for the head ` +
      `that puts most on key 0; uniform attention would give ${uniform.key0.toFixed(3)} and ${uniform.keys0to3.toFixed(3)}. ` +
      `"Row mass" is the total attention of a row: 1 for softmax, less where the variant lets attention go to nothing (this model: ${maps.softmax}${maps.sinkToken ? ' with a sink token' : ''}).`,
  );
  const rows = sinkTableRows(scores);
  ctx.report.table('sink-scores', SINK_TABLE_HEADER, rows, { decimals: 3 });
  const strongLayers = scores.layers.filter((l) => l.mean.key0 > 2 * uniform.key0).map((l) => l.layer);
  ctx.report.text(
    strongLayers.length
      ? `Layers ${strongLayers.join(', ')} put more than twice the uniform share on key 0.`
      : 'No layer puts more than twice the uniform share on key 0.',
  );
  const figures = await drawMaps(ctx, maps);
  const table = markdownTable(SINK_TABLE_HEADER, rows, { decimals: 3 });
  const measured = measureSink(ctx, seed, bosId);
  const result: AttentionResult = {
    experiment: 'attention',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    samples,
    length,
    seed,
    scores,
    table,
    sink: measured.verdict,
    sinkTable: measured.table,
    sinkSummary: measured.summary,
    figures,
  };
  ctx.report.json('sink-scores', {
    model: ctx.modelLabel,
    text: result.text,
    samples,
    length,
    seed,
    sinkToken: maps.sinkToken,
    softmax: maps.softmax,
    ...scores,
    measurement: { prefix: measured.profile.prefix, ...measured.verdict },
  });
  ctx.report.json('sink-profile', {
    model: ctx.modelLabel,
    size: measured.profile.size,
    windows: measured.profile.windows,
    prefix: measured.profile.prefix,
    offsets: measured.profile.offsets,
    key0: measured.profile.key0.map((k) => perHead(k, measured.profile)),
    logitGap: measured.profile.logitGap.map((g) => perHead(g, measured.profile)),
  });
  ctx.report.json('attention-maps', {
    model: ctx.modelLabel,
    samples,
    length,
    seed,
    size: maps.size,
    sinkToken: maps.sinkToken,
    offsets: maps.offsets,
    layers: maps.probs.map((_, l) => Array.from({ length: maps.heads }, (_, h) => layerMatrix(maps, l, h))),
  });
  return result;
}

/** " ; position 0 is ..." for the report: what each window starts with. */
function prefixNote(sinkToken: boolean, bosId: number | undefined): string {
  const parts = [...(sinkToken ? ['the learned sink token'] : []), ...(bosId !== undefined ? [`BOS (${bosId})`] : [])];
  return parts.length ? `; every window starts with ${parts.join(', then ')}` : '';
}

/** [heads * size] -> [heads][size] */
function perHead(values: Float64Array, profile: SinkProfile): number[][] {
  return Array.from({ length: profile.heads }, (_, h) => Array.from(values.subarray(h * profile.size, (h + 1) * profile.size)));
}

export const SINK_VERDICT_HEADER = (v: SinkVerdict) => [
  'layer',
  'strongest head',
  `key 0, t in [${v.longRange[0]}, ${v.longRange[1]})`,
  'x uniform',
  `key 0, t in [${v.shortRange[0]}, ${v.shortRange[1]})`,
  'logit gap, short',
  'logit gap, long',
  'sink heads',
];

/** One row per layer: its strongest head's numbers and how many of its heads have a sink. */
export function sinkVerdictRows(v: SinkVerdict): (string | number)[][] {
  return v.layers.map((l) => {
    const h = l.heads[l.strongest]!;
    return [l.layer, h.head, h.key0, h.overUniform, h.key0Short, h.gapShort, h.gapLong, `${l.heads.filter((x) => x.sink).length}/${l.heads.length}`];
  });
}

/** The verdict in one sentence. */
export function sinkSummary(v: SinkVerdict): string {
  const s = v.strongest;
  const head = `layer ${s.layer} head ${s.head}: ${s.key0.toFixed(3)} on key 0 at t in [${v.longRange[0]}, ${v.longRange[1]}), ${s.overUniform.toFixed(1)}x uniform, logit gap ${s.gapShort.toFixed(2)} at short range, ${s.gapLong.toFixed(2)} at long range`;
  return v.sink ? `Sink: yes, ${v.sinkHeads} head${v.sinkHeads === 1 ? '' : 's'}; strongest ${head}.` : `Sink: no; strongest ${head}.`;
}

/** The yes/no measurement on windows of W positions, with its section of the report. */
function measureSink(
  ctx: ExperimentContext,
  seed: number,
  bosId: number | undefined,
): { profile: SinkProfile; verdict: SinkVerdict; table: string; summary: string } {
  const W = cacheWindow(ctx);
  const windows = ctx.settings.sinkWindows ?? SINK_WINDOWS;
  const progress = ctx.progress(`sink measurement (${W} positions)`, windows, 'windows');
  const profile = sinkProfile(ctx.model, ctx.ids, { windows, size: W, seed, bosId, onProgress: (done) => progress.update(done) });
  progress.finish();
  const verdict = sinkVerdict(profile);
  const summary = sinkSummary(verdict);
  ctx.report.heading('Is there a sink? Key-0 attention and logit gap on windows as long as training samples', 3);
  ctx.report.text(
    `${windows} windows of ${W} positions at seeded offsets (seed ${seed})${prefixNote(profile.sinkToken, bosId)}, each run from scratch like a ` +
      `training sample. Rule: ${verdict.rule}. The logit gap is the sink's logit (q·k0/sqrt(d)) minus the mean logit of keys 1..t, in nats, ` +
      `averaged over queries at short range (t in [${verdict.shortRange[0]}, ${verdict.shortRange[1]})) and long range; a sink that holds keeps ` +
      `or widens its gap as t grows. Uniform attention gives key 0 ${verdict.uniformShort.toFixed(3)} at short range and ${verdict.uniformLong.toFixed(4)} at long range.` +
      (verdict.underflow ? ` ${verdict.underflow} probabilities underflowed to 0 and were floored (their gaps are lower bounds).` : ''),
  );
  const table = ctx.report.table('sink-verdict', SINK_VERDICT_HEADER(verdict), sinkVerdictRows(verdict), { decimals: 3 });
  ctx.report.text(summary);
  return { profile, verdict, table, summary };
}

async function drawMaps(ctx: ExperimentContext, maps: AttentionMaps): Promise<FigureFile[]> {
  const keyLabel = maps.sinkToken ? 'key position (0: the sink token)' : 'key position';
  const queryLabel = 'query position';
  const about = `${ctx.modelLabel}, mean of ${maps.offsets.length} windows of ${maps.length} tokens`;
  const layers = Array.from({ length: maps.layers }, (_, l) => l);
  const figures: FigureFile[] = [];
  const overview = await heatmapGrid({
    title: 'Attention maps per layer, heads averaged (paper Fig. 2)',
    subtitle: about,
    panels: layers.map((l) => ({ title: `Layer ${l}`, matrix: layerMatrix(maps, l) })),
    colorLabel: 'attention probability',
    xLabel: keyLabel,
    yLabel: queryLabel,
    columns: Math.min(4, maps.layers),
  });
  figures.push(await ctx.report.figure('attention-layers', overview, `Attention maps, every layer (heads averaged), ${about}.`));
  for (const l of layers) {
    const perHead = ctx.settings.perHead === true;
    const figure = await heatmapGrid({
      title: perHead ? `Layer ${l}: attention map of each head` : `Layer ${l}: attention map, heads averaged`,
      subtitle: about,
      panels: perHead
        ? Array.from({ length: maps.heads }, (_, h) => ({ title: `Layer ${l}, head ${h}`, matrix: layerMatrix(maps, l, h) }))
        : [{ title: `Layer ${l}`, matrix: layerMatrix(maps, l) }],
      colorLabel: 'attention probability',
      xLabel: keyLabel,
      yLabel: queryLabel,
      columns: perHead ? Math.min(4, maps.heads) : 1,
    });
    // The per-layer files stay out of report.md: the overview shows them all.
    figures.push(await ctx.report.figureFile(`attention-layer-${l}`, figure));
  }
  return figures;
}
