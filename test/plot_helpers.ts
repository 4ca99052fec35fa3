// Reading figures back in the plot tests: decode the PNG, find pixels of a
// colour, read the SVG's declared size.
import { decode } from 'fast-png';

export interface Image {
  width: number;
  height: number;
  /** RGB of pixel (x, y). */
  at(x: number, y: number): [number, number, number];
}

export function decodePng(png: Uint8Array): Image {
  const img = decode(png);
  if (img.depth !== 8) throw new Error(`expected 8-bit PNG, got depth ${img.depth}`);
  const c = img.channels;
  return {
    width: img.width,
    height: img.height,
    at(x, y) {
      const o = (y * img.width + x) * c;
      return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!];
    },
  };
}

export function hex(color: string): [number, number, number] {
  return [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16)) as [number, number, number];
}

export function near(a: readonly number[], b: readonly number[], tolerance = 0): boolean {
  return a.every((v, i) => Math.abs(v - b[i]!) <= tolerance);
}

/** Coordinates of every pixel within `tolerance` of `rgb` (per channel), optionally inside a box. */
export function pixelsOf(img: Image, rgb: readonly number[], tolerance = 0, box = { x0: 0, y0: 0, x1: img.width, y1: img.height }): { x: number; y: number }[] {
  const found: { x: number; y: number }[] = [];
  for (let y = box.y0; y < box.y1; y++) {
    for (let x = box.x0; x < box.x1; x++) if (near(img.at(x, y), rgb, tolerance)) found.push({ x, y });
  }
  return found;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The <svg> element's width and height attributes. */
export function svgSize(svg: string): { width: number; height: number } {
  const m = /<svg[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"/.exec(svg);
  if (m === null) throw new Error('no width/height on <svg>');
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** Text drawn in the SVG (Vega writes each label as one <text> element). */
export function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!.replaceAll('&amp;', '&'));
}
