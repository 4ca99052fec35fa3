// From a Vega spec to a figure: Vega lays the chart out and writes SVG;
// resvg (Rust, shipped prebuilt in the npm package) rasterises that SVG with
// the bundled DejaVu fonts. No browser, no canvas, no system fonts.
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { checkPositive } from './check.js';
import { FONT_FILES, useFontMetrics } from './fonts.js';

/** A rendered figure: the same picture as a vector file and as pixels. */
export interface Figure {
  /** A standalone SVG document. */
  svg: string;
  /** PNG bytes, `width` × `height` pixels. */
  png: Buffer;
  /** PNG width in pixels: the SVG's width times the pixel ratio, rounded. */
  width: number;
  /** PNG height in pixels. */
  height: number;
}

/** Options every figure takes. */
export interface FigureOptions {
  /** Figure title, shown on top: say what is plotted, for a reader without the code. */
  title: string;
  /** A second line under the title: model, data, settings. */
  subtitle?: string;
  /** PNG pixels per SVG unit (default 2: sharp on screens and in print). */
  pixelRatio?: number;
}

// Vega numbers the clip paths and gradients of an SVG with module-wide
// counters; they are reset before each figure so that the same input gives the
// same bytes. Renders therefore run one at a time.
let previous: Promise<unknown> = Promise.resolve();

async function toSvg(spec: vega.Spec): Promise<string> {
  const run = previous.then(async () => {
    vega.resetSVGDefIds();
    const view = new vega.View(vega.parse(spec), { renderer: 'none' });
    try {
      return await view.toSVG();
    } finally {
      view.finalize();
    }
  });
  previous = run.catch(() => undefined);
  return run;
}

// Vega asks for unsmoothed images as `image-rendering: optimizeSpeed;
// image-rendering: pixelated;`. Browsers take the second; resvg 2.6 does not
// know "pixelated", drops back to smoothing and blurs every heatmap cell. The
// copy handed to resvg keeps only the first, which it honours.
function forResvg(svg: string): string {
  return svg.replaceAll('image-rendering: optimizeSpeed; image-rendering: pixelated;', 'image-rendering: optimizeSpeed;');
}

/** Renders a Vega spec; `fn` names the calling figure function in errors. */
export async function renderFigure(fn: string, spec: vega.Spec, pixelRatio: number | undefined): Promise<Figure> {
  const ratio = pixelRatio === undefined ? 2 : checkPositive(`${fn}: pixelRatio`, pixelRatio);
  useFontMetrics();
  const svg = await toSvg(spec);
  const image = new Resvg(forResvg(svg), {
    font: { loadSystemFonts: false, fontFiles: FONT_FILES, defaultFontFamily: 'DejaVu Sans' },
    fitTo: { mode: 'zoom', value: ratio },
  }).render();
  return { svg, png: image.asPng(), width: image.width, height: image.height };
}
