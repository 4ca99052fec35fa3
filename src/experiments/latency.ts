// The paper's Fig. 10: per-token decode latency and memory against cache
// size, for the sliding window with re-computation (the earlier stable
// method) and StreamingLLM, on the given model and backend.
//
// For each cache size C the stream is first filled with C tokens of the
// text (in blocks), then single-token decode steps are timed: the median of
// 16 steps for streaming, of 4 for recompute (each of its steps re-runs C
// tokens). Memory is the peak of tensor memory during one more step
// (tf.profile: weights, cache and activations together) and the KV storage
// the policy holds.
import * as tf from '@tensorflow/tfjs';
import { type CachePolicy, DEFAULT_SINK_COUNT } from '../cache/index.js';
import { lineChart } from '../plot/index.js';
import { checkScoresFit } from '../model/transformer.js';
import { TokenStream } from '../stream.js';
import type { FigureFile } from './report.js';
import { cacheWindow, type Experiment, type ExperimentContext, sinkCount } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';
import { median } from '../stats.js';

const STREAMING_STEPS = 16;
const RECOMPUTE_STEPS = 4;
const MiB = 2 ** 20;

/**
 * W/8 .. 4W in powers of two, those with room for a window beside the
 * sinks. Sizes past the trained length say nothing of quality but show how
 * the cost of each policy grows, as the paper's Fig. 10 does up to 4096.
 */
export function latencySizes(W: number, sinks = DEFAULT_SINK_COUNT): number[] {
  const sizes = [W / 8, W / 4, W / 2, W, 2 * W, 4 * W].map(Math.round).filter((c) => c >= 2 * sinks);
  return [...new Set(sizes)];
}

export interface LatencyMeasure {
  policy: CachePolicy;
  msPerToken: number;
  steps: number;
  peakTensorMiB: number;
  kvCacheMiB: number;
}

export interface LatencyResult {
  experiment: 'latency';
  model: string;
  backend: string;
  rows: { cacheSize: number; recompute: LatencyMeasure; streaming: LatencyMeasure; speedup: number }[];
  figures: FigureFile[];
}

export const latency: Experiment = {
  name: 'latency',
  title: EXPERIMENT_TITLES['latency'],
  run: runLatency,
};

async function measure(ctx: ExperimentContext, policy: CachePolicy, fill: number, steps: number): Promise<LatencyMeasure> {
  const ids = ctx.ids;
  let at = 0;
  const next = (n: number) => Array.from({ length: n }, () => ids[at++ % ids.length]!);
  const stream = new TokenStream(ctx.model, policy);
  try {
    for (let done = 0; done < fill; done += 256) tf.dispose(stream.feed(next(Math.min(256, fill - done))));
    const step = () => {
      const logits = stream.feed(next(1), 'last');
      logits.dataSync();
      logits.dispose();
    };
    step(); // warm-up: first use of this shape
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const started = performance.now();
      step();
      times.push(performance.now() - started);
    }
    const profile = await tf.profile(step);
    return { policy, msPerToken: median(times), steps, peakTensorMiB: profile.peakBytes / MiB, kvCacheMiB: stream.cacheBytes / MiB };
  } finally {
    stream.dispose();
  }
}

/**
 * Refuse, before any work, a cache size whose recompute step cannot run: it
 * attends over C tokens at once (scores [heads, C, C], checked as the
 * forward pass checks them), after filling C tokens. Without this, the
 * forward pass refused it only after the smaller sizes had run and the fill
 * had fed C tokens (--window 1e12: 1.25e11 tokens, never done).
 */
function checkLargestSize(ctx: ExperimentContext, W: number, C: number): void {
  const window = ctx.settings.window === undefined ? `the trained length ${W}` : `--window ${W}`;
  const scoreBytes = 4 * ctx.model.config.heads * C * C; // [heads, C, C]
  checkScoresFit(`latency: a cache of ${C} entries (${C / W} x ${window}), whose recompute step attends over ${C} tokens at once`, scoreBytes);
}

