// The paper's Table 3 in miniature: the zoo's models, one per attention-sink
// variant (softmax, softmax1, learned-sink, sink-token), each streamed over
// the held-out text with caches 0+W, 1+(W-1), 2+(W-2) and 4+(W-4), W its
// trained length, beside the recompute baseline. The paper found that a
// vanilla model needs about 4 kept initial tokens, that softmax1 alone does
// not remove that need, and that a model pre-trained with a sink token needs
// only that one.
//
// Every model in the manifest takes part, whatever it holds, or the model
// directories given (--models); each encodes the text with its own
// tokenizer. Beside the table, the paper's Table 3 (160M models, cache
// 1024) with a verdict per model: does the miniature move in the same
// direction (paper_table3.ts)? Recompute is scored at sampled positions
// past the first window (see recompute_sampled.ts; a sink-token model keeps
// its sink there, as in training), and 4+(W-4) is given on the same
// positions beside it.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { DEFAULT_SINK_COUNT } from '../cache/index.js';
import { UsageError } from '../errors.js';
import { recomputeNllAt, sampledPositions } from '../eval/recompute_sampled.js';
import { loadModelPlaced } from '../model/load.js';
import { disposeModel } from '../model/weights.js';
import { barChart } from '../plot/index.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { variantOf } from '../train/variants.js';
import { defaultManifestPath, readManifest } from '../zoo/manifest.js';
import { SNAPSHOTS_DIR, type TrainedOn, trainedOnOfDir, trainedOnOfEntry } from '../zoo/trained_on.js';
import { bosFirstOf, bosKept } from './bos_first.js';
import { DEFAULT_RECOMPUTE_SAMPLES } from './curves.js';
import { COMPARISON_HEADER, comparisonRows, compareWithPaper, EFFECT_THRESHOLD, type PaperComparison, PAPER_TABLE3_SETTING } from './paper_table3.js';
import type { FigureFile } from './report.js';
import { pplAt, scoreWithProgress } from './score.js';
import { sourceForTrainedData, sourceLabel, sourceTokens } from './text_source.js';
import type { Experiment, ExperimentContext } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';

export const PRETRAINING_SINKS = [0, 1, 2, 4] as const;
/** Tokens scored per model unless --limit says otherwise: 80 x W (20480 for W = 256, the zoo issue's "at least 20K"). */
export const PRETRAINING_TOKENS_PER_WINDOW = 80;

export interface PretrainingRow {
  name: string;
  variant: string;
  trainedLength: number;
  tokens: number;
  /** Streaming PPL over all tokens per number of kept initial tokens (cache S+(W-S)). */
  streaming: { sinks: number; window: number; ppl: number }[];
  recompute: {
    stride: number;
    positions: number;
    ppl: number | null;
    /** BOS-first models: recompute with the BOS kept first, on the same positions; else null. */
    bosKeptPpl: number | null;
    streaming4PplSamePositions: number | null;
  };
  /** Trained with BOS first in every sample (and so read with BOS first), and where that was read (or the flag). */
  bosFirst: boolean;
  trainedOn: string | null;
}

export interface PretrainingResult {
  experiment: 'pretraining';
  manifest: string;
  text: string;
  models: PretrainingRow[];
  /** Each model beside the paper's model of its variant, with a verdict. */
  comparison: PaperComparison[];
  figures: FigureFile[];
  /** The side-by-side table as printed. */
  summary: string;
}

export const pretraining: Experiment = {
  name: 'pretraining',
  title: EXPERIMENT_TITLES['pretraining'],
  run: runPretraining,
};

/** The models to compare: the --models directories, else every model of the manifest. */
interface ComparedModel {
  name: string;
  path: string;
  variant?: string;
  trainedOn: TrainedOn | undefined;
}

function modelsToCompare(ctx: ExperimentContext): { from: string; entries: ComparedModel[] } {
  const dirs = ctx.settings.models;
  if (dirs !== undefined && dirs.length > 0) {
    for (const dir of dirs) if (!existsSync(dir)) throw new UsageError(`pretraining --models: ${dir}: no such file or directory`);
    return { from: dirs.join(', '), entries: dirs.map((dir) => ({ name: modelName(dir), path: dir, trainedOn: trainedOnOfDir(dir) })) };
  }
  const file = ctx.settings.manifest ?? defaultManifestPath();
  if (!existsSync(file)) throw new UsageError(`pretraining: no model zoo manifest at ${file} (train the zoo, or give --manifest FILE or --models DIR,DIR)`);
  const manifest = readManifest(file);
  if (manifest.models.length === 0) throw new UsageError(`pretraining: ${file} lists no models`);
  return { from: file, entries: manifest.models.map((m) => ({ ...m, trainedOn: trainedOnOfEntry(m, file) })) };
}

