// Line chart: named series of (x, y) points, e.g. per-token log-perplexity
// against token position for each cache policy (paper Fig. 3), decode latency
// against cache size (Fig. 10), or training loss against step. Optional
// dashed reference lines with a label mark events ("cache full at 256").
// Smoothing is the caller's; long series are thinned as downsample.ts
// explains, unless `downsample: false`.
import type { TopLevelSpec } from 'vega-lite';
import { compile } from 'vega-lite';
import { checkFinite, checkNames, checkNonEmptyArray, checkOptionalText, checkSize, checkText, fail } from './check.js';
import { downsampleMinMax } from './downsample.js';
import { type Figure, type FigureOptions, renderFigure } from './render.js';
import { REFERENCE_COLOR, SERIES_COLORS, vegaLiteConfig } from './theme.js';

export interface LineSeries {
  /** Legend entry, e.g. "StreamingLLM (4 + 252)". */
  name: string;
  x: ArrayLike<number>;
  /** Same length as `x`. */
  y: ArrayLike<number>;
  /** CSS colour; default: the next of the house palette. */
  color?: string;
  /** Draw dashed, e.g. to set a baseline apart in greyscale print. */
  dashed?: boolean;
}

/** A labelled dashed line across the plot at one x (vertical) or one y (horizontal). */
export type ReferenceLine = { x: number; label: string } | { y: number; label: string };

/** 'log2' puts ticks at powers of two: cache sizes, window sizes. */
export type AxisScale = 'linear' | 'log' | 'log2';

export interface LineChartOptions extends FigureOptions {
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  xScale?: AxisScale;
  yScale?: AxisScale;
  referenceLines?: ReferenceLine[];
  /** Legend heading, e.g. "KV cache"; default none. */
  legendTitle?: string;
  /** Dots on the points too: for short series such as a sweep over cache sizes. */
  markers?: boolean;
  /** Thin series longer than 4 points per unit of width (default true). */
  downsample?: boolean;
  /** Plot area in SVG units (default 640 × 320); the figure adds axes, legend, title. */
  width?: number;
  height?: number;
}

interface Row {
  series: string;
  x: number;
  y: number;
}

// A line chart's y need not start at zero (a loss curve would flatten); a
// log scale has no zero at all.
function scaleOf(kind: AxisScale): { type: 'linear'; zero: false } | { type: 'log'; base: number } {
  if (kind === 'linear') return { type: 'linear', zero: false };
  return { type: 'log', base: kind === 'log2' ? 2 : 10 };
}

