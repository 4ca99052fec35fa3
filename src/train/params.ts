// A model's weights as named, trainable tf.Variables.
//
// Names follow the engine's layout (fused q|k|v and gate|up, matrices
// [in, out]): `embedding`, `sink_embedding`, `layers.N.attn_norm`,
// `layers.N.qkv`, `layers.N.out`, `layers.N.sinks`, `layers.N.mlp_norm`,
// `layers.N.up`, `layers.N.down`, `final_norm`. Training-state files key
// the parameters and the optimizer's moments by these names. The classifier
// is tied to the embedding: it is not a parameter of its own.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../model/config.js';
import type { LayerWeights, Model, ModelWeights } from '../model/weights.js';

export interface Param {
  name: string;
  variable: tf.Variable;
  /** Weight decay applies to matrices (projections, embeddings), not to gains or sink logits. */
  decay: boolean;
}

/** The trainable weights; `classifier` is derived, never stored. */
export type TrainableWeights = Omit<ModelWeights, 'classifier'>;

export class TrainableModel {
  readonly params: Param[];

  constructor(
    readonly config: ModelConfig,
    readonly weights: TrainableWeights,
  ) {
    this.params = namedWeights(weights).map(([name, t, decay]) => ({ name, variable: t as tf.Variable, decay }));
  }

  /**
   * The engine's view of the weights for one forward pass. The tied
   * classifier [dim, vocab] is the embedding transposed, made here so that
   * under a gradient tape its gradient flows back into the embedding.
   */
  model(): Model {
    return { config: this.config, weights: { ...this.weights, classifier: this.weights.embedding.transpose<tf.Tensor2D>() } };
  }

  get parameterCount(): number {
    return this.params.reduce((n, p) => n + p.variable.size, 0);
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
  }
}

/** [name, tensor, decays] for every weight, in a fixed order. */
export function namedWeights(w: TrainableWeights): [string, tf.Tensor, boolean][] {
  const list: [string, tf.Tensor | undefined, boolean][] = [
    ['embedding', w.embedding, true],
    ['sink_embedding', w.sinkEmbedding, false],
  ];
  w.layers.forEach((l: LayerWeights, n) => {
    list.push(
      [`layers.${n}.attn_norm`, l.attnNorm.weight, false],
      [`layers.${n}.qkv`, l.qkv.weight, true],
      [`layers.${n}.out`, l.out.weight, true],
      [`layers.${n}.sinks`, l.sinkLogits, false],
      [`layers.${n}.mlp_norm`, l.mlpNorm.weight, false],
      [`layers.${n}.up`, l.up.weight, true],
      [`layers.${n}.down`, l.down.weight, true],
    );
  });
  list.push(['final_norm', w.finalNorm.weight, false]);
  return list.filter((e): e is [string, tf.Tensor, boolean] => e[1] !== undefined);
}
