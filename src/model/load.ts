// Opening a model from disk, whatever its format:
//   FILE.bin   a llama2.c checkpoint (legacy or version 1)
// More formats register here (see loaders below).
import { existsSync, statSync } from 'node:fs';
import { readLlama2c } from '../checkpoint/llama2c.js';
import { FileFormatError } from '../errors.js';
import { modelFromLlama2c } from './from_llama2c.js';
import type { Model } from './weights.js';

export function loadModel(path: string): Model {
  if (!existsSync(path)) throw new FileFormatError(path, 'no such file or directory');
  if (statSync(path).isDirectory()) throw new FileFormatError(path, 'model directories are not supported yet');
  return modelFromLlama2c(readLlama2c(path));
}
