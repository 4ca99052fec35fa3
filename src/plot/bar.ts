// Grouped bar chart: one group of bars per category, one bar per series in
// each group, e.g. streaming perplexity per cache layout (0+W, 1+(W-1),
// 4+(W-4)) per pre-training variant (paper Table 3, Fig. 7). A missing
// measurement is `null` and leaves a gap.
import type { TopLevelSpec } from 'vega-lite';
import { compile } from 'vega-lite';
import { checkFinite, checkNames, checkNonEmptyArray, checkOptionalText, checkSize, checkText, fail } from './check.js';
import { type Figure, type FigureOptions, renderFigure } from './render.js';
import { SERIES_COLORS, vegaLiteConfig } from './theme.js';

export interface BarSeries {
  /** Legend entry, e.g. "pre-trained with a sink token". */
  name: string;
  /** One value per group, in the order of `groups`; null where not measured. */
  values: ArrayLike<number | null>;
  color?: string;
}

export interface BarChartOptions extends FigureOptions {
  /** Axis title under the groups, e.g. "KV cache (sinks + window)". */
  xLabel: string;
  yLabel: string;
  /** Group names along the x axis, left to right. */
  groups: string[];
  series: BarSeries[];
  /** Log-scale y: for values spanning orders of magnitude (window PPL in the thousands beside 20s). */
  yScale?: 'linear' | 'log';
  legendTitle?: string;
  /** d3-format string for the value printed above each bar, e.g. ".1f"; default: none printed. */
  valueFormat?: string;
  /** Plot area height in SVG units (default 320); width follows from the number of bars. */
  height?: number;
  /** Width of one bar in SVG units (default 28: room for a printed value). */
  barWidth?: number;
}

export async function barChart(options: BarChartOptions): Promise<Figure> {
  const fn = 'barChart';
  const title = checkText(`${fn}: title`, options.title);
  const subtitle = checkOptionalText(`${fn}: subtitle`, options.subtitle);
  const xLabel = checkText(`${fn}: xLabel`, options.xLabel);
  const yLabel = checkText(`${fn}: yLabel`, options.yLabel);
  const groups = checkNames(`${fn}: groups`, checkNonEmptyArray(`${fn}: groups`, options.groups) as string[]);
  const series = checkNonEmptyArray(`${fn}: series`, options.series) as BarSeries[];
  const names = checkNames(
    `${fn}: series name`,
    series.map((s) => s?.name),
  );
  const yScale = options.yScale ?? 'linear';
  if (yScale !== 'linear' && yScale !== 'log') fail(`${fn}: yScale`, `expected 'linear' or 'log', got ${JSON.stringify(yScale)}`);
  const height = checkSize(`${fn}: height`, options.height, 320);
  const barWidth = checkSize(`${fn}: barWidth`, options.barWidth, 28);
  const valueFormat = checkOptionalText(`${fn}: valueFormat`, options.valueFormat);

  const rows: { group: string; series: string; value: number }[] = [];
  series.forEach((s, k) => {
    const where = `${fn}: series[${k}] "${names[k]}" values`;
    const values = checkNonEmptyArray(where, s.values);
    if (values.length !== groups.length) {
      fail(where, `has ${values.length} entries; expected one per group (${groups.length})`);
    }
    for (let g = 0; g < groups.length; g++) {
      if (values[g] === null) continue;
      const v = checkFinite(`${where}[${g}]`, values[g]);
      if (yScale === 'log' && v <= 0) fail(`${where}[${g}]`, `${v} cannot be drawn on a log scale (expected > 0)`);
      rows.push({ group: groups[g]!, series: names[k]!, value: v });
    }
  });
  if (rows.length === 0) fail(`${fn}: series`, 'every value is null; nothing to draw');

  const colors = series.map((s, k) => s.color ?? SERIES_COLORS[k % SERIES_COLORS.length]!);
  const x = { field: 'group', type: 'nominal', title: xLabel, sort: groups, axis: { labelAngle: 0 }, scale: { paddingInner: 0.25 } };
  const xOffset = { field: 'series', type: 'nominal', sort: names, scale: { domain: names, paddingInner: 0.08 } };
  // Bars side by side, never stacked. A log scale has no zero: bars rise from
  // the power of ten below the smallest value, so that it too has a height.
  const y = {
    field: 'value',
    type: 'quantitative',
    title: yLabel,
    stack: null,
    scale: yScale === 'log' ? { type: 'log', domainMin: decadeBelow(Math.min(...rows.map((r) => r.value))) } : { zero: true },
  };
  const layers: object[] = [
    {
      mark: { type: 'bar' },
      encoding: {
        x,
        xOffset,
        y,
        color: {
          field: 'series',
          type: 'nominal',
          scale: { domain: names, range: colors },
          legend: { title: checkOptionalText(`${fn}: legendTitle`, options.legendTitle) ?? null },
        },
      },
    },
  ];
  if (valueFormat !== undefined) {
    layers.push({
      mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 10, color: '#333' },
      encoding: { x, xOffset, y, text: { field: 'value', type: 'quantitative', format: valueFormat } },
    });
  }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: subtitle === undefined ? title : { text: title, subtitle },
    data: { values: rows },
    // one step per bar: the plot widens with the number of groups and series
    width: { step: barWidth, for: 'offset' },
    height,
    layer: layers,
  } as TopLevelSpec;
  return renderFigure(fn, compile(spec, { config: vegaLiteConfig }).spec, options.pixelRatio);
}

/** The largest power of ten strictly below `v` (> 0). */
function decadeBelow(v: number): number {
  return 10 ** (Math.ceil(Math.log10(v)) - 1);
}
