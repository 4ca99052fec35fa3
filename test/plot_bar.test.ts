// Grouped bar charts: labels and legend in the SVG; in the PNG, bars side by
// side (not stacked) with heights in proportion to their values; gaps for
// missing values; one-line errors for bad input.
import t from 'tap';
import { UsageError } from '../src/errors.js';
import { barChart, type BarChartOptions } from '../src/plot/index.js';
import { decodePng, hex, pixelsOf, svgSize, svgTexts } from './plot_helpers.js';

const RED = '#d62728';
const BLUE = '#1f77b4';

function options(): BarChartOptions {
  return {
    title: 'Streaming perplexity by cache layout',
    subtitle: 'window 1020-1024',
    xLabel: 'KV cache (sinks + window)',
    yLabel: 'perplexity',
    legendTitle: 'pre-training',
    groups: ['0 + 1024', '4 + 1020'],
    series: [
      { name: 'vanilla', values: [40, 20], color: RED },
      { name: 'with sink token', values: [10, null], color: BLUE },
    ],
    valueFormat: '.1f',
  };
}

/** Bounding box of one colour's pixels inside the plot (legend swatches are excluded by width). */
function bars(fig: { png: Buffer }, color: string) {
  const img = decodePng(fig.png);
  const px = pixelsOf(img, hex(color));
  // bar columns have many pixels; a legend swatch column has few
  const counts = new Map<number, number>();
  for (const p of px) counts.set(p.x, (counts.get(p.x) ?? 0) + 1);
  const columns = [...counts]
    .filter(([, c]) => c > 40)
    .map(([x]) => x)
    .sort((a, b) => a - b);
  // split into runs of adjacent columns: one run per bar
  const runs: { x0: number; x1: number; top: number; bottom: number }[] = [];
  for (const x of columns) {
    const last = runs[runs.length - 1];
    const ys = px.filter((p) => p.x === x).map((p) => p.y);
    if (last !== undefined && x === last.x1 + 1) {
      last.x1 = x;
      last.top = Math.min(last.top, ...ys);
      last.bottom = Math.max(last.bottom, ...ys);
    } else {
      runs.push({ x0: x, x1: x, top: Math.min(...ys), bottom: Math.max(...ys) });
    }
  }
  return runs;
}

t.test('labels, groups, legend and printed values are in the SVG', async (t) => {
  const fig = await barChart(options());
  const texts = svgTexts(fig.svg);
  for (const s of [
    'Streaming perplexity by cache layout',
    'window 1020-1024',
    'KV cache (sinks + window)',
    'perplexity',
    'pre-training',
    '0 + 1024',
    '4 + 1020',
    'vanilla',
    'with sink token',
    '40.0',
    '20.0',
    '10.0',
  ]) {
    t.ok(texts.includes(s), `text "${s}"`);
  }
});

t.test('PNG: stated size, bars side by side with heights in proportion', async (t) => {
  const fig = await barChart(options());
  const img = decodePng(fig.png);
  t.equal(img.width, fig.width);
  t.equal(img.height, fig.height);
  t.ok(Math.abs(fig.width - svgSize(fig.svg).width * 2) < 1, 'PNG width = SVG width × 2');
  t.ok(Math.abs(fig.height - svgSize(fig.svg).height * 2) < 1, 'PNG height = SVG height × 2');
  const red = bars(fig, RED);
  const blue = bars(fig, BLUE);
  t.equal(red.length, 2, 'two red bars');
  t.equal(blue.length, 1, 'one blue bar: the null leaves a gap');
  const height = (b: { top: number; bottom: number }) => b.bottom - b.top + 1;
  t.ok(Math.abs(red[0]!.bottom - blue[0]!.bottom) <= 1, 'same baseline: not stacked');
  t.ok(Math.abs(height(red[0]!) / height(blue[0]!) - 4) < 0.05, `40 vs 10: ${height(red[0]!)} / ${height(blue[0]!)}`);
  t.ok(Math.abs(height(red[0]!) / height(red[1]!) - 2) < 0.05, '40 vs 20');
  t.ok(red[0]!.x1 < blue[0]!.x0 && blue[0]!.x1 < red[1]!.x0, 'group order, series order');
});

t.test('log scale: heights grow with the logarithm', async (t) => {
  const fig = await barChart({
    ...options(),
    valueFormat: undefined,
    yScale: 'log',
    series: [{ name: 'a', values: [1000, 10], color: RED }],
  });
  const [big, small] = bars(fig, RED);
  // both rise from the axis' lower end; the difference of their tops is two decades
  t.ok(big !== undefined && small !== undefined);
  t.ok(Math.abs(big!.bottom - small!.bottom) <= 1);
  t.ok(big!.top < small!.top);
});

t.test('same input, same bytes', async (t) => {
  const a = await barChart(options());
  const b = await barChart(options());
  t.equal(a.svg, b.svg);
  t.ok(a.png.equals(b.png));
});

t.test('bad input: a UsageError with one line naming the field', async (t) => {
  const base = options();
  const cases: [string, Partial<BarChartOptions>, RegExp][] = [
    ['no groups', { groups: [] }, /^barChart: groups: expected at least one entry/],
    ['no series', { series: [] }, /^barChart: series: expected at least one entry/],
    ['wrong length', { series: [{ name: 'a', values: [1] }] }, /series\[0\] "a" values: has 1 entries; expected one per group \(2\)/],
    ['NaN', { series: [{ name: 'a', values: [1, NaN] }] }, /series\[0\] "a" values\[1\]: expected a finite number, got NaN/],
    ['zero on log', { yScale: 'log', series: [{ name: 'a', values: [1, 0] }] }, /values\[1\]: 0 cannot be drawn on a log scale/],
    ['all null', { series: [{ name: 'a', values: [null, null] }] }, /series: every value is null/],
    ['duplicate group', { groups: ['x', 'x'] }, /groups\[1\]: "x" appears twice/],
    ['no y label', { yLabel: '' }, /yLabel: expected a non-empty string/],
    ['bad pixel ratio', { pixelRatio: -1 }, /barChart: pixelRatio: expected a number > 0, got -1/],
  ];
  for (const [name, patch, message] of cases) {
    await barChart({ ...base, ...patch }).then(
      () => t.fail(`${name}: no error`),
      (err: unknown) => {
        t.ok(err instanceof UsageError, `${name}: UsageError`);
        t.match((err as Error).message, message, name);
        t.notMatch((err as Error).message, /\n/, `${name}: one line`);
      },
    );
  }
});
