// Heatmap grid: one square matrix per panel on a shared colour scale, e.g.
// attention maps per layer (and head) with query rows and key columns, as in
// the paper's Fig. 2. Causal attention leaves the upper triangle empty, so by
// default cells with key > query are left blank and not even read.
//
// Each panel is drawn as an embedded PNG with one pixel per cell, scaled up
// without smoothing ("pixelated"). Cells as SVG rectangles would cost 16
// panels × 2K cells = 33K elements: a 6 MB SVG and over a second in Vega,
// for the same picture. Axes, titles and the colour bar stay vector.
import { encode } from 'fast-png';
import type * as vega from 'vega';
import { checkFinite, checkNonEmptyArray, checkOptionalText, checkSize, checkText, fail } from './check.js';
import { type ColorScale, makeColormap } from './colormap.js';
import { type Figure, type FigureOptions, renderFigure } from './render.js';
import { vegaConfig } from './theme.js';

export interface HeatmapPanel {
  /** Shown above the panel, e.g. "Layer 2" or "Layer 2, head 0". */
  title: string;
  /** n × n, rows first: matrix[query][key]. number[][] or Float32Array[] both do. */
  matrix: ArrayLike<ArrayLike<number>>;
}

export interface HeatmapGridOptions extends FigureOptions {
  panels: HeatmapPanel[];
  /** Colour bar title, e.g. "attention weight". */
  colorLabel: string;
  /** Column axis title (default "key position"). */
  xLabel?: string;
  /** Row axis title (default "query position"). */
  yLabel?: string;
  /** Panels per row (default: up to 4); e.g. the head count for a layer × head grid. */
  columns?: number;
  /** 'causal' (default) blanks cells with column > row; 'none' draws every cell. */
  mask?: 'causal' | 'none';
  /** 'log' shows small weights beside a dominant sink; values at or below the domain's low end get its colour. */
  colorScale?: ColorScale;
  /** Colour scale range [low, high]; default: the smallest and largest drawn values (smallest positive for log). */
  domain?: [number, number];
  /** A continuous Vega colour scheme (default "viridis": perceptually even, readable in greyscale). */
  scheme?: string;
  /** Approximate panel side in SVG units (default 160); rounded so that each cell is a whole number of units. */
  panelSize?: number;
}

interface CheckedPanel {
  title: string;
  n: number;
  matrix: ArrayLike<ArrayLike<number>>;
}

