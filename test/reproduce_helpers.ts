// Shared set-up of the `streamllm reproduce` / attn / start tests: a text,
// the conformance checkpoint (trained length 64) with its tokenizer, running
// an experiment, and checking the figures it lists.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import type { Test } from 'tap';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { FIXTURES, maxAbsDiff, runCliInProcess } from './helpers.js';
import { decodePng } from './plot_helpers.js';
import { tempDir } from './paths.js';

export const model = `${FIXTURES}tiny-gqa.bin`;
export const tokenizer = `${FIXTURES}tiny-gqa.tokenizer.bin`;
export const LIMIT = 300;

/** A fresh folder with text.txt: 30 lines of seeded words (about 1000 tokens). */
export function setUp(): { dir: string; text: string; common: string[] } {
  const dir = tempDir('streamllm-reproduce-');
  const text = join(dir, 'text.txt');
  const words = 'the cat sat on a mat and then it ran to the old red barn where hens lived until a fox came by'.split(' ');
  const r = seedrandom('reproduce-text');
  const lines = Array.from({ length: 30 }, () => Array.from({ length: 10 }, () => words[Math.floor(r() * words.length)]).join(' ') + '.');
  writeFileSync(text, lines.join('\n') + '\n');
  return { dir, text, common: ['--model', model, '--tokenizer', tokenizer, '--text', text, '--limit', String(LIMIT)] };
}

/** The first LIMIT tokens of the text, as the CLI encodes them (BOS first). */
export function textIds(text: string): number[] {
  return loadTokenizer(tokenizer).encode(readFileSync(text, 'utf8'), { bos: true }).slice(0, LIMIT);
}

/** Run `reproduce EXPERIMENT` (in this process) into DIR/EXPERIMENT; returns the folder and EXPERIMENT.json. */
export async function reproduce(
  dir: string,
  common: string[],
  experiment: string,
  extra: string[] = [],
): Promise<{ out: string; json: Record<string, unknown> }> {
  const out = join(dir, experiment);
  const r = await runCliInProcess(['reproduce', experiment, ...common, '--out', out, ...extra]);
  if (r.status !== 0) throw new Error(`reproduce ${experiment} failed: ${r.stderr}`);
  return { out, json: JSON.parse(readFileSync(join(out, `${experiment}.json`), 'utf8')) as Record<string, unknown> };
}

/** |a - b| within `rel` of b: the JSON keeps 7 significant digits. */
export const close = (a: number, b: number, rel = 1e-5) => Math.abs(a - b) <= rel * Math.abs(b);

export interface FigureFile {
  file: string;
  svg: string;
  width: number;
  height: number;
}

/** Every listed PNG decodes at its stated size, its SVG exists, and report.md shows it (per-layer maps excepted). */
export function checkFigures(t: Test, out: string, figures: FigureFile[]): void {
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  for (const f of figures) {
    const img = decodePng(readFileSync(join(out, f.file)));
    t.same([img.width, img.height], [f.width, f.height], `${f.file} is ${f.width}x${f.height}`);
    t.ok(img.width > 200 && img.height > 100);
    t.match(readFileSync(join(out, f.svg), 'utf8'), /^<svg/);
    if (!f.file.startsWith('attention-layer-')) t.match(report, `](${f.file})`);
  }
}

/** The largest difference, over every layer and head, of one per-head number of two sink measurements. */
export function headsDiff<F extends string>(
  a: { layers: { heads: Record<F, number>[] }[] },
  b: { layers: { heads: Record<F, number>[] }[] },
  field: F,
): number {
  const values = (m: typeof a) => m.layers.flatMap((l) => l.heads.map((h) => h[field]));
  return maxAbsDiff(values(a), values(b));
}