/** A directory's name; a snapshot RUN/steps/<step> is RUN@<step>. */
function modelName(dir: string): string {
  const path = resolve(dir);
  const parent = dirname(path);
  return basename(parent) === SNAPSHOTS_DIR && /^\d+$/.test(basename(path)) ? `${basename(dirname(parent))}@${basename(path)}` : basename(path);
}

export async function runPretraining(ctx: ExperimentContext): Promise<PretrainingResult> {
  const { from: file, entries } = modelsToCompare(ctx);
  const rows: PretrainingRow[] = [];
  const sources = new Set<string>();
  for (const entry of entries) {
    ctx.log(`pretraining: ${entry.name} (${entry.path})`);
    const model = loadModelPlaced(entry.path, ctx.placement, `pretraining: ${entry.path} with --weights ${ctx.placement?.weights ?? 'f32'}`); // where the command's model runs
    try {
      const W = ctx.settings.window ?? model.config.maxSeqLen;
      const tokenizer =
        existsSync(entry.path) && statSync(entry.path).isDirectory() ? loadTokenizer(entry.path, { vocabSize: model.config.vocabSize }) : undefined;
      const trainedOn = entry.trainedOn;
      const bosFirst = bosFirstOf({ settings: ctx.settings, trainedOn });
      if (bosFirst && tokenizer?.bosId === undefined) {
        const why = ctx.settings.bosFirst !== undefined ? '--bos-first' : `${trainedOn?.from} says every training sample started with BOS`;
        throw new UsageError(`pretraining: ${entry.name}: ${why}, but it has no tokenizer with a BOS token`);
      }
      const limit = ctx.settings.tokens ?? PRETRAINING_TOKENS_PER_WINDOW * W;
      // Each model reads the text asked for, or with none asked for the data it was trained on (Backcopy or Brown text).
      const source = sourceForTrainedData(ctx.givenSource ?? ctx.source, trainedOn?.data);
      sources.add(sourceLabel(source));
      const ids = sourceTokens(source, tokenizer, model.config.vocabSize, limit, { bosFirst: bosFirst ? tokenizer?.bosId : undefined });
      if (ids.length < 2) throw new UsageError(`pretraining: the text gives ${entry.name} fewer than 2 tokens`);
      const modelCtx: ExperimentContext = { ...ctx, model, modelLabel: entry.name, tokenizer, ids, ...(trainedOn !== undefined ? { trainedOn } : {}) };
      const kept = bosKept(modelCtx, ids);
      if (kept.keepFirst === 0 && kept.why !== undefined) ctx.log(`pretraining: ${entry.name}: no recompute (BOS kept): ${kept.why}`);
      const streaming: PretrainingRow['streaming'] = [];
      let nll4: Float64Array | undefined;
      for (const sinks of PRETRAINING_SINKS.filter((s) => s < W)) {
        const r = await scoreWithProgress(modelCtx, ids, { kind: 'streaming', sinkCount: sinks, windowSize: W - sinks }, `${entry.name} ${sinks}+${W - sinks}`);
        streaming.push({ sinks, window: W - sinks, ppl: r.ppl });
        if (sinks === DEFAULT_SINK_COUNT) nll4 = r.nll;
      }
      const { stride, positions } = sampledPositions(ids.length - 1, W, ctx.settings.recomputeSamples ?? DEFAULT_RECOMPUTE_SAMPLES);
      const past = positions.filter((p) => p >= W);
      const recomputed: Float64Array[] = [];
      for (const keepFirst of kept.keepFirst === 1 ? [0, 1] : [0]) {
        const progress = ctx.progress(`${entry.name} recompute(${W})${keepFirst ? ', BOS kept' : ''}`, past.length);
        recomputed.push(await recomputeNllAt(model, ids, W, past, { keepFirst, onProgress: (done) => progress.update(done) }));
        progress.finish();
      }
      const [nll, nllBos] = recomputed as [Float64Array, Float64Array | undefined];
      rows.push({
        name: entry.name,
        variant: entry.variant ?? variantOf(model.config),
        trainedLength: W,
        tokens: ids.length,
        streaming,
        recompute: {
          stride,
          positions: past.length,
          ppl: past.length ? pplAt(nll) : null,
          bosKeptPpl: past.length && nllBos ? pplAt(nllBos) : null,
          streaming4PplSamePositions: past.length && nll4 ? pplAt(nll4, past) : null,
        },
        bosFirst,
        trainedOn: ctx.settings.bosFirst !== undefined ? '--bos-first' : (trainedOn?.from ?? null),
      });
    } finally {
      await disposeModel(model);
    }
  }

  ctx.report.heading(pretraining.title);
  const lengths = [...new Set(rows.map((r) => r.trainedLength))];
  // With no text asked for, Backcopy-trained and Brown-trained models each read their own held-out data.
  const textsLabel = sources.size === 1 ? [...sources][0]! : `each model's own held-out data: ${[...sources].join('; ')}`;
  const Wtext = lengths.length === 1 ? String(lengths[0]) : "each model's trained length";
  ctx.report.text(
    `Streaming perplexity of every model in ${file} over ${rows.map((r) => r.tokens).join(' / ')} tokens of ${textsLabel}, ` +
      `with S initial tokens and W-S recent ones, W = ${Wtext}. Recompute* is scored on sampled positions past the first window ` +
      `(${rows.map((r) => r.recompute.positions).join(' / ')} positions); 4+(W-4)* is streaming on the same positions.` +
      (rows.some((r) => r.bosFirst)
        ? ` ${rows
            .filter((r) => r.bosFirst)
            .map((r) => r.name)
            .join(', ')} trained with BOS first in every sample: ` +
          `each reads the text with BOS first, and "recompute, BOS kept*" keeps that BOS at the front of every window (BOS + the last W-1 tokens, as in training).`
        : ''),
  );
  const header = ['model', 'variant', ...PRETRAINING_SINKS.map((s) => (s === 0 ? '0+W' : `${s}+(W-${s})`)), 'recompute*', 'recompute, BOS kept*', '4+(W-4)*'];
  ctx.report.table(
    'pretraining',
    header,
    rows.map((r) => [
      r.name,
      r.variant,
      ...PRETRAINING_SINKS.map((s) => r.streaming.find((x) => x.sinks === s)?.ppl ?? null),
      r.recompute.ppl,
      r.recompute.bosKeptPpl,
      r.recompute.streaming4PplSamePositions,
    ]),
  );
  const groups = header.slice(2, 7);
  const values = rows.flatMap((r) => [...r.streaming.map((s) => s.ppl), r.recompute.ppl ?? NaN]).filter(Number.isFinite);
  const figure = await barChart({
    title: 'Streaming perplexity by pre-training variant and kept initial tokens (paper Table 3)',
    subtitle: `${textsLabel}; W = ${Wtext}; recompute on sampled positions`,
    xLabel: 'KV cache (initial + recent tokens)',
    yLabel: 'perplexity',
    groups,
    series: rows.map((r) => ({
      name: r.name === r.variant ? r.name : `${r.name} (${r.variant})`,
      values: [...PRETRAINING_SINKS.map((s) => r.streaming.find((x) => x.sinks === s)?.ppl ?? null), r.recompute.ppl],
    })),
    yScale: Math.max(...values) / Math.min(...values) > 10 ? 'log' : 'linear',
    legendTitle: 'model',
    valueFormat: '.4~r',
  });
  const figures = [await ctx.report.figure('pretraining', figure, 'Streaming perplexity per zoo model and cache layout.')];
  const comparison = compareWithPaper(
    rows.map((r) => ({
      name: r.name,
      variant: r.variant,
      ppl: (s: number) => r.streaming.find((x) => x.sinks === s)?.ppl,
      recompute: r.recompute.ppl,
      recomputeBosKept: r.recompute.bosKeptPpl,
    })),
  );
  ctx.report.text(
    `Beside the paper's Table 3 (${PAPER_TABLE3_SETTING}). Each model is set against the paper's model of its variant; the ratios say ` +
      `what evicting the first token does (0+W / 1+(W-1)) and whether one initial token is enough (1+(W-1) / 4+(W-4)); an effect counts ` +
      `when it moves perplexity by more than ${(EFFECT_THRESHOLD * 100).toFixed(0)}%. Verdict: the miniature agrees in direction when both ` +
      `effects are present or absent as in the paper.`,
  );
  const summary = ctx.report.table('pretraining-vs-paper', COMPARISON_HEADER, comparisonRows(comparison));
  for (const r of rows) {
    const by = (s: number) => r.streaming.find((x) => x.sinks === s)?.ppl;
    const [p0, p1, p4] = [by(0), by(1), by(4)];
    if (p0 !== undefined && p1 !== undefined && p4 !== undefined) {
      ctx.report.text(`${r.name} (${r.variant}): 0+W ${p0.toFixed(2)}, 1+(W-1) ${p1.toFixed(2)}, 4+(W-4) ${p4.toFixed(2)}.`);
    }
  }
  const result: PretrainingResult = { experiment: 'pretraining', manifest: file, text: textsLabel, models: rows, comparison, figures, summary };
  ctx.report.json('pretraining', result);
  return result;
}
