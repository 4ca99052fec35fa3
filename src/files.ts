// Reading the small text and JSON files the engine consumes (configs,
// tokenizers, token lists, manifests), with the one-line error every reader
// gives: the file, then what went wrong.
import { readFileSync } from 'node:fs';
import { FileFormatError } from './errors.js';

export function readTextFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new FileFormatError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Parsed JSON of `file`; `expected` names what the file should hold, for the error message. */
export function readJsonFile(file: string, expected?: string): unknown {
  const text = readTextFile(file);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(file, expected ? `expected ${expected}, but the file is not valid JSON` : `not valid JSON (${(e as Error).message})`);
  }
}
