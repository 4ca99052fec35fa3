// llama2.c tensors -> the engine's Model: every matrix transposed to
// [in, out], q|k|v and gate|up fused so each layer needs fewer, larger
// products (see assemble.ts).
import * as tf from '@tensorflow/tfjs';
import type { LlamaTensors } from '../checkpoint/llama2c.js';
import { linearWeight, type MatrixPart } from './assemble.js';
import { llamaConfig } from './config.js';
import type { LayerWeights, Model } from './weights.js';

/** Matrix rows [row0, row0 + rows) of a row-major [*, cols] array, as one part of a fused weight. */
function part(a: Float32Array, row0: number, rows: number, cols: number): MatrixPart {
  return { rows, source: (visit) => visit(0, a.subarray(row0 * cols, (row0 + rows) * cols)) };
}

export function modelFromLlama2c(t: LlamaTensors): Model {
  const s = t.shape;
  const config = llamaConfig(s);
  const { dim, hiddenDim, heads, kvHeads } = s;
  const kvDim = (dim * kvHeads) / heads;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < s.layers; l++) {
    layers.push({
      attnNorm: { weight: tf.tensor1d(t.rmsAtt.subarray(l * dim, (l + 1) * dim)) },
      qkv: { weight: linearWeight(dim, [part(t.wq, l * dim, dim, dim), part(t.wk, l * kvDim, kvDim, dim), part(t.wv, l * kvDim, kvDim, dim)]) },
      out: { weight: linearWeight(dim, [part(t.wo, l * dim, dim, dim)]) },
      mlpNorm: { weight: tf.tensor1d(t.rmsFfn.subarray(l * dim, (l + 1) * dim)) },
      // gate (w1) | up (w3): SwiGLU's fused input
      up: { weight: linearWeight(dim, [part(t.w1, l * hiddenDim, hiddenDim, dim), part(t.w3, l * hiddenDim, hiddenDim, dim)]) },
      down: { weight: linearWeight(hiddenDim, [part(t.w2, l * dim, dim, hiddenDim)]) },
    });
  }
  return {
    config,
    weights: {
      embedding: tf.tensor2d(t.tokenEmbedding, [s.vocabSize, dim]),
      layers,
      finalNorm: { weight: tf.tensor1d(t.rmsFinal) },
      classifier: linearWeight(dim, [part(t.classifier ?? t.tokenEmbedding, 0, s.vocabSize, dim)]),
    },
  };
}
