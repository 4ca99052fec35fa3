// src/plot, a section each: markdownTable; writeFigure (both files under their
// final names); line charts, grouped bar charts and heatmap grids, each checked
// in the SVG text and in the pixels of the PNG.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import * as vega from 'vega';
import { UsageError } from '../src/errors.js';
import { downsampleMinMax } from '../src/plot/downsample.js';
import {
  barChart,
  type BarChartOptions,
  type Figure,
  heatmapGrid,
  type HeatmapGridOptions,
  lineChart,
  type LineChartOptions,
  markdownTable,
  writeFigure,
} from '../src/plot/index.js';
import { decodePng, hex, type Image, median, near, pixelsOf, svgSize, svgTexts } from './plot_helpers.js';

// markdownTable: aligned source, numbers right-aligned with fixed decimals,
// missing cells as a dash, pipes escaped; wrong row lengths are errors.
t.test('aligned table', async (t) => {
  const md = markdownTable(
    ['cache', 'sinks', 'PPL'],
    [
      ['window', 0, 312.456],
      ['StreamingLLM', 4, 18.2],
      ['dense', null, 17.5],
    ],
  );
  t.equal(
    md,
    [
      '| cache        | sinks |    PPL |',
      '| :----------- | ----: | -----: |',
      '| window       |     0 | 312.46 |',
      '| StreamingLLM |     4 |  18.20 |',
      '| dense        |     – |  17.50 |',
      '',
    ].join('\n'),
  );
});

t.test('decimals, explicit alignment, escaping', async (t) => {
  const md = markdownTable(['a|b', 'x'], [['p|q', 1.23456]], { decimals: 3, align: ['center', 'left'] });
  t.equal(md, ['| a\\|b | x     |', '| :--: | :---- |', '| p\\|q | 1.235 |', ''].join('\n'));
  t.equal(markdownTable(['only'], []), '| only |\n| :--- |\n');
});

t.test('bad input', async (t) => {
  t.throws(() => markdownTable([], []), UsageError);
  t.throws(() => markdownTable(['a', 'b'], [[1]]), /markdownTable: rows\[0\]: has 1 cells; expected 2, one per column/);
  t.throws(() => markdownTable(['a'], [[1]], { decimals: -1 }), /decimals: expected an integer from 0 to 20/);
  t.throws(() => markdownTable(['a'], [[1]], { align: ['left', 'right'] }), /align: has 2 entries; expected 1/);
});

// writeFigure: both files complete under their final names, nothing left
// under a temporary name, even when a rename fails.
const figure: Figure = { svg: '<svg xmlns="http://www.w3.org/2000/svg"/>', png: Buffer.from([137, 80, 78, 71, 1, 2, 3]), width: 1, height: 1 };

t.test('writes NAME.svg and NAME.png, creating the folder', async (t) => {
  const dir = t.testdir();
  const paths = await writeFigure(join(dir, 'figs', 'fig3'), figure);
  t.same(paths, { svg: join(dir, 'figs', 'fig3.svg'), png: join(dir, 'figs', 'fig3.png') });
  t.equal(readFileSync(paths.svg, 'utf8'), figure.svg);
  t.ok(readFileSync(paths.png).equals(figure.png));
  t.same(readdirSync(join(dir, 'figs')).sort(), ['fig3.png', 'fig3.svg'], 'no temporary files left');
});

t.test('replaces an existing pair', async (t) => {
  const dir = t.testdir({ 'f.svg': 'old', 'f.png': 'old' });
  await writeFigure(join(dir, 'f'), figure);
  t.equal(readFileSync(join(dir, 'f.svg'), 'utf8'), figure.svg);
  t.same(readdirSync(dir).sort(), ['f.png', 'f.svg']);
});

