// Seeded random weights for a llama2.c-shaped model: for tests and benchmarks,
// where the arithmetic matters and the language does not.
import { existsSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import seedrandom from 'seedrandom';
import * as fdlibm from '../../kernels/fdlibm.js';
import {
  type Llama2cReader,
  llama2cBytes,
  LLAMA2C_TENSOR_ORDER,
  type LlamaShape,
  type LlamaTensors,
  type TensorName,
  tensorSizes,
} from '../checkpoint/llama2c.js';
import { UsageError } from '../errors.js';
import { gib } from '../memory.js';

// normalArray's log, cos and sin are fdlibm's (kernels/fdlibm.ts, Node 20's
// Math.log, Math.cos and Math.sin): a seed draws the same weights on every
// Node (Math.sqrt is exact everywhere).

/** n samples of N(0, std^2) drawn from `rng` (uniform in [0, 1)). */
export function normalArray(rng: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  const cosSin = new Float64Array(2);
  for (let i = 0; i < n; i += 2) {
    // Box-Muller: two independent normals from two uniforms
    const r = std * Math.sqrt(-2 * fdlibm.log(1 - rng()));
    fdlibm.cosSinPair(2 * Math.PI * rng(), cosSin, 0);
    out[i] = r * cosSin[0]!;
    if (i + 1 < n) out[i + 1] = r * cosSin[1]!;
  }
  return out;
}

// A checkpoint's random weights (init, the benchmarks' models) come from
// seedrandom's Alea generator through Marsaglia's polar method: 17 ns a
// weight against 52 for the ARC4 stream and Box-Muller of normalArray (which
// training's initialisation keeps, so that its runs stay reproducible); for
// a 2.6B-parameter model about 45 CPU-s instead of 2.3 minutes.

/** The generator of a checkpoint's random weights. */
function weightRng(seed: number): () => number {
  return seedrandom.alea(String(seed));
}

/**
 * out[from, to) filled with N(0, std^2) samples, two from each accepted pair
 * of uniforms (Marsaglia's polar method); returns the pair's second sample
 * when `to` cut it off (the next element's value), else undefined.
 */
function fillNormals(rng: () => number, out: Float32Array, from: number, to: number, std: number): number | undefined {
  for (let i = from; i < to; i += 2) {
    let a: number;
    let b: number;
    let s: number;
    do {
      a = 2 * rng() - 1;
      b = 2 * rng() - 1;
      s = a * a + b * b;
    } while (s >= 1 || s === 0);
    // (Math.log, not fdlibm.log: the same bits on Node 20 to 24, and 15 -> 22 ns a weight with the port; V8's
    // own tree has since moved Math.log to LLVM's libc, so a later Node may draw other weights here)
    const m = std * Math.sqrt((-2 * Math.log(s)) / s);
    out[i] = a * m;
    if (i + 1 < to) out[i + 1] = b * m;
    else return Math.fround(b * m);
  }
  return undefined;
}

/** Weights ~ N(0, std^2) (GPT-2's 0.02 by default), norm gains 1. */
export function randomLlamaTensors(shape: LlamaShape, seed: number, std = 0.02): LlamaTensors {
  const rng = weightRng(seed);
  const normal = (n: number): Float32Array => {
    const out = new Float32Array(n);
    fillNormals(rng, out, 0, n, std);
    return out;
  };
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
 * The tensors of randomLlamaTensors(shape, seed, std), drawn as they are
 * read: the same values, but never all in memory, so that `init` can write
 * and `--weights q8` can load a model far larger than float32 memory allows.
 * The weights come from one random stream in the order randomLlamaTensors
 * draws them (llama2.c's legacy file order), so reads must go forward in
 * that order: a tensor's elements from where the last read ended, or a
 * later tensor (the ones in between are drawn and dropped). Reading back
 * throws.
 */
export function randomLlamaReader(shape: LlamaShape, seed: number, std = 0.02): Llama2cReader {
  const rng = weightRng(seed);
  const sizes = tensorSizes(shape);
  const order = LLAMA2C_TENSOR_ORDER.filter((name) => name !== 'classifier' || !shape.sharedClassifier);
  let current = 0; // index in order of the tensor being read
  let position = 0; // its next element
  let spare: number | undefined; // the second half of a pair of normals, for the next element
  const isNorm = (name: TensorName) => name === 'rmsAtt' || name === 'rmsFfn' || name === 'rmsFinal';
  // the next `count` elements of the current tensor
  const draw = (name: TensorName, count: number): Float32Array => {
    const out = new Float32Array(count);
    if (isNorm(name)) {
      position += count;
      return out.fill(1);
    }
    let i = 0;
    if (spare !== undefined && count > 0) {
      out[i++] = spare;
      spare = undefined;
    }
    // as randomLlamaTensors, pair by pair; a pair cut by the end of this read keeps its second half
    const second = fillNormals(rng, out, i, count, std);
    if (position + count < sizes[name]) spare = second;
    position += count;
    return out;
  };
  const CHUNK = 1 << 20;
  const skipTo = (index: number) => {
    for (; current < index; current++, position = 0, spare = undefined) {
      const name = order[current]!;
      while (position < sizes[name]) draw(name, Math.min(CHUNK, sizes[name] - position));
    }
  };
  return {
    shape,
    read(name, start, count) {
      const index = order.indexOf(name);
      if (index < 0) throw new RangeError(`randomLlamaReader: this shape has no ${name}`);
      if (start < 0 || start + count > sizes[name]) throw new RangeError(`${name}: elements [${start}, ${start + count}) outside its ${sizes[name]}`);
      if (index < current || (index === current && start < position)) {
        throw new RangeError(`randomLlamaReader: ${name} [${start}, ...) read after ${order[current]} [.., ${position}): reads must go forward`);
      }
      skipTo(index);
      while (position < start) draw(name, Math.min(CHUNK, start - position));
      return draw(name, count);
    },
    close: () => {},
  };
}

/**
 * Refuse, before drawing a single weight, a shape whose file would not fit
 * on the destination's disk (the weights are drawn as they are written, so
 * memory is no limit). `what` names the flags.
 */
export function checkRandomInitFits(shape: LlamaShape, out: string, what: string): void {
  const bytes = llama2cBytes(shape);
  // the filesystem of the nearest folder that exists: the output's own may be made when the file is written
  let folder = dirname(resolve(out));
  while (!existsSync(folder) && dirname(folder) !== folder) folder = dirname(folder);
  let free: number | undefined;
  try {
    const fs = statfsSync(folder);
    free = fs.bavail * fs.bsize;
  } catch {
    free = undefined; // (no statfs here: the write itself reports a full disk)
  }
  if (free !== undefined && bytes.file > free) {
    throw new UsageError(`${what}: the checkpoint would take ${gib(bytes.file)}, more than the ${gib(free)} free where --out ${out} goes`);
  }
}
