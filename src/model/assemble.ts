// Building the engine's weight tensors from a checkpoint read piece by piece.
//
// Checkpoints store matrices [out, in]; the engine wants [in, out] with
// several projections side by side (see weights.ts). Each source row is
// written, transposed, straight into its final place: on wasm and cpu into
// the tensor's own memory, so a loaded model costs its float32 size plus one
// read chunk, with no second copy of any matrix.
//
// A loader bound for the worker pool (--threads, --weights q8) writes each
// source row instead as one row of a pooled matrix, [out, in] (quantised
// there for q8), so the float32 matrices are never held (MatrixStore).
import * as tf from '@tensorflow/tfjs';
import { float32View, hasDirectMemory } from '../../kernels/paths.js';
import type { WorkerPool } from '../../kernels/pool.js';
import { allocMatrix, type PooledMatrix, type WeightFormat, writeRow } from '../../kernels/split_products.js';
import type { Linear, ModelWeights } from './weights.js';

/** Streams a source tensor a block of rows at a time: visit(firstRow, values [rows, ...]). */
export type RowSource = (visit: (firstRow: number, values: Float32Array) => void) => void;

/**
 * A float32 tensor of `shape` whose values `fill` writes. `fill` must not
 * create tensors: on wasm a heap growth would move the memory it writes to.
 */
export function filledTensor<R extends tf.Rank>(shape: number[], fill: (dst: Float32Array) => void): tf.Tensor<R> {
  if (hasDirectMemory()) {
    // tf.fill allocates in the backend (no host-side array of zeros first).
    const t = tf.fill<R>(shape as tf.ShapeMap[R], 0);
    fill(float32View(t));
    return t;
  }
  const host = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(host);
  return tf.tensor<R>(host, shape as tf.ShapeMap[R]);
}

/** A tensor copied from a source of the same layout. */
export function copiedTensor<R extends tf.Rank>(shape: number[], source: RowSource): tf.Tensor<R> {
  const rowElements = shape.slice(1).reduce((a, b) => a * b, 1);
  return filledTensor<R>(shape, (dst) => source((row, values) => dst.set(values, row * rowElements)));
}

/** One [rows, in] block of a fused [in, total] weight. */
export interface MatrixPart {
  /** Output features this part contributes. */
  rows: number;
  /** [rows, in], or for a bias [rows]. */
  source: RowSource;
  /** Column of source row r in the fused weight; default: after the previous parts, in order. */
  columnOf?: (r: number) => number;
}

/** Source rows per tile of the transposing copy: the tile's rows stay in cache while its columns are read. */
const TILE_ROWS = 32;

/**
 * Stack the parts' [rows_i, in] matrices and transpose: -> [in, sum rows_i],
 * the layout x @ W wants.
 */
export function linearWeight(inDim: number, parts: MatrixPart[]): tf.Tensor2D {
  const total = parts.reduce((n, p) => n + p.rows, 0);
  return filledTensor<tf.Rank.R2>([inDim, total], (dst) => {
    let col0 = 0;
    for (const part of parts) {
      const base = col0;
      part.source((firstRow, src) => {
        const n = src.length / inDim;
        const cols = new Int32Array(n);
        for (let r = 0; r < n; r++) cols[r] = part.columnOf ? part.columnOf(firstRow + r) : base + firstRow + r;
        for (let r0 = 0; r0 < n; r0 += TILE_ROWS) {
          const r1 = Math.min(n, r0 + TILE_ROWS);
          for (let i = 0; i < inDim; i++) {
            const row = i * total;
            for (let r = r0; r < r1; r++) dst[row + cols[r]!] = src[r * inDim + i]!;
          }
        }
      });
      col0 += part.rows;
    }
  });
}

/** The parts' bias vectors side by side, placed as linearWeight places their rows: [sum rows_i]. */
export function linearBias(parts: MatrixPart[]): tf.Tensor1D {
  const total = parts.reduce((n, p) => n + p.rows, 0);
  return filledTensor<tf.Rank.R1>([total], (dst) => {
    let col0 = 0;
    for (const part of parts) {
      const base = col0;
      part.source((first, src) => {
        for (let r = 0; r < src.length; r++) dst[part.columnOf ? part.columnOf(first + r) : base + first + r] = src[r]!;
      });
      col0 += part.rows;
    }
  });
}

/** Where a loader puts a model's matrices: tfjs tensors (tensorMatrices) or the worker pool (poolMatrices). */
export interface MatrixStore {
  /** A projection's weight from its parts (see MatrixPart): [in, sum rows_i] as a tensor, or [sum rows_i, in] pooled. */
  linear(inDim: number, parts: MatrixPart[]): Linear;
  /**
   * The embedding [vocab, dim] from `embedding`'s rows, and the classifier
   * from `head`'s, or, tied (`head` undefined), from the embedding's.
   */
  embeddingAndClassifier(
    vocab: number,
    dim: number,
    embedding: RowSource,
    head: MatrixPart | undefined,
  ): Pick<ModelWeights, 'embedding' | 'classifier' | 'pooledClassifier'>;
}

/** The matrices as float32 tfjs tensors, [in, out]. */
export const tensorMatrices: MatrixStore = {
  linear: (inDim, parts) => ({ weight: linearWeight(inDim, parts) }),
  embeddingAndClassifier: (vocab, dim, embedding, head) => ({
    embedding: copiedTensor<tf.Rank.R2>([vocab, dim], embedding), // [vocab, dim]
    classifier: linearWeight(dim, [head ?? { rows: vocab, source: embedding }]), // [dim, vocab]
  }),
};

/** Write the parts' rows into `m` ([sum rows_i, in]) where linearWeight puts them as columns. */
function writeParts(m: PooledMatrix, parts: MatrixPart[]): void {
  let row0 = 0;
  for (const part of parts) {
    const base = row0;
    part.source((firstRow, values) => {
      const n = values.length / m.cols;
      for (let r = 0; r < n; r++) writeRow(m, part.columnOf ? part.columnOf(firstRow + r) : base + firstRow + r, values, r * m.cols);
    });
    row0 += part.rows;
  }
}

/**
 * The matrices in `pool`, in `format`, each source row written as it is read:
 * what placeWeights (pooled.ts) makes of tensorMatrices' tensors, bit for
 * bit, without the tensors. The embedding stays a tfjs tensor; a tied
 * classifier is written from the same reads. Empty matrices (an
 * attention-only layer's MLP) stay tensors, as placeWeights leaves them.
 */
export function poolMatrices(pool: WorkerPool, format: WeightFormat): MatrixStore {
  return {
    linear: (inDim, parts) => {
      const rows = parts.reduce((n, p) => n + p.rows, 0);
      if (rows === 0 || inDim === 0) return tensorMatrices.linear(inDim, parts);
      const m = allocMatrix(pool, format, rows, inDim);
      writeParts(m, parts);
      return { pooled: m };
    },
    embeddingAndClassifier: (vocab, dim, embedding, head) => {
      const classifier = allocMatrix(pool, format, vocab, dim);
      // tied: each block of the embedding's rows, once read, is also the classifier's
      const tied: RowSource = (visit) =>
        embedding((firstRow, values) => {
          visit(firstRow, values);
          for (let r = 0; r * dim < values.length; r++) writeRow(classifier, firstRow + r, values, r * dim);
        });
      const weights = { embedding: copiedTensor<tf.Rank.R2>([vocab, dim], head === undefined ? tied : embedding), pooledClassifier: classifier };
      if (head !== undefined) writeParts(classifier, [head]);
      return weights;
    },
  };
}
