// Line charts: labels present in the SVG, a PNG of the stated size whose
// pixels put each series where its values say, thinning of long series that
// keeps spikes, deterministic bytes, and one-line errors for bad input.
import t from 'tap';
import { UsageError } from '../src/errors.js';
import { downsampleMinMax } from '../src/plot/downsample.js';
import { lineChart, type LineChartOptions } from '../src/plot/index.js';
import { decodePng, hex, median, pixelsOf, svgSize, svgTexts } from './plot_helpers.js';

const RED = '#d62728';
const BLUE = '#1f77b4';
const x = Array.from({ length: 50 }, (_, i) => i);

function options(): LineChartOptions {
  return {
    title: 'Per-token log-perplexity',
    subtitle: 'tiny model, cache 4 + 12',
    xLabel: 'token position',
    yLabel: 'log-perplexity (nats)',
    legendTitle: 'KV cache',
    series: [
      { name: 'window', x, y: x.map(() => 8), color: RED },
      { name: 'StreamingLLM', x, y: x.map(() => 2), color: BLUE, dashed: true },
    ],
    referenceLines: [
      { x: 16, label: 'cache full at 16' },
      { y: 5, label: 'dense average' },
    ],
  };
}

t.test('labels, legend and reference lines are in the SVG', async (t) => {
  const fig = await lineChart(options());
  const texts = svgTexts(fig.svg);
  for (const s of [
    'Per-token log-perplexity',
    'tiny model, cache 4 + 12',
    'token position',
    'log-perplexity (nats)',
    'KV cache',
    'window',
    'StreamingLLM',
    'cache full at 16',
    'dense average',
  ]) {
    t.ok(texts.includes(s), `text "${s}"`);
  }
  t.match(fig.svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(fig.svg, /<\/svg>$/);
});

t.test('PNG: stated size, text drawn, series where their values say', async (t) => {
  const fig = await lineChart({ ...options(), pixelRatio: 2 });
  const img = decodePng(fig.png);
  const svg = svgSize(fig.svg);
  t.equal(img.width, fig.width);
  t.equal(img.height, fig.height);
  t.ok(Math.abs(fig.width - svg.width * 2) < 1, 'PNG width = SVG width × 2');
  t.ok(Math.abs(fig.height - svg.height * 2) < 1, 'PNG height = SVG height × 2');
  // the bundled font renders: dark title pixels in the top band
  t.ok(pixelsOf(img, [0, 0, 0], 60, { x0: 0, y0: 0, x1: img.width, y1: 60 }).length > 100, 'title drawn');
  const red = pixelsOf(img, hex(RED), 8);
  const blue = pixelsOf(img, hex(BLUE), 8);
  t.ok(red.length > 500 && blue.length > 300, `red ${red.length}, blue ${blue.length} pixels`);
  // y = 8 is drawn above y = 2; on a linear axis from 2 to 8 the dashed
  // "dense average" rule at 5 lies halfway between them
  const redRow = median(red.map((p) => p.y));
  const blueRow = median(blue.map((p) => p.y));
  t.ok(redRow < blueRow, `red row ${redRow} above blue row ${blueRow}`);
});

t.test('log scale: equal ratios are equal distances', async (t) => {
  const fig = await lineChart({
    title: 'log y',
    xLabel: 'x',
    yLabel: 'y',
    yScale: 'log',
    series: [
      { name: 'a', x: [0, 1], y: [1, 1], color: RED },
      { name: 'b', x: [0, 1], y: [10, 10], color: BLUE },
      { name: 'c', x: [0, 1], y: [100, 100], color: '#2ca02c' },
    ],
  });
  const img = decodePng(fig.png);
  const rows = [RED, BLUE, '#2ca02c'].map((c) => median(pixelsOf(img, hex(c), 8).map((p) => p.y)));
  t.ok(Math.abs(rows[0]! - rows[1]! - (rows[1]! - rows[2]!)) <= 2, `rows ${rows}`);
});

t.test('long legend entries are not cut', async (t) => {
  const name = 'sliding window with re-computation, 4096 tokens';
  const fig = await lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name, x: [1, 2], y: [1, 2] }] });
  t.ok(svgTexts(fig.svg).includes(name));
});

t.test('same input, same bytes', async (t) => {
  const a = await lineChart(options());
  const b = await lineChart(options());
  t.equal(a.svg, b.svg);
  t.ok(a.png.equals(b.png));
});

