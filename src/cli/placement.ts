// Loading a model with its matrices where --threads, --weights and --products
// ask (placement_flags.ts).
import * as tf from '@tensorflow/tfjs';
import { matrixBytes } from '../../kernels/split_products.js';
import { ArgumentError, UsageError } from '../errors.js';
import { type OptionWords, placementOf } from '../model/placement.js';
import type { Placement } from '../model/pooled.js';
import type { Model } from '../model/weights.js';
import type { PlacementFlags } from './placement_flags.js';

/** The options as the flags that gave them: `--weights q8`. */
const FLAG_WORDS: OptionWords = (name, value) => `--${name} ${value}`;

/**
 * The placement the flags ask for (the library's placementOf, whose
 * combination errors it words for the flags), or undefined for the
 * backend's own products (--products tfjs, and tensorflow). The flag parser
 * has given --weights its default, so no flags is the pool on wasm and cpu.
 */
export function placementOfFlags(flags: PlacementFlags, command: string): Placement | undefined {
  try {
    return placementOf({ threads: flags.threads, weights: flags.weights, products: flags.products }, tf.getBackend(), FLAG_WORDS);
  } catch (e) {
    if (e instanceof ArgumentError) throw new UsageError(`${command} ${e.message}`);
    throw e;
  }
}

/**
 * Load --model with its matrices where --threads, --weights and --products
 * ask (the worker pool on wasm and cpu, unless --products tfjs; the
 * tensorflow backend runs its own threads), as the library's loadModel does
 * with those options (placementOf, then loadModelPlaced: model/load.ts) but
 * with messages naming the flags, and say on stderr how the products run.
 */
export async function loadPlacedModel(path: string, flags: PlacementFlags, command: string): Promise<Model> {
  const placement = placementOfFlags(flags, command);
  const { loadModelPlaced } = await import('../model/load.js');
  const model = loadModelPlaced(path, placement, `${command} --model ${path} --weights ${flags.weights}`);
  reportProducts(model);
  return model;
}

/** Say on stderr how a pooled model's products run (nothing for the tfjs path): `products: q8 weights (16.3 MiB) on 2 threads, ...`. */
export function reportProducts(model: Model): void {
  const pooled = [...model.weights.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down]), { pooled: model.weights.pooledClassifier }]
    .map((l) => l.pooled)
    .filter((m) => m !== undefined);
  if (pooled.length === 0) return;
  const mib = pooled.reduce((n, m) => n + matrixBytes(m.format, m.rows, m.cols), 0) / 2 ** 20;
  const threads = model.pool!.threads;
  const advice = model.pool!.pageAdvice;
  const pages = advice.hugePages ? '2 MB pages asked for' : `4 KB pages (${advice.why})`;
  process.stderr.write(`products: ${pooled[0]!.format} weights (${mib.toFixed(1)} MiB) on ${threads} thread${threads === 1 ? '' : 's'}, ${pages}\n`);
}
