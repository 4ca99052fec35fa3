// Reading the inputs commands share: token-id files and model paths.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { FileFormatError } from '../errors.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';

/** A JSON array of integer token ids, each in [0, vocabSize). */
export function readTokenIds(file: string, vocabSize: number): number[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FileFormatError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FileFormatError(file, 'expected a JSON array of token ids, but the file is not valid JSON');
  }
  if (!Array.isArray(value)) throw new FileFormatError(file, 'expected a JSON array of token ids');
  value.forEach((id, i) => {
    if (!isTokenId(id, vocabSize)) {
      throw new FileFormatError(file, `element ${i} is ${JSON.stringify(id)}, expected a token id in 0..${vocabSize - 1}`);
    }
  });
  return value as number[];
}

export function isTokenId(id: unknown, vocabSize: number): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < vocabSize;
}

/**
 * The tokenizer for a model: --tokenizer when given, else the one inside a
 * model directory, else none (a bare llama2.c checkpoint).
 */
export function resolveTokenizer(tokenizerPath: string | undefined, modelPath: string, vocabSize: number): Tokenizer | undefined {
  if (tokenizerPath !== undefined) return loadTokenizer(tokenizerPath, { vocabSize });
  if (existsSync(modelPath) && statSync(modelPath).isDirectory()) return loadTokenizer(modelPath, { vocabSize });
  return undefined;
}

/** Read a text file, or explain why not. */
export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new FileFormatError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
