// The paper's Fig. 2: attention maps averaged over many short windows of the
// text, one per layer (heads averaged, or one panel per head), and the sink
// statistics per layer and head. `streamllm attn` runs this alone.
//
// Files: attention-layers.{svg,png} (every layer in one grid, as Fig. 2),
// attention-layer-L.{svg,png} per layer, sink-scores.json, and
// attention-maps.json with the averaged probabilities themselves.
import { DEFAULT_LENGTH, DEFAULT_SAMPLES } from '../eval/attention_defaults.js';
import { attentionMaps, type AttentionMaps, layerMatrix, type SinkScores, sinkScores } from '../eval/attention_maps.js';
import { heatmapGrid, markdownTable } from '../plot/index.js';
import type { FigureFile } from './report.js';
import { sourceLabel } from './text_source.js';
import type { Experiment, ExperimentContext } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';

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
  const progress = ctx.progress('attention maps', samples, 'windows');
  const maps = attentionMaps(ctx.model, ctx.ids, { samples, length, seed, onProgress: (done) => progress.update(done) });
  progress.finish();
  const scores = sinkScores(maps);

  const { firstQuery, uniform } = scores;
  ctx.report.heading(attention.title);
  ctx.report.text(
    `Attention probabilities of ${ctx.modelLabel}, averaged over ${samples} windows of ${length} tokens at seeded random offsets ` +
      `(seed ${seed}) in ${sourceLabel(ctx.source)}${maps.sinkToken ? '; position 0 is the learned sink token' : ''}. The table gives the ` +
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
  const result: AttentionResult = {
    experiment: 'attention',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    samples,
    length,
    seed,
    scores,
    table,
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
