// The slice of opentype.js (which ships no types) that fonts.ts uses:
// advance widths, to measure text the way the renderer will draw it.
declare module 'opentype.js' {
  interface Glyph {
    advanceWidth?: number;
  }
  interface Font {
    unitsPerEm: number;
    charToGlyph(char: string): Glyph;
  }
  const opentype: {
    parse(buffer: ArrayBuffer, options?: { lowMemory?: boolean }): Font;
  };
  export default opentype;
}