export async function heatmapGrid(options: HeatmapGridOptions): Promise<Figure> {
  const fn = 'heatmapGrid';
  const title = checkText(`${fn}: title`, options.title);
  const subtitle = checkOptionalText(`${fn}: subtitle`, options.subtitle);
  const colorLabel = checkText(`${fn}: colorLabel`, options.colorLabel);
  const xLabel = checkOptionalText(`${fn}: xLabel`, options.xLabel) ?? 'key position';
  const yLabel = checkOptionalText(`${fn}: yLabel`, options.yLabel) ?? 'query position';
  const mask = options.mask ?? 'causal';
  if (mask !== 'causal' && mask !== 'none') fail(`${fn}: mask`, `expected 'causal' or 'none', got ${JSON.stringify(mask)}`);
  const colorScale = options.colorScale ?? 'linear';
  if (colorScale !== 'linear' && colorScale !== 'log') {
    fail(`${fn}: colorScale`, `expected 'linear' or 'log', got ${JSON.stringify(colorScale)}`);
  }
  const scheme = checkOptionalText(`${fn}: scheme`, options.scheme) ?? 'viridis';
  const panelSize = checkSize(`${fn}: panelSize`, options.panelSize, 160);
  const panelsIn = checkNonEmptyArray(`${fn}: panels`, options.panels) as HeatmapPanel[];
  const columns = checkSize(`${fn}: columns`, options.columns, Math.min(4, panelsIn.length));
  const shown = (q: number, k: number) => mask === 'none' || k <= q;

  // Shapes and values first: every panel is checked before anything is drawn.
  let min = Infinity;
  let max = -Infinity;
  let minPositive = Infinity;
  const panels: CheckedPanel[] = Array.from(panelsIn, (panel, p) => {
    const where = `${fn}: panels[${p}]`;
    const panelTitle = checkText(`${where} title`, panel?.title);
    const matrix = checkNonEmptyArray(`${where} "${panelTitle}" matrix`, panel.matrix);
    const n = matrix.length;
    for (let q = 0; q < n; q++) {
      const row = matrix[q];
      if (row === undefined || row === null || typeof row.length !== 'number') {
        fail(`${where} "${panelTitle}" matrix[${q}]`, 'expected an array of numbers');
      }
      if (row.length !== n) {
        fail(`${where} "${panelTitle}" matrix`, `expected a square matrix, but row ${q} has ${row.length} entries and there are ${n} rows`);
      }
      for (let k = 0; k < n; k++) {
        if (!shown(q, k)) continue;
        const v = checkFinite(`${where} "${panelTitle}" matrix[${q}][${k}]`, row[k]);
        min = Math.min(min, v);
        max = Math.max(max, v);
        if (v > 0) minPositive = Math.min(minPositive, v);
      }
    }
    return { title: panelTitle, n, matrix };
  });

  const domain = colourDomain(fn, options.domain, colorScale, min, max, minPositive);
  const colormap = makeColormap(`${fn}: scheme`, scheme, colorScale, domain);

  const panelMarks = panels.map((panel, p): vega.GroupMark => {
    const { n, matrix } = panel;
    const cell = Math.max(1, Math.round(panelSize / n));
    const side = cell * n;
    // pixels: [n, n, RGBA]; blank cells stay transparent over the white background
    const pixels = new Uint8Array(n * n * 4);
    for (let q = 0; q < n; q++) {
      for (let k = 0; k < n; k++) {
        if (!shown(q, k)) continue;
        const [r, g, b] = colormap.rgb(matrix[q]![k]!);
        pixels.set([r, g, b, 255], (q * n + k) * 4);
      }
    }
    const png = encode({ width: n, height: n, data: pixels, channels: 4, depth: 8 });
    const url = `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
    // Axis titles on the outer panels only: bottom of each column, start of each row.
    const bottom = p + columns >= panels.length;
    const left = p % columns === 0;
    return {
      type: 'group',
      title: { text: panel.title, fontSize: 12 },
      encode: { update: { width: { value: side }, height: { value: side }, stroke: { value: '#999' } } },
      // cell i spans [i - 0.5, i + 0.5], so tick i sits on the cell's centre; query 0 on top
      scales: [
        { name: 'key', type: 'linear', domain: [-0.5, n - 0.5], range: [0, side], zero: false, nice: false },
        { name: 'query', type: 'linear', domain: [-0.5, n - 0.5], range: [0, side], zero: false, nice: false },
      ],
      axes: [
        { orient: 'bottom', scale: 'key', tickCount: 4, tickMinStep: 1, format: 'd', ...(bottom ? { title: xLabel } : {}) },
        { orient: 'left', scale: 'query', tickCount: 4, tickMinStep: 1, format: 'd', ...(left ? { title: yLabel } : {}) },
      ],
      marks: [
        {
          type: 'image',
          encode: {
            update: {
              x: { value: 0 },
              y: { value: 0 },
              width: { value: side },
              height: { value: side },
              url: { value: url },
              aspect: { value: false },
              smooth: { value: false },
            },
          },
        },
      ],
    };
  });

  const spec: vega.Spec = {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    config: vegaConfig,
    autosize: 'pad',
    title: subtitle === undefined ? { text: title } : { text: title, subtitle },
    layout: { columns, padding: 16, bounds: 'full', align: 'all' },
    scales: [{ name: 'color', type: colorScale, domain, range: { scheme }, zero: false, nice: false, clamp: true }],
    legends: [
      {
        fill: 'color',
        type: 'gradient',
        title: colorLabel,
        orient: 'right',
        gradientLength: 160,
        ...(colorScale === 'log' ? { values: logLabels(domain), format: '.2~g' } : {}),
      },
    ],
    marks: panelMarks,
  };
  return renderFigure(fn, spec, options.pixelRatio);
}

/**
 * Labels of a log colour bar: the powers of ten inside the domain (at most
 * six); where fewer than two fall inside, the domain's ends as well, so the
 * bar always has a readable range.
 */
function logLabels([lo, hi]: [number, number]): number[] {
  const first = Math.ceil(Math.log10(lo) - 1e-9);
  const last = Math.floor(Math.log10(hi) + 1e-9);
  const stride = Math.max(1, Math.ceil((last - first + 1) / 6));
  const powers: number[] = [];
  for (let e = last; e >= first; e -= stride) powers.unshift(10 ** e);
  return powers.length >= 2 ? powers : [...new Set([lo, ...powers, hi])];
}

function colourDomain(fn: string, given: [number, number] | undefined, scale: ColorScale, min: number, max: number, minPositive: number): [number, number] {
  if (given !== undefined) {
    if (!Array.isArray(given) || given.length !== 2) fail(`${fn}: domain`, 'expected [low, high]');
    const lo = checkFinite(`${fn}: domain[0]`, given[0]);
    const hi = checkFinite(`${fn}: domain[1]`, given[1]);
    if (!(lo < hi)) fail(`${fn}: domain`, `expected low < high, got [${lo}, ${hi}]`);
    if (scale === 'log' && lo <= 0) fail(`${fn}: domain`, `a log colour scale needs low > 0, got ${lo}`);
    return [lo, hi];
  }
  if (scale === 'log') {
    if (minPositive === Infinity) fail(`${fn}: colorScale`, 'log needs some value > 0, but every drawn cell is <= 0');
    return minPositive < max ? [minPositive, max] : [minPositive / 10, minPositive];
  }
  // a constant matrix still needs a non-empty range
  return min < max ? [min, max] : [min - 0.5, max + 0.5];
}
