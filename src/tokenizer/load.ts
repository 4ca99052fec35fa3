// Opening a tokenizer from disk, whatever its format:
//   *.json, or a file that reads as JSON    Hugging Face tokenizer.json; read
//                                            here when it is byte-level BPE
//                                            (what trainBpe writes, GPT-2's)
//   anything else (tokenizer.bin)            a llama2.c tokenizer
//   a directory                              its tokenizer.json, else its tokenizer.bin
// With `vocabSize` (the model's), the tokenizer must have exactly that many
// tokens: a mismatch means the two files do not belong together.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, UsageError } from '../errors.js';
import { bpeFromJson, byteLevelBpeProblem } from './bpe.js';
import { readLlama2cTokenizer } from './llama2c.js';
import type { Tokenizer } from './types.js';

export interface LoadTokenizerOptions {
  /** The model's vocabulary size, checked against the tokenizer's. */
  vocabSize?: number;
}

export function loadTokenizer(path: string, options: LoadTokenizerOptions = {}): Tokenizer {
  const { vocabSize } = options;
  if (vocabSize !== undefined && !(Number.isInteger(vocabSize) && vocabSize > 0)) {
    throw new UsageError(`vocabSize: expected a positive integer, got ${vocabSize}`);
  }
  if (!existsSync(path)) throw new FileFormatError(path, 'no such file or directory');
  let file = path;
  if (statSync(path).isDirectory()) {
    const found = ['tokenizer.json', 'tokenizer.bin'].map((name) => join(path, name)).find((f) => existsSync(f));
    if (found === undefined) throw new FileFormatError(path, 'directory has neither tokenizer.json nor tokenizer.bin');
    file = found;
  }
  if (!isJson(file)) return readLlama2cTokenizer(file, vocabSize);

  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FileFormatError(file, `not valid JSON: ${(e as Error).message}`);
  }
  // The one place a general Hugging Face tokenizer.json reader would plug in.
  const problem = byteLevelBpeProblem(json);
  if (problem !== undefined) {
    const supported = "supported: byte-level BPE as trainBpe writes it, GPT-2's";
    throw new FileFormatError(file, `a tokenizer.json that streamllm cannot read yet: ${problem} (${supported})`);
  }
  const tokenizer = bpeFromJson(json, file);
  if (vocabSize !== undefined && tokenizer.vocabSize !== vocabSize) {
    throw new FileFormatError(file, `has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${vocabSize}`);
  }
  return tokenizer;
}

/**
 * By name, else by content: JSON starts with "{" then a key or "}"; a
 * llama2.c file starts with an int32 (max_token_length 123 is "{\0\0\0").
 */
function isJson(file: string): boolean {
  if (file.endsWith('.json')) return true;
  if (file.endsWith('.bin')) return false;
  const head = Buffer.alloc(64);
  const fd = openSync(file, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return /^\s*\{\s*["}]/.test(head.subarray(0, n).toString('latin1'));
}
