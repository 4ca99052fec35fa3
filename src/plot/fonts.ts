// The one typeface of every figure: DejaVu Sans, read from the
// dejavu-fonts-ttf package. Both halves of the pipeline use the same files:
//
//   layout    Vega sizes legends, titles and axis gutters by text width. In
//             Node without a canvas it guesses 0.8 em a character, about a
//             third too wide for DejaVu, so it is handed real advance widths.
//   raster    resvg draws the PNG with these files only (no system fonts), so
//             the PNG looks the same on every machine, fonts installed or not.
//
// The SVG names "DejaVu Sans" first and generic fallbacks after it, for
// viewers that lack it.
import opentype from 'opentype.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as vega from 'vega';

const require = createRequire(import.meta.url);

export const FONT_FAMILY = 'DejaVu Sans, Verdana, Helvetica, Arial, sans-serif';

/** TrueType files given to resvg: regular for labels, bold for titles. */
export const FONT_FILES = [require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf'), require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf')];

/** Advance widths in em, per character, of one face; filled as characters are met. */
class Face {
  private readonly font: ReturnType<typeof opentype.parse>;
  private readonly widths = new Map<string, number>();

  constructor(file: string) {
    const bytes = readFileSync(file);
    // lowMemory parses glyphs on demand: 60 ms instead of 200 for DejaVu's 6000 glyphs.
    this.font = opentype.parse(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), {
      lowMemory: true,
    });
  }

  /** Width of `text` in em (no kerning: Vega only needs it for spacing). */
  width(text: string): number {
    let em = 0;
    for (const char of text) {
      let w = this.widths.get(char);
      if (w === undefined) {
        w = (this.font.charToGlyph(char).advanceWidth ?? 0) / this.font.unitsPerEm;
        this.widths.set(char, w);
      }
      em += w;
    }
    return em;
  }
}

let faces: { regular: Face; bold: Face } | undefined;

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
}

// Vega exports its measurer at run time (from vega-scenegraph) but its
// typings leave it out.
const { textMetrics } = vega as unknown as {
  textMetrics: { width: (item: TextItem, text: unknown) => number };
};

function isBold(weight: string | number | undefined): boolean {
  if (typeof weight === 'number') return weight >= 600;
  return weight === 'bold' || weight === 'bolder' || Number(weight) >= 600;
}

/**
 * Makes Vega measure text with DejaVu's advance widths. Vega keeps its text
 * measurer in a module-wide object, so this holds for every Vega view in the
 * process; it is the hook Vega provides for this (vl-convert uses it too).
 */
export function useFontMetrics(): void {
  if (faces !== undefined) return;
  faces = { regular: new Face(FONT_FILES[0]!), bold: new Face(FONT_FILES[1]!) };
  const { regular, bold } = faces;
  textMetrics.width = (item, text) => {
    const size = item.fontSize ?? 11;
    const str = text == null ? '' : String(text).trim();
    return (isBold(item.fontWeight) ? bold : regular).width(str) * size;
  };
}
