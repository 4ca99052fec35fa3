// Reading the inputs commands share: token-id files and model paths.
import { existsSync, statSync } from 'node:fs';
import { FileFormatError } from '../errors.js';
import { badTokenId } from '../model/token_ids.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { readJsonFile } from '../files.js';

/** A JSON array of integer token ids, each in [0, vocabSize) (without a vocabSize: each >= 0, checked against a model later: badTokenId). */
export function readTokenIds(file: string, vocabSize?: number): number[] {
  const value = readJsonFile(file, 'a JSON array of token ids');
  if (!Array.isArray(value)) throw new FileFormatError(file, 'expected a JSON array of token ids');
  const bad = badTokenId(value, vocabSize);
  if (bad !== undefined) throw new FileFormatError(file, bad);
  return value as number[];
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