t.test('a failed rename leaves no temporary file', async (t) => {
  const dir = t.testdir();
  // a folder where the PNG should go: the PNG's rename fails
  mkdirSync(join(dir, 'f.png'));
  writeFileSync(join(dir, 'keep.txt'), 'x');
  await t.rejects(writeFigure(join(dir, 'f'), figure));
  t.same(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no .tmp files',
  );
});

t.test('basePath with an extension is a UsageError', async (t) => {
  await t.rejects(writeFigure('out/fig3.png', figure), UsageError);
  await t.rejects(writeFigure('out/fig3.svg', figure), /writeFigure: basePath: "out\/fig3.svg" has an extension/);
  await t.rejects(writeFigure('', figure), /writeFigure: basePath: expected a path/);
});

// Line charts: labels present in the SVG, a PNG of the stated size whose
// pixels put each series where its values say, thinning of long series that
// keeps spikes, deterministic bytes, and one-line errors for bad input.
const RED = '#d62728';
const BLUE = '#1f77b4';
const x = Array.from({ length: 50 }, (_, i) => i);

function lineOptions(): LineChartOptions {
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
  const fig = await lineChart(lineOptions());
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
  const fig = await lineChart({ ...lineOptions(), pixelRatio: 2 });
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
  const a = await lineChart(lineOptions());
  const b = await lineChart(lineOptions());
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
  const base = lineOptions();
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

// Grouped bar charts: labels and legend in the SVG; in the PNG, bars side by
// side (not stacked) with heights in proportion to their values; gaps for
// missing values; one-line errors for bad input.

function barOptions(): BarChartOptions {
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
  const fig = await barChart(barOptions());
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
  const fig = await barChart(barOptions());
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
    ...barOptions(),
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
  const a = await barChart(barOptions());
  const b = await barChart(barOptions());
  t.equal(a.svg, b.svg);
  t.ok(a.png.equals(b.png));
});

