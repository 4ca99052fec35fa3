// The figure layer: data in, { svg, png } out, one function per kind of
// figure, and writeFigure to put a pair on disk. Charts are Vega-Lite / Vega
// specs rendered to SVG in Node, rasterised by resvg with bundled fonts.
//
//   const fig = await lineChart({ title, xLabel, yLabel, series, yScale: 'log' });
//   await writeFigure('out/fig3-ppl', fig);   // out/fig3-ppl.svg + .png
export type { Figure, FigureOptions } from './render.js';
export { lineChart, type AxisScale, type LineChartOptions, type LineSeries, type ReferenceLine } from './line.js';
export { heatmapGrid, type HeatmapGridOptions, type HeatmapPanel } from './heatmap.js';
export { barChart, type BarChartOptions, type BarSeries } from './bar.js';
export { writeFigure } from './write.js';
export { markdownTable, type Cell, type MarkdownTableOptions } from './markdown_table.js';
