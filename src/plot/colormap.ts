// Values to colours for raster images, matching the Vega colour scale of the
// legend drawn beside them: same scheme, same linear or log mapping, clamped
// to the same domain. The scheme is sampled into a 256-entry table, finer
// than a reader can tell apart.
import * as vega from 'vega';
import { fail } from './check.js';

export type ColorScale = 'linear' | 'log';

export interface Colormap {
  /** RGB of `value`, clamped into the domain. */
  rgb(value: number): readonly [number, number, number];
}

function parseColor(where: string, css: string): [number, number, number] {
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(css);
  if (rgb !== null) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  if (hex !== null) return [parseInt(hex[1]!, 16), parseInt(hex[2]!, 16), parseInt(hex[3]!, 16)];
  return fail(where, `the scheme gave colour ${JSON.stringify(css)}, which is not rgb() or #rrggbb`);
}

export function makeColormap(where: string, scheme: string, scale: ColorScale, [lo, hi]: readonly [number, number]): Colormap {
  const interpolate: unknown = vega.scheme(scheme);
  if (typeof interpolate !== 'function') {
    fail(where, `${JSON.stringify(scheme)} is not a continuous Vega colour scheme (e.g. viridis, magma, blues)`);
  }
  const table: [number, number, number][] = [];
  for (let i = 0; i < 256; i++) table.push(parseColor(where, String((interpolate as (t: number) => unknown)(i / 255))));
  const toAxis = scale === 'log' ? Math.log : (v: number) => v;
  const a = toAxis(lo);
  const span = toAxis(hi) - a;
  return {
    rgb(value) {
      const t = value <= lo ? 0 : value >= hi ? 1 : (toAxis(value) - a) / span;
      return table[Math.round(t * 255)]!;
    },
  };
}
