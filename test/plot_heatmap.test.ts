// Heatmap grids: titles and colour bar in the SVG; in the PNG, a hot cell
// lands on its row and column, cells are sharp, the masked triangle is blank,
// and panels share one colour scale. Bad matrices give one-line errors.
import t from 'tap';
import * as vega from 'vega';
import { UsageError } from '../src/errors.js';
import { heatmapGrid, type HeatmapGridOptions } from '../src/plot/index.js';
import { decodePng, type Image, near, pixelsOf, svgSize, svgTexts } from './plot_helpers.js';

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
