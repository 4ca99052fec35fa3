// The house style of figures, in one place: type sizes, colours, background.
// Line and bar charts are written in Vega-Lite and take `vegaLiteConfig`; the
// heatmap grid is written in Vega directly and takes `vegaConfig`.
import type * as vega from 'vega';
import type { Config as VegaLiteConfig } from 'vega-lite';
import { FONT_FAMILY } from './fonts.js';

/** Series colours, in order: Tableau 10, distinct in colour and in lightness. */
export const SERIES_COLORS = ['#4c78a8', '#f58518', '#e45756', '#72b7b2', '#54a24b', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac'];

/** Dark grey of reference lines and their labels: visible, but not data. */
export const REFERENCE_COLOR = '#444';

const TITLE = { font: FONT_FAMILY, fontSize: 15, subtitleFont: FONT_FAMILY, subtitleFontSize: 12, subtitleColor: '#444' };
const AXIS = { labelFont: FONT_FAMILY, titleFont: FONT_FAMILY, labelFontSize: 11, titleFontSize: 12 };
// Vega cuts legend entries at 160 units with an ellipsis; series names such
// as "sliding window with re-computation" are the point of the legend.
const LEGEND = { labelFont: FONT_FAMILY, titleFont: FONT_FAMILY, labelFontSize: 11, titleFontSize: 12, labelLimit: 400 };

export const vegaLiteConfig: VegaLiteConfig = {
  font: FONT_FAMILY,
  background: 'white',
  padding: 12,
  title: TITLE,
  axis: AXIS,
  legend: LEGEND,
};

export const vegaConfig: vega.Config = {
  background: 'white',
  padding: 12,
  title: TITLE,
  axis: AXIS,
  legend: LEGEND,
  text: { font: FONT_FAMILY },
};
