// Opening a tokenizer from disk, whatever its format:
//   *.json, or a file that reads as JSON    Hugging Face tokenizer.json: our
//                                            own reader for byte-level BPE (what
//                                            trainBpe writes, GPT-2's), Hugging
//                                            Face's tokenizers for the rest
//   anything else (tokenizer.bin)            a llama2.c tokenizer
//   a directory                              its tokenizer.json, else its tokenizer.bin
// With `vocabSize` (the model's), a llama2.c tokenizer must have exactly that
// many tokens and a tokenizer.json at most that many (models pad their
// embedding tables): otherwise the two files do not belong together.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, UsageError } from '../errors.js';
import { bpeFromJson, byteLevelBpeProblem } from './bpe.js';
import { HfTokenizer } from './hf.js';
import { readLlama2cTokenizer } from './llama2c.js';
import type { Tokenizer } from './types.js';
import { readJsonFile } from '../files.js';

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

  const json = readJsonFile(file);
  // Byte-level BPE as our trainer (and GPT-2) writes it runs on our own
  // implementation; every other tokenizer.json through Hugging Face's.
  const tokenizer: Tokenizer = byteLevelBpeProblem(json) === undefined ? bpeFromJson(json, file) : HfTokenizer.fromFile(file);
  // Models often pad their embedding table past the tokenizer (Pythia, Qwen2).
  if (vocabSize !== undefined && tokenizer.vocabSize > vocabSize) {
    throw new FileFormatError(file, `has ${tokenizer.vocabSize} tokens but the model's vocab_size is only ${vocabSize}`);
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
