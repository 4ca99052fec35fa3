// Seeded random weights for a llama2.c-shaped model: for tests and benchmarks,
// where the arithmetic matters and the language does not.
import { statfsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import seedrandom from 'seedrandom';
import { llama2cBytes, type LlamaShape, type LlamaTensors } from '../checkpoint/llama2c.js';
import { UsageError } from '../errors.js';
import { gib, MAX_ARRAY_BYTES } from '../memory.js';

/** n samples of N(0, std^2) drawn from `rng` (uniform in [0, 1)). */
export function normalArray(rng: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // Box-Muller: two independent normals from two uniforms
    const r = std * Math.sqrt(-2 * Math.log(1 - rng()));
    const theta = 2 * Math.PI * rng();
    out[i] = r * Math.cos(theta);
    if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

/** Weights ~ N(0, std^2) (GPT-2's 0.02 by default), norm gains 1. */
export function randomLlamaTensors(shape: LlamaShape, seed: number, std = 0.02): LlamaTensors {
  const rng = seedrandom(String(seed));
  const normal = (n: number): Float32Array => normalArray(rng, n, std);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const { dim, hiddenDim, layers: L, vocabSize } = shape;
  const kvDim = (dim * shape.kvHeads) / shape.heads;
  return {
    shape,
    tokenEmbedding: normal(vocabSize * dim),
    rmsAtt: ones(L * dim),
    wq: normal(L * dim * dim),
    wk: normal(L * kvDim * dim),
    wv: normal(L * kvDim * dim),
    wo: normal(L * dim * dim),
    rmsFfn: ones(L * dim),
    w1: normal(L * hiddenDim * dim),
    w2: normal(L * dim * hiddenDim),
    w3: normal(L * hiddenDim * dim),
    rmsFinal: ones(dim),
    ...(shape.sharedClassifier ? {} : { classifier: normal(vocabSize * dim) }),
  };
}

/**
 * Refuse, before drawing a single weight, a shape whose tensors cannot be
 * held (each is one typed array, all are in memory at once) or whose file
 * would not fit on the destination's disk. `what` names the flags.
 */
export function checkRandomInitFits(shape: LlamaShape, out: string, what: string): void {
  const bytes = llama2cBytes(shape);
  if (bytes.largestTensor > MAX_ARRAY_BYTES) {
    throw new UsageError(`${what}: the largest tensor needs ${gib(bytes.largestTensor)}, more than the largest array Node allocates (${gib(MAX_ARRAY_BYTES)})`);
  }
  if (bytes.weights > totalmem()) {
    throw new UsageError(`${what}: the weights need ${gib(bytes.weights)}, more than this machine's ${gib(totalmem())} of memory`);
  }
  let free: number | undefined;
  try {
    const fs = statfsSync(dirname(resolve(out)));
    free = fs.bavail * fs.bsize;
  } catch {
    free = undefined; // an output folder that does not exist is reported when the file is written
  }
  if (free !== undefined && bytes.file > free) {
    throw new UsageError(`${what}: the checkpoint would take ${gib(bytes.file)}, more than the ${gib(free)} free where --out ${out} goes`);
  }
}