t.test('bad input: a UsageError with one line naming the field', async (t) => {
  const base = barOptions();
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

// Heatmap grids: titles and colour bar in the SVG; in the PNG, a hot cell
// lands on its row and column, cells are sharp, the masked triangle is blank,
// and panels share one colour scale. Bad matrices give one-line errors.
const viridis = (t: number): number[] => (/rgb\((\d+), (\d+), (\d+)\)/.exec(vega.scheme('viridis')(t)) ?? []).slice(1).map(Number);
const LOW = viridis(0); // (68, 1, 84)
const HIGH = viridis(1); // (253, 231, 37)
const WHITE = [255, 255, 255];

function matrix(n: number, hot: [number, number][] = [], value = 1): number[][] {
  const m = Array.from({ length: n }, (_, q) => Array.from({ length: n }, (_, k) => (k > q ? NaN : 0)));
  for (const [q, k] of hot) m[q]![k] = value;
  return m;
}

/**
 * The first panel's box in the PNG: the columns of low-colour pixels that
 * start at the leftmost one and run without a gap (the colour bar, further
 * right, is cut off by the gap), and their rows.
 */
function firstPanel(img: Image): { x0: number; y0: number; x1: number; y1: number } {
  const low = pixelsOf(img, LOW);
  const columns = new Set(low.map((p) => p.x));
  const x0 = Math.min(...columns);
  let x1 = x0;
  while (columns.has(x1)) x1++;
  const rows = low.filter((p) => p.x >= x0 && p.x < x1).map((p) => p.y);
  return { x0, y0: Math.min(...rows), x1, y1: Math.max(...rows) + 1 };
}

t.test('titles, axis titles and colour bar are in the SVG', async (t) => {
  const fig = await heatmapGrid({
    title: 'Attention maps',
    subtitle: 'averaged over 32 sequences',
    colorLabel: 'attention weight',
    panels: [0, 1, 2, 3].map((l) => ({ title: `Layer ${l}`, matrix: matrix(8, [[5, 2]]) })),
  });
  const texts = svgTexts(fig.svg);
  for (const s of ['Attention maps', 'averaged over 32 sequences', 'attention weight', 'Layer 0', 'Layer 3', 'key position', 'query position']) {
    t.ok(texts.includes(s), `text "${s}"`);
  }
  t.equal(fig.svg.match(/<image /g)?.length, 4, 'one image per panel');
  t.match(fig.svg, /<linearGradient/, 'gradient colour bar');
});

t.test('PNG: stated size; hot cell on its row and column; sharp; masked triangle blank', async (t) => {
  const n = 8;
  const fig = await heatmapGrid({
    title: 'one hot cell',
    colorLabel: 'weight',
    panels: [{ title: 'Layer 0', matrix: matrix(n, [[5, 2]]) }],
    panelSize: 160,
  });
  const img = decodePng(fig.png);
  t.equal(img.width, fig.width);
  t.equal(img.height, fig.height);
  t.ok(Math.abs(fig.width - svgSize(fig.svg).width * 2) < 1, 'PNG width = SVG width × 2');
  t.ok(Math.abs(fig.height - svgSize(fig.svg).height * 2) < 1, 'PNG height = SVG height × 2');

  const box = firstPanel(img);
  // n = 8 cells of 20 units, 40 pixels at pixel ratio 2
  t.equal(box.x1 - box.x0, 320, 'panel width');
  t.equal(box.y1 - box.y0, 320, 'panel height');
  const cell = (box.x1 - box.x0) / n;
  const centre = (q: number, k: number) => img.at(Math.floor(box.x0 + (k + 0.5) * cell), Math.floor(box.y0 + (q + 0.5) * cell));
  t.same(centre(5, 2), HIGH, 'hot cell (query 5, key 2) is the top colour');
  t.same(centre(5, 3), LOW, 'its neighbour is the bottom colour');
  t.same(centre(4, 2), LOW);
  t.same(centre(1, 6), WHITE, 'key > query is blank');
  // sharp edges: the hot cell is exactly cell × cell pixels of one colour
  const hot = pixelsOf(img, HIGH, 0, box);
  t.equal(hot.length, cell * cell, `${hot.length} hot pixels`);
  t.equal(Math.min(...hot.map((p) => p.x)), box.x0 + 2 * cell);
  t.equal(Math.min(...hot.map((p) => p.y)), box.y0 + 5 * cell);
});

t.test('mask none draws the upper triangle', async (t) => {
  const m = Array.from({ length: 4 }, () => [0, 0, 0, 0]);
  m[0]![3] = 1;
  const fig = await heatmapGrid({ title: 'full', colorLabel: 'w', mask: 'none', panels: [{ title: 'p', matrix: m }] });
  const img = decodePng(fig.png);
  const box = firstPanel(img);
  const cell = (box.x1 - box.x0) / 4;
  t.same(img.at(Math.floor(box.x0 + 3.5 * cell), Math.floor(box.y0 + 0.5 * cell)), HIGH);
});

t.test('panels share one colour scale', async (t) => {
  const fig = await heatmapGrid({
    title: 'shared scale',
    colorLabel: 'w',
    panels: [
      { title: 'a', matrix: matrix(8, [[7, 0]], 1) },
      { title: 'b', matrix: matrix(8, [[7, 0]], 0.5) },
    ],
  });
  const img = decodePng(fig.png);
  // b's hot cell is mid-scale, not b's own maximum; the colour bar holds a
  // few pixels of that colour too, so count at least a cell's worth
  const mid = pixelsOf(img, viridis(128 / 255), 0).length;
  t.ok(mid >= 40 * 40, `${mid} mid-colour pixels`);
  t.ok(pixelsOf(img, HIGH).length >= 40 * 40);
});

t.test('log colour scale and an explicit domain', async (t) => {
  const m = matrix(4);
  m[3] = [1e-4, 1e-2, 1, 0];
  m[0]![0] = 1e-4;
  const fig = await heatmapGrid({ title: 'log', colorLabel: 'w', colorScale: 'log', panels: [{ title: 'p', matrix: m }], domain: [1e-4, 1] });
  const img = decodePng(fig.png);
  const box = firstPanel(img);
  const cell = (box.x1 - box.x0) / 4;
  // 1e-2 is halfway between 1e-4 and 1 on a log scale; zeros clamp to the bottom
  t.ok(near(img.at(Math.floor(box.x0 + 1.5 * cell), Math.floor(box.y0 + 3.5 * cell)), viridis(128 / 255), 1));
  t.same(img.at(Math.floor(box.x0 + 0.5 * cell), Math.floor(box.y0 + 1.5 * cell)), LOW);
  t.ok(svgTexts(fig.svg).includes('0.01'), 'colour bar labelled at powers of ten');
});

t.test('a log colour bar spanning less than a decade shows its ends', async (t) => {
  const m = matrix(2);
  m[0]![0] = 0.025;
  m[1] = [0.7, 0.3];
  const fig = await heatmapGrid({ title: 'log', colorLabel: 'w', colorScale: 'log', panels: [{ title: 'p', matrix: m }] });
  const texts = svgTexts(fig.svg);
  for (const label of ['0.025', '0.1', '0.7']) t.ok(texts.includes(label), `label ${label}`);
});

t.test('same input, same bytes', async (t) => {
  const opts = { title: 'det', colorLabel: 'w', panels: [{ title: 'p', matrix: matrix(16, [[9, 3]]) }] };
  const a = await heatmapGrid(opts);
  const b = await heatmapGrid(opts);
  t.equal(a.svg, b.svg);
  t.ok(a.png.equals(b.png));
});

t.test('bad input: a UsageError with one line naming the field', async (t) => {
  const base: HeatmapGridOptions = { title: 'x', colorLabel: 'w', panels: [{ title: 'Layer 0', matrix: matrix(4) }] };
  const nonSquare = [
    [1, 0, 0],
    [1, 1, 0],
  ];
  const nan = matrix(4);
  nan[2]![1] = NaN;
  const cases: [string, Partial<HeatmapGridOptions>, RegExp][] = [
    ['no panels', { panels: [] }, /^heatmapGrid: panels: expected at least one entry/],
    ['empty matrix', { panels: [{ title: 'L', matrix: [] }] }, /panels\[0\] "L" matrix: expected at least one entry/],
    [
      'non-square',
      { panels: [{ title: 'L', matrix: nonSquare }] },
      /panels\[0\] "L" matrix: expected a square matrix, but row 0 has 3 entries and there are 2 rows/,
    ],
    ['NaN below the diagonal', { panels: [{ title: 'L', matrix: nan }] }, /panels\[0\] "L" matrix\[2\]\[1\]: expected a finite number, got NaN/],
    ['NaN above the diagonal, unmasked', { mask: 'none', panels: [{ title: 'L', matrix: matrix(4) }] }, /matrix\[0\]\[1\]: expected a finite number, got NaN/],
    ['log of zeros', { colorScale: 'log' }, /colorScale: log needs some value > 0/],
    ['bad domain', { domain: [1, 1] }, /domain: expected low < high, got \[1, 1\]/],
    ['bad scheme', { scheme: 'category10' }, /scheme: "category10" is not a continuous Vega colour scheme/],
    ['no colour label', { colorLabel: ' ' }, /colorLabel: expected a non-empty string/],
    ['bad columns', { columns: 1.5 }, /columns: expected a whole number, got 1.5/],
  ];
  for (const [name, patch, message] of cases) {
    await heatmapGrid({ ...base, ...patch }).then(
      () => t.fail(`${name}: no error`),
      (err: unknown) => {
        t.ok(err instanceof UsageError, `${name}: UsageError`);
        t.match((err as Error).message, message, name);
        t.notMatch((err as Error).message, /\n/, `${name}: one line`);
      },
    );
  }
});
