// llama2.c tensors -> the engine's Model: transpose every matrix to [in, out]
// and fuse q|k|v and gate|up so each layer needs fewer, larger products.
import * as tf from '@tensorflow/tfjs';
import type { LlamaTensors } from '../checkpoint/llama2c.js';
import { llamaConfig } from './config.js';
import type { LayerWeights, Model } from './weights.js';

/** Rows [row0, row0 + rows) of a row-major [*, cols] matrix. */
function rowsOf(a: Float32Array, row0: number, rows: number, cols: number): Float32Array {
  return a.subarray(row0 * cols, (row0 + rows) * cols);
}

/**
 * Stack [out_i, in] matrices vertically and transpose: -> [in, sum out_i],
 * the layout x @ W wants.
 */
export function stackTransposed(mats: Float32Array[], outs: number[], inDim: number): tf.Tensor2D {
  const total = outs.reduce((a, b) => a + b, 0);
  const dst = new Float32Array(inDim * total);
  let col0 = 0;
  mats.forEach((m, k) => {
    const out = outs[k]!;
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inDim; i++) dst[i * total + col0 + o] = m[o * inDim + i]!;
    }
    col0 += out;
  });
  return tf.tensor2d(dst, [inDim, total]);
}

export function modelFromLlama2c(t: LlamaTensors): Model {
  const s = t.shape;
  const config = llamaConfig(s);
  const { dim, hiddenDim, heads, kvHeads } = s;
  const kvDim = (dim * kvHeads) / heads;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < s.layers; l++) {
    layers.push({
      attnNorm: { weight: tf.tensor1d(rowsOf(t.rmsAtt, l, 1, dim)) },
      qkv: {
        weight: stackTransposed(
          [rowsOf(t.wq, l * dim, dim, dim), rowsOf(t.wk, l * kvDim, kvDim, dim), rowsOf(t.wv, l * kvDim, kvDim, dim)],
          [dim, kvDim, kvDim],
          dim,
        ),
      },
      out: { weight: stackTransposed([rowsOf(t.wo, l * dim, dim, dim)], [dim], dim) },
      mlpNorm: { weight: tf.tensor1d(rowsOf(t.rmsFfn, l, 1, dim)) },
      up: {
        weight: stackTransposed(
          [rowsOf(t.w1, l * hiddenDim, hiddenDim, dim), rowsOf(t.w3, l * hiddenDim, hiddenDim, dim)],
          [hiddenDim, hiddenDim],
          dim,
        ),
      },
      down: { weight: stackTransposed([rowsOf(t.w2, l * dim, dim, hiddenDim)], [dim], hiddenDim) },
    });
  }
  return {
    config,
    weights: {
      embedding: tf.tensor2d(t.tokenEmbedding, [s.vocabSize, dim]),
      layers,
      finalNorm: { weight: tf.tensor1d(t.rmsFinal) },
      classifier: stackTransposed([t.classifier ?? t.tokenEmbedding], [s.vocabSize], dim),
    },
  };
}
