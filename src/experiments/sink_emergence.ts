// Sink emergence over training: the sink measurement (src/eval/sink_measure.ts)
// on every snapshot a training run kept (`train --snapshots` writes
// DIR/steps/<step>/), plotted against the step: per layer, the strongest
// head's attention on key 0 at long range, and its logit gap at short and
// long range. `streamllm sink-emergence` runs this.
//
// Every snapshot is measured on the same windows (same text, same seeded
// offsets), each encoding the text with its own tokenizer (the same one
// across a run).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { SINK_WINDOWS, sinkProfile, type SinkVerdict, sinkVerdict } from '../eval/sink_measure.js';
import { loadModel } from '../model/load.js';
import { disposeModel } from '../model/weights.js';
import { type LineSeries, lineChart } from '../plot/index.js';
import { SERIES_COLORS } from '../plot/theme.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Progress } from '../cli/progress.js';
import type { FigureFile, Report } from './report.js';
import { sinkSummary } from './attention.js';
import { sourceLabel, sourceTokens, type TextSource } from './text_source.js';
import { SNAPSHOTS_DIR, trainedOnOfDir } from '../zoo/trained_on.js';

export { SNAPSHOTS_DIR };

export interface Snapshot {
  step: number;
  dir: string;
}

/** The snapshots of a run, by step. */
export function runSnapshots(run: string): Snapshot[] {
  const folder = join(run, SNAPSHOTS_DIR);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new UsageError(`--run ${run}: no ${SNAPSHOTS_DIR}/ folder of snapshots (train with --snapshots, or give --models DIR,DIR,...)`);
  }
  const snapshots = readdirSync(folder)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(folder, name, 'config.json')))
    .map((name) => ({ step: Number(name), dir: join(folder, name) }))
    .sort((a, b) => a.step - b.step);
  if (snapshots.length === 0) throw new UsageError(`--run ${run}: ${SNAPSHOTS_DIR}/ holds no snapshots (folders named by step with a config.json)`);
  return snapshots;
}

/** Model directories given one by one: the step is the number ending the folder's name (runs/x/steps/500), else the position in the list. */
export function listedSnapshots(dirs: readonly string[]): Snapshot[] {
  return dirs.map((dir, i) => {
    if (!existsSync(dir)) throw new UsageError(`--models: ${dir}: no such file or directory`);
    const number = /(\d+)$/.exec(basename(resolve(dir)))?.[1];
    return { step: number !== undefined ? Number(number) : i, dir };
  });
}

export interface EmergenceOptions {
  /** Windows per snapshot (default SINK_WINDOWS). */
  windows?: number;
  /** Positions per window (default: each snapshot's trained length). */
  size?: number;
  seed?: number;
  /** BOS first in every window: true or false for every snapshot, else as each snapshot's run trained (src/zoo/trained_on.ts). */
  bosFirst?: boolean;
}

export interface EmergencePoint {
  step: number;
  dir: string;
  /** The verdict of this snapshot (every layer and head). */
  verdict: SinkVerdict;
  summary: string;
  /** Its windows started with BOS. */
  bosFirst: boolean;
}

export interface EmergenceResult {
  experiment: 'sink-emergence';
  text: string;
  windows: number;
  seed: number;
  /** Every snapshot's windows started with BOS (each point says for itself). */
  bosFirst: boolean;
  points: EmergencePoint[];
  figures: FigureFile[];
  table: string;
}

