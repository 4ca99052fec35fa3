// Initial weights for training, seeded: GPT-2's scheme. Matrices and
// embeddings ~ N(0, 0.02^2); the two projections that write into the
// residual stream (attention out, MLP down) are scaled by 1/sqrt(2 layers)
// so the stream's variance does not grow with depth; norm gains 1; sink
// logits 0 (learned-sink starts as softmax1).
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import type { ModelConfig } from '../model/config.js';
import { type TrainableWeights, TrainableModel } from './params.js';
import { normalArray } from '../model/random_init.js';
import { learnsExtraLogit } from '../../kernels/softmax.js';

export const INIT_STD = 0.02;

/** A variable holding `values`; the temporary tensor is released (the variable keeps the data). */
function variableOf(values: Float32Array, shape: number[]): tf.Variable {
  const t = tf.tensor(values, shape);
  const v = tf.variable(t);
  t.dispose();
  return v;
}

export function initTrainableModel(config: ModelConfig, seed: number): TrainableModel {
  const rng = seedrandom(`init:${seed}`);
  const normal = (shape: number[], std: number): tf.Variable => {
    return variableOf(
      normalArray(
        rng,
        shape.reduce((a, b) => a * b, 1),
        std,
      ),
      shape,
    );
  };
  const constant = (n: number, value: number): tf.Variable => variableOf(new Float32Array(n).fill(value), [n]);
  const { dim, hiddenDim, heads, kvHeads, headDim, layers, vocabSize } = config;
  const residualStd = INIT_STD / Math.sqrt(2 * layers);
  const weights: TrainableWeights = {
    embedding: normal([vocabSize, dim], INIT_STD) as tf.Variable<tf.Rank.R2>,
    ...(config.sinkToken ? { sinkEmbedding: normal([dim], INIT_STD) as tf.Variable<tf.Rank.R1> } : {}),
    layers: Array.from({ length: layers }, () => ({
      attnNorm: { weight: constant(dim, 1) as tf.Variable<tf.Rank.R1> },
      // qkv: [dim, (heads + 2 kvHeads) headDim]
      qkv: { weight: normal([dim, (heads + 2 * kvHeads) * headDim], INIT_STD) as tf.Variable<tf.Rank.R2> },
      out: { weight: normal([heads * headDim, dim], residualStd) as tf.Variable<tf.Rank.R2> },
      ...(learnsExtraLogit(config.softmax) ? { sinkLogits: constant(heads, 0) as tf.Variable<tf.Rank.R1> } : {}),
      mlpNorm: { weight: constant(dim, 1) as tf.Variable<tf.Rank.R1> },
      // up: [dim, 2 hidden] = [gate | up]
      up: { weight: normal([dim, 2 * hiddenDim], INIT_STD) as tf.Variable<tf.Rank.R2> },
      down: { weight: normal([hiddenDim, dim], residualStd) as tf.Variable<tf.Rank.R2> },
    })),
    finalNorm: { weight: constant(dim, 1) as tf.Variable<tf.Rank.R1> },
  };
  return new TrainableModel(config, weights);
}
