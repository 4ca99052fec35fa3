// The two per-layer parts that differ between families: the normalisation
// and the feed-forward network.
import type * as tf from '@tensorflow/tfjs';
import { gelu } from '../../kernels/gelu.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { rmsNorm } from '../../kernels/rmsnorm.js';
import { swiglu } from '../../kernels/swiglu.js';
import { ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { project } from './project.js';
import type { LayerWeights, Norm } from './weights.js';

/** x: [T, dim] -> [T, dim] */
export function norm(config: ModelConfig, w: Norm, x: tf.Tensor2D): tf.Tensor2D {
  switch (config.norm) {
    case 'rmsnorm':
      return rmsNorm(x, w.weight, config.normEps);
    case 'layernorm':
      if (w.bias === undefined) throw new ConfigError('layernorm: the norm has no bias');
      return layerNorm(x, w.weight, w.bias, config.normEps);
  }
}

/** x: [T, dim] -> [T, dim] */
export function mlp(config: ModelConfig, w: LayerWeights, x: tf.Tensor2D): tf.Tensor2D {
  switch (config.mlp) {
    case 'swiglu': // up: [T, 2 hidden] = [gate | up] -> silu(gate) * up: [T, hidden] -> down: [T, dim]
      return project(swiglu(project(x, w.up)), w.down);
    case 'gelu': // up: [T, hidden] -> gelu -> down: [T, dim]
      return project(gelu(project(x, w.up)), w.down);
  }
}
