// Loading a model with its matrices where --threads, --weights and --products
// ask (placement_flags.ts).
import * as tf from '@tensorflow/tfjs';
import { statSync } from 'node:fs';
import { defaultThreads } from '../../kernels/threads.js';
import { matrixBytes } from '../../kernels/split_products.js';
import { UsageError } from '../errors.js';
import type { Placement } from '../model/pooled.js';
import type { Model } from '../model/weights.js';
import type { PlacementFlags } from './placement_flags.js';

/** The placement the flags ask for, or undefined for the backend's own products (--products tfjs, and tensorflow). */
function placementOf(flags: PlacementFlags, command: string): Placement | undefined {
  const { weights, products, threads } = flags;
  if (tf.getBackend() === 'tensorflow') {
    if (weights === 'q8') throw new UsageError(`${command} --weights q8: runs on the wasm and cpu backends only, not on tensorflow`);
    if (products === 'pool') throw new UsageError(`${command} --products pool: runs on the wasm and cpu backends only, not on tensorflow`);
    return undefined;
  }
  if (products === 'tfjs') {
    if (weights === 'q8') throw new UsageError(`${command} --products tfjs: float32 only (--weights q8 runs in the pool), got --weights q8`);
    if (threads !== undefined && threads > 1)
      throw new UsageError(`${command} --products tfjs: one thread (the ${tf.getBackend()} backend's kernels run on one in Node), got --threads ${threads}`);
    return undefined;
  }
  // The pool for both formats and any thread count, one included: its loops read packed weights, on one thread
  // faster than the tfjs path's ops (float32 1.3x warm, 2x in a process's first tokens: bench/RESULTS.md), same bits
  return { threads: threads ?? defaultThreads(), weights };
}

/**
 * Load --model with its matrices where --threads, --weights and --products
 * ask (the worker pool on wasm and cpu, unless --products tfjs; the
 * tensorflow backend runs its own threads)
 * and say on stderr how the products run. A model bound for the pool is read
 * straight into it, a llama2.c checkpoint by pooled_llama2c.ts, a Hugging
 * Face directory by from_hf.ts: the float32 matrices are never held, so a q8
 * model of about 3B parameters loads.
 */
export async function loadPlacedModel(path: string, flags: PlacementFlags, command: string): Promise<Model> {
  const placement = placementOf(flags, command);
  const what = `${command} --model ${path} --weights ${flags.weights}`;
  const stat = statSync(path, { throwIfNoEntry: false });
  let model: Model;
  if (placement !== undefined && stat?.isFile() === true) {
    const { openLlama2c } = await import('../checkpoint/llama2c.js');
    const { pooledModelFromLlama2c } = await import('../model/pooled_llama2c.js');
    const reader = openLlama2c(path);
    try {
      model = pooledModelFromLlama2c(reader, placement, what);
    } finally {
      reader.close();
    }
  } else if (placement !== undefined && stat?.isDirectory() === true) {
    const { loadPooledHfModel } = await import('../model/load.js');
    model = loadPooledHfModel(path, placement, what);
  } else {
    const { loadModel } = await import('../model/load.js');
    model = loadModel(path);
  }
  const pooled = [...model.weights.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down]), { pooled: model.weights.pooledClassifier }]
    .map((l) => l.pooled)
    .filter((m) => m !== undefined);
  if (pooled.length > 0) {
    const mib = pooled.reduce((n, m) => n + matrixBytes(m.format, m.rows, m.cols), 0) / 2 ** 20;
    const threads = model.pool!.threads;
    const advice = model.pool!.pageAdvice;
    const pages = advice.hugePages ? '2 MB pages asked for' : `4 KB pages (${advice.why})`;
    process.stderr.write(`products: ${flags.weights} weights (${mib.toFixed(1)} MiB) on ${threads} thread${threads === 1 ? '' : 's'}, ${pages}\n`);
  }
  return model;
}