function checkScale(where: string, value: unknown): AxisScale {
  if (value === undefined) return 'linear';
  if (value !== 'linear' && value !== 'log' && value !== 'log2') {
    fail(where, `expected 'linear', 'log' or 'log2', got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkOnScale(where: string, value: unknown, scale: AxisScale): number {
  const v = checkFinite(where, value);
  if (scale !== 'linear' && v <= 0) fail(where, `${v} cannot be drawn on a log scale (expected > 0)`);
  return v;
}

/** Indices 0..n-1 ordered by x (stable), without sorting when already in order. */
function orderByX(x: ArrayLike<number>): number[] {
  const order = Array.from({ length: x.length }, (_, i) => i);
  for (let i = 1; i < x.length; i++) {
    if (x[i]! < x[i - 1]!) return order.sort((a, b) => x[a]! - x[b]!);
  }
  return order;
}

export async function lineChart(options: LineChartOptions): Promise<Figure> {
  const fn = 'lineChart';
  const title = checkText(`${fn}: title`, options.title);
  const subtitle = checkOptionalText(`${fn}: subtitle`, options.subtitle);
  const xLabel = checkText(`${fn}: xLabel`, options.xLabel);
  const yLabel = checkText(`${fn}: yLabel`, options.yLabel);
  const xScale = checkScale(`${fn}: xScale`, options.xScale);
  const yScale = checkScale(`${fn}: yScale`, options.yScale);
  const width = checkSize(`${fn}: width`, options.width, 640);
  const height = checkSize(`${fn}: height`, options.height, 320);
  const series = checkNonEmptyArray(`${fn}: series`, options.series) as LineSeries[];
  const names = checkNames(
    `${fn}: series name`,
    series.map((s) => s?.name),
  );
  const downsample = options.downsample ?? true;
  const toAxis = xScale === 'linear' ? (v: number) => v : Math.log;

  const rows: Row[] = [];
  let longest = 0;
  series.forEach((s, k) => {
    const where = `${fn}: series[${k}] "${names[k]}"`;
    const x = checkNonEmptyArray(`${where} x`, s.x);
    const y = checkNonEmptyArray(`${where} y`, s.y);
    if (x.length !== y.length) fail(where, `x has ${x.length} values but y has ${y.length}; expected one y per x`);
    for (let i = 0; i < x.length; i++) {
      checkOnScale(`${where} x[${i}]`, x[i], xScale);
      checkOnScale(`${where} y[${i}]`, y[i], yScale);
    }
    const order = orderByX(x);
    const xs = order.map((i) => x[i]!);
    const ys = order.map((i) => y[i]!);
    const kept = downsample ? downsampleMinMax(xs, ys, width, toAxis) : order.map((_, j) => j);
    for (const j of kept) rows.push({ series: names[k]!, x: xs[j]!, y: ys[j]! });
    longest = Math.max(longest, kept.length);
  });

  const colors = series.map((s, k) => s.color ?? SERIES_COLORS[k % SERIES_COLORS.length]!);
  const legend = { title: checkOptionalText(`${fn}: legendTitle`, options.legendTitle) ?? null };
  const anyDashed = series.some((s) => s.dashed === true);

  const layers: TopLevelSpec[] = [];
  const lines = {
    data: { values: rows },
    mark: {
      type: 'line',
      // thin strokes keep thousands of points legible; short series get bolder ones
      strokeWidth: longest > 200 ? 1 : 2,
      point: options.markers === true ? { filled: true, size: 36 } : false,
      clip: true,
    },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xLabel, scale: scaleOf(xScale) },
      y: { field: 'y', type: 'quantitative', title: yLabel, scale: scaleOf(yScale) },
      color: { field: 'series', type: 'nominal', scale: { domain: names, range: colors }, legend },
      ...(anyDashed
        ? {
            strokeDash: {
              field: 'series',
              type: 'nominal',
              scale: { domain: names, range: series.map((s) => (s.dashed === true ? [6, 3] : [1, 0])) },
              legend,
            },
          }
        : {}),
    },
  };
  layers.push(lines as TopLevelSpec);
  layers.push(...referenceLayers(fn, options.referenceLines ?? [], xScale, yScale, rows));

  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: subtitle === undefined ? title : { text: title, subtitle },
    width,
    height,
    layer: layers,
  } as TopLevelSpec;
  return renderFigure(fn, compile(spec, { config: vegaLiteConfig }).spec, options.pixelRatio);
}

/** Dashed rules with labels: vertical ones labelled at the top, stacked so close ones do not collide. */
function referenceLayers(fn: string, lines: ReferenceLine[], xScale: AxisScale, yScale: AxisScale, rows: Row[]): TopLevelSpec[] {
  const vertical: { x: number; label: string }[] = [];
  const horizontal: { y: number; label: string }[] = [];
  lines.forEach((line, i) => {
    const where = `${fn}: referenceLines[${i}]`;
    const label = checkText(`${where} label`, line?.label);
    if ('x' in line) vertical.push({ x: checkOnScale(`${where} x`, line.x, xScale), label });
    else if ('y' in line) horizontal.push({ y: checkOnScale(`${where} y`, line.y, yScale), label });
    else fail(where, 'expected an x or a y');
  });
  const rule = { type: 'rule', strokeDash: [4, 3], color: REFERENCE_COLOR, strokeWidth: 1 };
  const text = { type: 'text', color: REFERENCE_COLOR, fontSize: 11 };
  const layers: object[] = [];

  if (vertical.length > 0) {
    // Labels right of their line, except near the right edge, where they go left.
    const toAxis = xScale === 'linear' ? (v: number) => v : Math.log;
    const xs = [...rows.map((r) => r.x), ...vertical.map((v) => v.x)].map(toAxis);
    const lo = Math.min(...xs);
    const span = Math.max(...xs) - lo || 1;
    const labelled = [...vertical].sort((a, b) => a.x - b.x).map((v, k) => ({ ...v, top: 4 + 14 * k, right: (toAxis(v.x) - lo) / span > 0.7 }));
    for (const right of [false, true]) {
      const values = labelled.filter((v) => v.right === right);
      if (values.length === 0) continue;
      layers.push({
        data: { values },
        layer: [
          { mark: rule, encoding: { x: { field: 'x', type: 'quantitative' } } },
          {
            mark: { ...text, align: right ? 'right' : 'left', baseline: 'top', dx: right ? -4 : 4 },
            encoding: {
              x: { field: 'x', type: 'quantitative' },
              // pixels from the top of the plot, one line of text further down per label
              y: { field: 'top', type: 'quantitative', scale: null },
              text: { field: 'label' },
            },
          },
        ],
      });
    }
  }
  if (horizontal.length > 0) {
    layers.push({
      data: { values: horizontal },
      layer: [
        { mark: rule, encoding: { y: { field: 'y', type: 'quantitative' } } },
        {
          mark: { ...text, align: 'right', baseline: 'bottom', dx: -4, dy: -3 },
          encoding: { x: { value: 'width' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
        },
      ],
    });
  }
  return layers as TopLevelSpec[];
}