export async function runLatency(ctx: ExperimentContext): Promise<LatencyResult> {
  const W = cacheWindow(ctx);
  const S = sinkCount(ctx, W);
  const sizes = latencySizes(W, S);
  checkLargestSize(ctx, W, Math.max(...sizes));
  const progress = ctx.progress('latency', sizes.length, 'sizes');
  const rows: LatencyResult['rows'] = [];
  for (const C of sizes) {
    const recompute = await measure(ctx, { kind: 'recompute', windowSize: C }, C, RECOMPUTE_STEPS);
    const streaming = await measure(ctx, { kind: 'streaming', sinkCount: S, windowSize: C - S }, C, STREAMING_STEPS);
    rows.push({ cacheSize: C, recompute, streaming, speedup: recompute.msPerToken / streaming.msPerToken });
    progress.update(rows.length, `C=${C}: ${recompute.msPerToken.toFixed(1)} vs ${streaming.msPerToken.toFixed(2)} ms`);
  }
  progress.finish();
  const backend = tf.getBackend();
  ctx.report.heading(latency.title);
  ctx.report.text(
    `Decode latency per token with the cache full, ${ctx.modelLabel} on the ${backend} backend: median of ${RECOMPUTE_STEPS} steps for ` +
      `recompute and ${STREAMING_STEPS} for streaming (${S} initial tokens + C-${S} recent). Peak tensor memory is measured over one ` +
      `step and includes the weights; KV cache is what the policy stores (recompute: its scratch cache for the window it re-runs). ` +
      `Timings on a shared machine are noisy; compare within one run.`,
  );
  ctx.report.table(
    'latency',
    ['cache size', 'recompute ms/token', 'streaming ms/token', 'speed-up', 'recompute peak MiB', 'streaming peak MiB', 'streaming KV MiB'],
    rows.map((r) => [
      r.cacheSize,
      r.recompute.msPerToken,
      r.streaming.msPerToken,
      `${r.speedup.toFixed(1)}x`,
      r.recompute.peakTensorMiB,
      r.streaming.peakTensorMiB,
      r.streaming.kvCacheMiB,
    ]),
  );
  const x = rows.map((r) => r.cacheSize);
  const recomputeName = 'sliding window w/ recompute';
  const streamingName = `StreamingLLM (${S}+C-${S})`;
  const timeFigure = await lineChart({
    title: 'Per-token decode latency against cache size (paper Fig. 10)',
    subtitle: `${ctx.modelLabel}, ${backend} backend`,
    xLabel: 'cache size (entries)',
    yLabel: 'latency per token (ms)',
    series: [
      { name: recomputeName, x, y: rows.map((r) => r.recompute.msPerToken), dashed: true },
      { name: streamingName, x, y: rows.map((r) => r.streaming.msPerToken) },
    ],
    xScale: 'log2',
    yScale: 'log',
    markers: true,
  });
  const memoryFigure = await lineChart({
    title: 'Peak tensor memory per decode step against cache size (paper Fig. 10)',
    subtitle: `${ctx.modelLabel}, ${backend} backend; weights included`,
    xLabel: 'cache size (entries)',
    yLabel: 'peak tensor memory (MiB)',
    series: [
      { name: recomputeName, x, y: rows.map((r) => r.recompute.peakTensorMiB), dashed: true },
      { name: streamingName, x, y: rows.map((r) => r.streaming.peakTensorMiB) },
    ],
    xScale: 'log2',
    markers: true,
  });
  const figures = [
    await ctx.report.figure('latency', timeFigure, `Decode latency per token, ${ctx.modelLabel} (${backend}).`),
    await ctx.report.figure('latency-memory', memoryFigure, `Peak tensor memory per decode step, ${ctx.modelLabel} (${backend}).`),
  ];
  const last = rows[rows.length - 1]!;
  ctx.report.text(`At C = ${last.cacheSize} streaming decodes ${last.speedup.toFixed(1)}x faster per token than recompute.`);
  const result: LatencyResult = { experiment: 'latency', model: ctx.modelLabel, backend, rows, figures };
  ctx.report.json('latency', result);
  return result;
}