/** Measure every snapshot, then write the table, the JSON and the two figures. */
export async function runSinkEmergence(
  snapshots: readonly Snapshot[],
  source: TextSource,
  options: EmergenceOptions,
  report: Report,
  progress: (label: string, total: number, unit?: string) => Progress,
): Promise<EmergenceResult> {
  const windows = options.windows ?? SINK_WINDOWS;
  const seed = options.seed ?? 0;
  const points: EmergencePoint[] = [];
  // a run's snapshots share its tokenizer: the text is encoded (or the Backcopy stream built) once per tokenizer
  const encoded = new Map<string, number[]>();
  for (const snapshot of snapshots) {
    const model = loadModel(snapshot.dir);
    try {
      const tokenizerFile = tokenizerOf(snapshot.dir);
      const tokenizer = tokenizerFile !== undefined ? loadTokenizer(snapshot.dir, { vocabSize: model.config.vocabSize }) : undefined;
      const key = `${tokenizerFile !== undefined ? readFileSync(tokenizerFile, 'latin1') : ''}:${model.config.vocabSize}`;
      const ids = encoded.get(key) ?? sourceTokens(source, tokenizer, model.config.vocabSize);
      encoded.set(key, ids);
      let bosId: number | undefined;
      const trained = options.bosFirst === undefined ? trainedOnOfDir(snapshot.dir) : undefined;
      if (options.bosFirst ?? trained?.bosFirst === true) {
        bosId = tokenizer?.bosId;
        if (bosId === undefined) {
          const why = options.bosFirst === true ? '--bos-first' : `${trained!.from} says every training sample started with BOS`;
          throw new UsageError(`${why}: ${snapshot.dir} has no tokenizer with a BOS token`);
        }
      }
      const bar = progress(`step ${snapshot.step}`, windows, 'windows');
      const profile = sinkProfile(model, ids, { windows, size: options.size, seed, bosId, onProgress: (done) => bar.update(done) });
      const verdict = sinkVerdict(profile);
      bar.finish(verdict.sink ? 'sink' : 'no sink');
      points.push({ step: snapshot.step, dir: snapshot.dir, verdict, summary: sinkSummary(verdict), bosFirst: bosId !== undefined });
    } finally {
      await disposeModel(model);
    }
  }

  const layers = Math.max(...points.map((p) => p.verdict.layers.length));
  const strongest = (p: EmergencePoint, l: number) => {
    const layer = p.verdict.layers[l];
    return layer === undefined ? undefined : layer.heads[layer.strongest]!;
  };
  const steps = points.map((p) => p.step);
  const perLayer = (value: (p: EmergencePoint, l: number) => number | undefined, dashed = false, suffix = ''): LineSeries[] =>
    // one color per layer in both figures, short range dashed beside long range
    Array.from({ length: layers }, (_, l) => ({
      name: `layer ${l}${suffix}`,
      x: steps,
      y: points.map((p) => value(p, l) ?? NaN),
      dashed,
      color: SERIES_COLORS[l % SERIES_COLORS.length]!,
    }));
  const about = `${points.length} snapshots, ${windows} windows of ${points[0]!.verdict.size} positions each, ${sourceLabel(source)}`;
  const measured = `${points.length} snapshots x ${windows} windows of ${points[0]!.verdict.size} positions`;
  const key0Figure = await lineChart({
    title: 'Sink emergence: attention on key 0 over training',
    subtitle: `strongest head per layer, queries at t in [W/2, W); ${measured}`,
    xLabel: 'training step',
    yLabel: 'attention on key 0',
    series: perLayer((p, l) => strongest(p, l)?.key0),
    referenceLines: [{ y: points[0]!.verdict.share, label: `sink rule: ${points[0]!.verdict.share}` }],
    legendTitle: 'strongest head of',
    markers: true,
  });
  const gapFigure = await lineChart({
    title: "Sink emergence: the sink's logit gap over training",
    subtitle: `key 0's logit minus the mean content logit, strongest head per layer; solid: t in [W/2, W), dashed: t in [4, 16)`,
    xLabel: 'training step',
    yLabel: 'logit gap (nats)',
    series: [...perLayer((p, l) => strongest(p, l)?.gapLong), ...perLayer((p, l) => strongest(p, l)?.gapShort, true, ', short range')],
    referenceLines: [{ y: 0, label: 'no preference' }],
    legendTitle: 'strongest head of',
    markers: true,
  });
  report.heading('Sink emergence over training');
  report.text(
    `The sink measurement on ${about}${bosNote(points)} (seed ${seed}). Per snapshot and ` +
      `layer: the head with most attention on key 0 at long range, its share there, its multiple of the uniform share, its logit gaps, ` +
      `and how many of the layer's heads pass the rule (${points[0]!.verdict.rule}).`,
  );
  const table = report.table(
    'sink-emergence',
    ['step', 'layer', 'strongest head', 'key 0, long range', 'x uniform', 'logit gap, short', 'logit gap, long', 'sink heads'],
    points.flatMap((p) =>
      p.verdict.layers.map((l) => {
        const h = l.heads[l.strongest]!;
        return [p.step, l.layer, h.head, h.key0, h.overUniform, h.gapShort, h.gapLong, `${l.heads.filter((x) => x.sink).length}/${l.heads.length}`];
      }),
    ),
    { decimals: 3 },
  );
  const figures = [
    await report.figure('sink-emergence-key0', key0Figure, `Attention on key 0 of the strongest head per layer, against the training step; ${about}.`),
    await report.figure(
      'sink-emergence-gap',
      gapFigure,
      `The strongest head's logit gap per layer (solid: long range; dashed: short range), against the training step; ${about}.`,
    ),
  ];
  const first = points.findIndex((p) => p.verdict.sink);
  report.text(
    first < 0
      ? 'No snapshot has a sink by the rule.'
      : `The first snapshot with a sink: step ${points[first]!.step}. Last: ${points[points.length - 1]!.summary}`,
  );
  const result: EmergenceResult = {
    experiment: 'sink-emergence',
    text: sourceLabel(source),
    windows,
    seed,
    bosFirst: points.every((p) => p.bosFirst),
    points,
    figures,
    table,
  };
  report.json('sink-emergence', result);
  return result;
}

/** The tokenizer file loadTokenizer would read from a model directory, if any. */
function tokenizerOf(dir: string): string | undefined {
  if (!statSync(dir).isDirectory()) return undefined;
  return ['tokenizer.json', 'tokenizer.bin'].map((f) => join(dir, f)).find((f) => existsSync(f));
}

/** Which snapshots' windows started with BOS, for the report. */
function bosNote(points: readonly EmergencePoint[]): string {
  const first = points.filter((p) => p.bosFirst);
  if (first.length === 0) return '';
  if (first.length === points.length) return ', BOS first in every window';
  return `, BOS first in every window of steps ${first.map((p) => p.step).join(', ')} (as their runs trained)`;
}
