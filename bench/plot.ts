// Figure render time: the paper's three kinds of figure at their largest
// expected sizes, SVG and PNG (pixel ratio 2), median of several runs after
// one warm-up, with the output sizes. The 20K-point line chart also runs
// without thinning, to show what downsample.ts saves.
//
//   node dist/bench/plot.js [--runs 5] [--record]
import { loadavg } from 'node:os';
import { benchArgs, markdownTable, median, recordResult } from './common.js';
import type { Figure } from '../src/plot/index.js';

const USAGE = `Figure render time: the paper's three kinds of figure at their largest sizes, SVG and PNG.

  node dist/bench/plot.js [--runs 5] [--record]

  --runs N       timed runs per figure (after one warm-up)
  --record       append the table to bench/RESULTS.md
  --help         this text`;
const cli = benchArgs(USAGE);
// the figure layer once the flags are read: --help and a bad flag answer without loading it
const { barChart, heatmapGrid, lineChart } = await import('../src/plot/index.js');

/** Deterministic noise in [0, 1) (no seedrandom needed for plot data). */
function noise(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 16807) % 2147483647) / 2147483647;
}

function perTokenCurves(downsample: boolean): Promise<Figure> {
  const n = 20_000;
  const x = Array.from({ length: n }, (_, i) => i);
  const r = noise(1);
  const curve = (f: (i: number) => number) => x.map((i) => f(i) + r() * 0.5);
  return lineChart({
    title: 'Per-token log-perplexity over 20K tokens',
    xLabel: 'token position',
    yLabel: 'log-perplexity (nats)',
    yScale: 'log',
    legendTitle: 'KV cache',
    downsample,
    series: [
      { name: 'dense', x, y: curve((i) => 2 + i / 4000) },
      { name: 'window (0 + 256)', x, y: curve((i) => (i > 256 ? 6 : 2)) },
      { name: 'recompute (256)', x, y: curve(() => 2) },
      { name: 'StreamingLLM (4 + 252)', x, y: curve(() => 2.05) },
    ],
    referenceLines: [
      { x: 256, label: 'cache full at 256' },
      { x: 512, label: 'trained length' },
    ],
  });
}

function attentionMaps(): Promise<Figure> {
  const n = 64;
  const r = noise(2);
  const panels = Array.from({ length: 16 }, (_, layer) => ({
    title: `Layer ${layer}`,
    matrix: Array.from({ length: n }, (_, q) => Array.from({ length: n }, (_, k) => (k > q ? NaN : k === 0 && layer > 1 ? 0.5 : r() / (q + 1)))),
  }));
  return heatmapGrid({ title: 'Attention maps, 16 layers', colorLabel: 'attention weight', panels });
}

function perplexityBars(): Promise<Figure> {
  return barChart({
    title: 'Streaming perplexity by cache layout and pre-training',
    xLabel: 'KV cache (sinks + window)',
    yLabel: 'perplexity',
    legendTitle: 'pre-training',
    valueFormat: '.1f',
    groups: ['0 + 1024', '1 + 1023', '4 + 1020'],
    series: [
      { name: 'vanilla', values: [27.87, 18.49, 18.05] },
      { name: 'zero sink (softmax1)', values: [26.37, 18.01, 17.83] },
      { name: 'learnable sink token', values: [1235, 18.01, 18.01] },
    ],
  });
}

const cases: [string, () => Promise<Figure>][] = [
  ['line, 4 × 20K points (thinned)', () => perTokenCurves(true)],
  ['line, 4 × 20K points, downsample: false', () => perTokenCurves(false)],
  ['heatmap grid, 16 × 64×64', attentionMaps],
  ['grouped bars, 3 × 3', perplexityBars],
];

const runs = cli.count('runs', 5, 1, 1000);
const load = loadavg()[0]!.toFixed(1);
const rows: string[][] = [];
for (const [name, make] of cases) {
  let fig = await make(); // warm-up: module loading, font parsing, JIT
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fig = await make();
    ms.push(performance.now() - start);
  }
  rows.push([
    name,
    median(ms).toFixed(0),
    `${Math.min(...ms).toFixed(0)}..${Math.max(...ms).toFixed(0)}`,
    (fig.svg.length / 1024).toFixed(0),
    (fig.png.length / 1024).toFixed(0),
    `${fig.width}×${fig.height}`,
  ]);
  console.error(`${name}: ${median(ms).toFixed(0)} ms`);
}
const table = markdownTable(['figure', 'ms (median)', 'range', 'SVG KiB', 'PNG KiB', 'PNG px'], rows);
console.log(table);
recordResult(
  'Figure rendering (bench/plot.ts)',
  `node dist/bench/plot.js --runs ${runs}`,
  `Data to SVG (Vega) and PNG (resvg, pixel ratio 2), ${runs} runs after one warm-up; times include building the data. ` +
    `Load average at the start: ${load} (2 cores; other jobs inflate the times).\n\n${table}`,
);
