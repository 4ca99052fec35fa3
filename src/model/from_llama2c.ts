// llama2.c tensors -> the engine's Model: every matrix transposed to
// [in, out], q|k|v and gate|up fused so each layer needs fewer, larger
// products (see assemble.ts).
import * as tf from '@tensorflow/tfjs';
import { type Llama2cReader, llama2cTensorsReader, type LlamaTensors, type TensorName } from '../checkpoint/llama2c.js';
import { copiedTensor, linearWeight, type MatrixPart, type RowSource } from './assemble.js';
import { llamaConfig } from './config.js';
import type { LayerWeights, Model, ModelWeights } from './weights.js';

/** Source rows per read: a large matrix (the classifier) is read a block at a time. */
const ROWS_PER_READ = 1024;

/** Matrix rows [row0, row0 + rows) of a row-major [*, cols] tensor, as one part of a fused weight. */
function part(src: Llama2cReader, name: TensorName, row0: number, rows: number, cols: number): MatrixPart {
  return { rows, source: rowsOf(src, name, row0, rows, cols) };
}

/** Rows [row0, row0 + rows) of a row-major [*, cols] tensor, read a block at a time. */
function rowsOf(src: Llama2cReader, name: TensorName, row0: number, rows: number, cols: number): RowSource {
  return (visit) => {
    for (let r = 0; r < rows; r += ROWS_PER_READ) {
      const n = Math.min(ROWS_PER_READ, rows - r);
      visit(r, src.read(name, (row0 + r) * cols, n * cols));
    }
  };
}

/** The model of a llama2.c checkpoint, in memory or read piece by piece from its file. */
export function modelFromLlama2c(t: LlamaTensors | Llama2cReader): Model {
  const src = 'read' in t ? t : llama2cTensorsReader(t);
  const s = src.shape;
  const config = llamaConfig(s);
  const { dim, hiddenDim, heads, kvHeads } = s;
  const kvDim = (dim * kvHeads) / heads;
  const vector = (name: TensorName, start: number) => tf.tensor1d(src.read(name, start, dim));
  // tf.tidy keeps the returned weights and disposes everything else, also when a read throws.
  const weights = tf.tidy(() => {
    const layers: LayerWeights[] = [];
    for (let l = 0; l < s.layers; l++) {
      layers.push({
        attnNorm: { weight: vector('rmsAtt', l * dim) },
        qkv: {
          weight: linearWeight(dim, [part(src, 'wq', l * dim, dim, dim), part(src, 'wk', l * kvDim, kvDim, dim), part(src, 'wv', l * kvDim, kvDim, dim)]),
        },
        out: { weight: linearWeight(dim, [part(src, 'wo', l * dim, dim, dim)]) },
        mlpNorm: { weight: vector('rmsFfn', l * dim) },
        // gate (w1) | up (w3): SwiGLU's fused input
        up: { weight: linearWeight(dim, [part(src, 'w1', l * hiddenDim, hiddenDim, dim), part(src, 'w3', l * hiddenDim, hiddenDim, dim)]) },
        down: { weight: linearWeight(hiddenDim, [part(src, 'w2', l * dim, dim, hiddenDim)]) },
      });
    }
    const built: ModelWeights = {
      embedding: copiedTensor<tf.Rank.R2>([s.vocabSize, dim], rowsOf(src, 'tokenEmbedding', 0, s.vocabSize, dim)),
      layers,
      finalNorm: { weight: vector('rmsFinal', 0) },
      classifier: linearWeight(dim, [part(src, s.sharedClassifier ? 'tokenEmbedding' : 'classifier', 0, s.vocabSize, dim)]),
    };
    return built as unknown as tf.TensorContainer;
  }) as unknown as ModelWeights;
  return { config, weights };
}
