// Putting a loaded model's matrices where --threads and --weights ask
// (placement_flags.ts).
import * as tf from '@tensorflow/tfjs';
import { defaultThreads } from '../../kernels/threads.js';
import { matrixBytes } from '../../kernels/split_products.js';
import { UsageError } from '../errors.js';
import { placeWeights } from '../model/pooled.js';
import type { Model } from '../model/weights.js';
import type { PlacementFlags } from './placement_flags.js';

/**
 * Put the model's matrices where --threads and --weights ask (the worker
 * pool on wasm and cpu; the tensorflow backend runs its own threads) and say
 * on stderr how the products run.
 */
export function placeModel(model: Model, flags: PlacementFlags, command: string): Model {
  const { weights } = flags;
  // f32 stays on the backend unless asked: the pooled f32 loop runs the classifier's short rows at half XNNPACK's speed
  const threads = flags.threads ?? (weights === 'q8' ? defaultThreads() : 1);
  if (tf.getBackend() === 'tensorflow') {
    if (weights === 'q8') throw new UsageError(`${command} --weights q8: runs on the wasm and cpu backends only, not on tensorflow`);
    return model;
  }
  placeWeights(model, { threads, weights });
  const pooled = [...model.weights.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down]), { pooled: model.weights.pooledClassifier }]
    .map((l) => l.pooled)
    .filter((m) => m !== undefined);
  if (pooled.length > 0) {
    const mib = pooled.reduce((n, m) => n + matrixBytes(m.format, m.rows, m.cols), 0) / 2 ** 20;
    process.stderr.write(`products: ${weights} weights (${mib.toFixed(1)} MiB) on ${threads} thread${threads === 1 ? '' : 's'}\n`);
  }
  return model;
}
