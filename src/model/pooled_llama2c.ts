// A llama2.c checkpoint loaded straight into the worker pool (--threads,
// --weights q8): each matrix row goes from the reader to its place in the
// pool's memory, quantised there for q8, so the float32 model is never held.
// That is what lets a model of about 3B parameters, 11 GB as float32, load
// in the pool's 4 GiB as q8 (1.125 bytes a weight).
//
// The result equals loading the model the ordinary way (from_llama2c.ts)
// and then placing it (pooled.ts), bit for bit: the same rows reach the same
// quantiser. The tensors are read once, forward, in the legacy file's order,
// so the reader may draw them as it goes (randomLlamaReader). The embedding
// and the norms stay float32 tfjs tensors, as placeWeights leaves them; the
// classifier, tied or not, is a pooled matrix like the others.
import * as tf from '@tensorflow/tfjs';
import { allocMatrix, type PooledMatrix, writeRow } from '../../kernels/split_products.js';
import { type Llama2cReader, LLAMA2C_TENSOR_ORDER, type TensorName, tensorSizes } from '../checkpoint/llama2c.js';
import { checkFits } from '../memory.js';
import { filledTensor } from './assemble.js';
import { llamaConfig } from './config.js';
import { checkPoolFits, type Placement, poolFor } from './pooled.js';
import type { LayerWeights, Model } from './weights.js';

/** Rows per read: a block of a matrix in memory at a time (a few MB at a 3B model's widths). */
const ROWS_PER_READ = 256;

/** The pooled matrices of one layer, [out, in] as pooled.ts places them. */
interface LayerMatrices {
  qkv: PooledMatrix; // [dim + 2 kvDim, dim]: q, k, v rows
  out: PooledMatrix; // [dim, dim]
  up: PooledMatrix; // [2 hidden, dim]: gate (w1) rows, then up (w3)
  down: PooledMatrix; // [dim, hidden]
}

/**
 * The model of a llama2.c checkpoint with its matrices in a new worker pool
 * (`p.weights`, default f32, on `p.threads`). `what` names the source in
 * error messages (a model too large for the pool is refused before anything
 * is allocated). The reader is not closed.
 */
export function pooledModelFromLlama2c(src: Llama2cReader, p: Placement, what: string): Model {
  const s = src.shape;
  const config = llamaConfig(s);
  const format = p.weights ?? 'f32';
  const { dim, hiddenDim, layers: L, vocabSize } = s;
  const kvDim = (dim * s.kvHeads) / s.heads;
  checkPoolFits(config, format, what);
  // the embedding [vocab, dim] and the norms stay on the backend
  checkFits(`${what}: the float32 embedding and norms`, 4 * (vocabSize * dim + (2 * L + 1) * dim), 4 * vocabSize * dim);

  const pool = poolFor(p);
  const made: tf.Tensor[] = [];
  try {
    // allocated in placeWeights' order
    const matrices: LayerMatrices[] = Array.from({ length: L }, () => ({
      qkv: allocMatrix(pool, format, dim + 2 * kvDim, dim),
      out: allocMatrix(pool, format, dim, dim),
      up: allocMatrix(pool, format, 2 * hiddenDim, dim),
      down: allocMatrix(pool, format, dim, hiddenDim),
    }));
    const classifier = allocMatrix(pool, format, vocabSize, dim);
    const sizes = tensorSizes(s);

    /** Every row of a [layers * rowsPerLayer, cols] tensor, in order, to visit(layer, rowInLayer, values, at). */
    const eachRow = (name: TensorName, rowsPerLayer: number, cols: number, visit: (layer: number, row: number, values: Float32Array, at: number) => void) => {
      const rows = sizes[name] / cols;
      for (let r0 = 0; r0 < rows; r0 += ROWS_PER_READ) {
        const n = Math.min(ROWS_PER_READ, rows - r0);
        const values = src.read(name, r0 * cols, n * cols);
        for (let r = 0; r < n; r++) visit(Math.floor((r0 + r) / rowsPerLayer), (r0 + r) % rowsPerLayer, values, r * cols);
      }
    };
    const norms = (name: TensorName): tf.Tensor1D[] => {
      const out = Array.from({ length: sizes[name] / dim }, (_, l) => tf.tensor1d(src.read(name, l * dim, dim))); // [dim] each
      made.push(...out);
      return out;
    };

    let embedding: tf.Tensor2D | undefined;
    let attnNorms: tf.Tensor1D[] = [];
    let mlpNorms: tf.Tensor1D[] = [];
    let finalNorm: tf.Tensor1D | undefined;
    for (const name of LLAMA2C_TENSOR_ORDER) {
      switch (name) {
        case 'tokenEmbedding':
          // embedding: [vocab, dim]; its rows are the tied classifier's rows too
          embedding = filledTensor<tf.Rank.R2>([vocabSize, dim], (dst) =>
            eachRow(name, vocabSize, dim, (_, row, values, at) => {
              dst.set(values.subarray(at, at + dim), row * dim);
              if (s.sharedClassifier) writeRow(classifier, row, values, at);
            }),
          );
          made.push(embedding);
          break;
        case 'rmsAtt':
          attnNorms = norms(name);
          break;
        case 'rmsFfn':
          mlpNorms = norms(name);
          break;
        case 'rmsFinal':
          finalNorm = norms(name)[0];
          break;
        case 'wq':
          eachRow(name, dim, dim, (l, row, values, at) => writeRow(matrices[l]!.qkv, row, values, at));
          break;
        case 'wk':
          eachRow(name, kvDim, dim, (l, row, values, at) => writeRow(matrices[l]!.qkv, dim + row, values, at));
          break;
        case 'wv':
          eachRow(name, kvDim, dim, (l, row, values, at) => writeRow(matrices[l]!.qkv, dim + kvDim + row, values, at));
          break;
        case 'wo':
          eachRow(name, dim, dim, (l, row, values, at) => writeRow(matrices[l]!.out, row, values, at));
          break;
        case 'w1':
          eachRow(name, hiddenDim, dim, (l, row, values, at) => writeRow(matrices[l]!.up, row, values, at));
          break;
        case 'w3':
          eachRow(name, hiddenDim, dim, (l, row, values, at) => writeRow(matrices[l]!.up, hiddenDim + row, values, at));
          break;
        case 'w2':
          eachRow(name, dim, hiddenDim, (l, row, values, at) => writeRow(matrices[l]!.down, row, values, at));
          break;
        case 'classifier':
          if (!s.sharedClassifier) eachRow(name, vocabSize, dim, (_, row, values, at) => writeRow(classifier, row, values, at));
          break;
      }
    }
    const layers: LayerWeights[] = matrices.map((m, l) => ({
      attnNorm: { weight: attnNorms[l]! },
      qkv: { pooled: m.qkv },
      out: { pooled: m.out },
      mlpNorm: { weight: mlpNorms[l]! },
      up: { pooled: m.up },
      down: { pooled: m.down },
    }));
    return { config, weights: { embedding: embedding!, layers, finalNorm: { weight: finalNorm! }, pooledClassifier: classifier }, pool };
  } catch (e) {
    tf.dispose(made);
    void pool.dispose();
    throw e;
  }
}