t.test('a 20K-point series is thinned but keeps its spike', async (t) => {
  const n = 20_000;
  const long = Array.from({ length: n }, (_, i) => i);
  const y = long.map((i) => 2 + Math.sin(i / 50) * 0.5);
  y[12_345] = 40;
  const fig = await lineChart({
    title: 'long',
    xLabel: 'token position',
    yLabel: 'NLL',
    series: [
      { name: 'long', x: long, y, color: RED },
      // a short flat line at the spike's height marks where its top should be
      { name: 'marker', x: [0, 1000], y: [40, 40], color: BLUE },
    ],
  });
  t.ok(fig.svg.length < 300_000, `SVG ${fig.svg.length} bytes`);
  const img = decodePng(fig.png);
  const top = (c: string) => Math.min(...pixelsOf(img, hex(c), 8).map((p) => p.y));
  t.ok(Math.abs(top(RED) - top(BLUE)) <= 3, `spike top ${top(RED)}, marker ${top(BLUE)}`);
});

t.test('downsampleMinMax keeps first, last and every bucket extreme', async (t) => {
  const n = 10_000;
  const xs = Array.from({ length: n }, (_, i) => i);
  const ys = xs.map((i) => Math.sin(i) * (i === 777 ? 100 : 1));
  const keep = downsampleMinMax(xs, ys, 100);
  t.ok(keep.length <= 400, `${keep.length} kept`);
  t.equal(keep[0], 0);
  t.equal(keep[keep.length - 1], n - 1);
  t.ok(keep.includes(777));
  t.same(
    [...keep].sort((a, b) => a - b),
    keep,
    'ascending',
  );
  t.equal(new Set(keep).size, keep.length, 'no repeats');
  // each bucket's min and max survive
  for (let b = 0; b < 100; b++) {
    const idx = xs.filter((i) => Math.min(99, Math.floor((i / (n - 1)) * 100)) === b);
    const max = idx.reduce((m, i) => (ys[i]! > ys[m]! ? i : m));
    const min = idx.reduce((m, i) => (ys[i]! < ys[m]! ? i : m));
    if (!keep.includes(max) || !keep.includes(min)) {
      t.fail(`bucket ${b} lost its extremes`);
      return;
    }
  }
  t.same(downsampleMinMax([0, 1, 2], [5, 6, 7], 100), [0, 1, 2], 'short series untouched');
});

t.test('unsorted x is drawn in x order', async (t) => {
  const fig = await lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', x: [2, 0, 1], y: [3, 1, 2] }] });
  const sorted = await lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', x: [0, 1, 2], y: [1, 2, 3] }] });
  t.equal(fig.svg, sorted.svg);
});

t.test('bad input: a UsageError with one line naming the field', async (t) => {
  const base = options();
  const cases: [string, Partial<LineChartOptions>, RegExp][] = [
    ['no series', { series: [] }, /^lineChart: series: expected at least one entry/],
    ['empty series', { series: [{ name: 'a', x: [], y: [] }] }, /series\[0\] "a" x: expected at least one entry/],
    ['NaN', { series: [{ name: 'a', x: [0, 1], y: [1, NaN] }] }, /series\[0\] "a" y\[1\]: expected a finite number, got NaN/],
    ['Infinity in x', { series: [{ name: 'a', x: [0, Infinity], y: [1, 2] }] }, /x\[1\]: expected a finite number, got Infinity/],
    ['lengths differ', { series: [{ name: 'a', x: [0, 1, 2], y: [1, 2] }] }, /x has 3 values but y has 2/],
    ['zero on log y', { yScale: 'log', series: [{ name: 'a', x: [0, 1], y: [1, 0] }] }, /y\[1\]: 0 cannot be drawn on a log scale/],
    [
      'duplicate names',
      {
        series: [
          { name: 'a', x: [0], y: [1] },
          { name: 'a', x: [0], y: [2] },
        ],
      },
      /series name\[1\]: "a" appears twice/,
    ],
    ['no title', { title: '' }, /^lineChart: title: expected a non-empty string/],
    ['bad scale', { xScale: 'sqrt' as never }, /xScale: expected 'linear', 'log' or 'log2', got "sqrt"/],
    ['reference line without label', { referenceLines: [{ x: 1 } as never] }, /referenceLines\[0\] label: expected a non-empty string/],
    ['bad width', { width: 0 }, /width: expected a number > 0, got 0/],
  ];
  for (const [name, patch, message] of cases) {
    await t.rejects(lineChart({ ...base, ...patch }), message, name);
    await lineChart({ ...base, ...patch }).catch((err: unknown) => {
      t.ok(err instanceof UsageError && !err.message.includes('\n'), `${name}: one-line UsageError`);
    });
  }
});
