// --threads, --weights and --products (eval, generate, reproduce, attn):
// where the weight products run and how the matrices are held: the
// library's loadModel options (src/model/placement.ts), which placement.ts hands them to.
import { defaultThreads } from '../../kernels/threads.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../../kernels/weight_format.js';
import { MAX_THREADS, PRODUCTS, type Products } from '../model/placement.js';
import { defineFlags } from './args.js';

export const placementFlags = defineFlags([
  {
    name: 'threads',
    type: 'int',
    value: 'N',
    min: 1,
    max: MAX_THREADS,
    help: `threads for the weight products (default: every core, ${defaultThreads()} here); 1: the calling thread alone, no worker threads`,
  },
  {
    name: 'weights',
    type: 'string',
    value: 'FORMAT',
    choices: WEIGHT_FORMATS,
    default: 'f32',
    help: 'weight matrices as f32, or q8: blocks of 32 int8 with a float32 scale, 1.125 bytes a weight (accuracy: README)',
  },
  {
    name: 'products',
    type: 'string',
    value: 'WHERE',
    choices: PRODUCTS,
    help:
      "pool (default on wasm and cpu): the matrices in the worker pool, this project's SIMD loops on --threads threads; " +
      "tfjs: the backend's own kernels (XNNPACK on wasm), float32 on one thread, the path the pool's results are tested against",
  },
]);

/** The placement flags as parsed. */
export interface PlacementFlags {
  threads?: number | undefined;
  weights: WeightFormat;
  /** undefined: the pool where the backend has it (wasm, cpu), tfjs's own products on tensorflow. */
  products?: Products | undefined;
}
